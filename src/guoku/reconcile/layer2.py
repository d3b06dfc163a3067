"""Layer 2 — a voucher library against its business system (凭证库与业务系统对账): every
voucher a node holds against its parties' business ledger, both ways.

The posting rules (``guoku.domain.books.POSTINGS``) say which voucher books which account of
which party, and on which event; the voucher's state says whether that event has happened
(:data:`EXPECTED`): a payment is booked once accepted, a quota notice once sent, a received
voucher on receipt. Then, joined on (admdiv, party, voucher ref, account) in one query:

* a voucher whose rule says it is booked, with no posting — **unbooked**;
* a posting whose amount is not its voucher's — **amount mismatch**;
* a posting of a voucher whose state never books (a returned payment) — **status mismatch**;
* a posting that matches no voucher's rule is looked at once more (:func:`_suspects`): booked
  again under a second account or a second version of the same voucher number — **duplicate
  booking** (the ledger's unique key is (voucher ref, account), so a duplicate always differs
  in one of them); booked to an account the voucher's rules never give — **misbooked**; naming
  no voucher the party holds — **booking without voucher**.

Everything is set-based SQL on the node's one database (SQLite or PostgreSQL); only candidate
breaks come back, and the second look sends the suspects back in chunks, as one JSON parameter
read as a table — nothing is written, so a read-only replica will do.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, FromClause, Select, Subquery

from guoku.domain.books import POSTINGS
from guoku.domain.lifecycle import State
from guoku.reconcile.breaks import Break, BreakKind, Layer, Period, parse_ref
from guoku.reconcile.merge import CHUNK, connect_all, ordered, stream
from guoku.store.tables import ledger_entries, parties, vouchers

YES, NO, MAYBE = "yes", "no", "maybe"
S = State
_SENT_ONCE = (S.SENT, S.DELIVERED, S.INDETERMINATE, S.ACCEPTED, S.RETURNED, S.FAILED,
              S.PAPER)

EXPECTED: Final[Mapping[tuple[str, str], str]] = MappingProxyType({
    **{("send", s.value): YES for s in _SENT_ONCE},
    **{("send", s.value): MAYBE for s in (S.VOID, S.SUPERSEDED)},
    ("accept", S.ACCEPTED.value): YES,
    **{("receive", s.value): YES for s in (S.RECEIVED, S.ACCEPTED, S.RETURNED)},
})
"""(rule event, voucher state) -> is the posting due? Any pair not here: ``no``. A voided or
superseded voucher may have been sent before (a returned quota notice, voided, revised), so
its posting is neither required nor a break."""


def expected(event: str, state: str) -> str:
    return EXPECTED.get((event, state), NO)


def layer2(engine: Engine, *, day: str | None = None, month: str | None = None,
           party_codes: Collection[str] | None = None) -> Iterator[Break]:
    """The node's vouchers against its ledger (of ``party_codes``, default every party the
    node serves); breaks streamed in key order, each chunk's second looks after it."""
    period = Period.of(day, month)
    wanted = None if party_codes is None else sorted(set(party_codes))
    with ExitStack() as stack:
        conn = connect_all(stack, [engine])[0]
        suspects = _Suspects()
        for row in stream(conn, _joined(conn, period, wanted)):
            brk = _first_look(row, suspects)
            if brk is not None:
                yield brk
            if len(suspects.pending) >= CHUNK:
                yield from suspects.look(conn)
        yield from suspects.look(conn)


# --- the main join ---------------------------------------------------------------------------


def _party_kinds(conn: Connection, wanted: list[str] | None) -> dict[str, list[str]]:
    """The node's parties by kind (unit, finance, bank, pboc)."""
    stmt = select(parties.c.code, parties.c.kind).order_by(parties.c.code)
    if wanted is not None:
        stmt = stmt.where(parties.c.code.in_(wanted))
    kinds: dict[str, list[str]] = {}
    for code, kind in conn.execute(stmt):
        kinds.setdefault(kind, []).append(code)
    return kinds


def _rule_cases(v: FromClause, party: ColumnElement[str], kinds: dict[str, list[str]],
                ) -> tuple[ColumnElement[str | None], ColumnElement[str], list[str]]:
    """The posting rules of the kinds of party the node has, as two SQL ``CASE`` expressions
    over a voucher and its booking party — the account its rule books (NULL: none) and
    whether that posting is due by now — and the voucher types any of them books."""
    accounts, expects, types = [], [], set()
    for (party_kind, direction, vt, event), account in sorted(POSTINGS.items()):
        if party_kind.value not in kinds:
            continue
        types.add(vt)
        rule = and_(v.c.vt_code == vt, v.c.direction == direction)
        if len(kinds) > 1:
            rule = and_(rule, party.in_(kinds[party_kind.value]))
        accounts.append((rule, literal(account, String)))
        states = {e: sorted(s for (ev, s), x in EXPECTED.items() if ev == event and x == e)
                  for e in (YES, MAYBE)}
        due = case((v.c.state.in_(states[YES]), literal(YES, String)),
                   *([(v.c.state.in_(states[MAYBE]), literal(MAYBE, String))]
                     if states[MAYBE] else []),
                   else_=literal(NO, String))
        expects.append((rule, due))
    if not accounts:
        return literal(None, String), literal(NO, String), []
    return case(*accounts, else_=None), case(*expects, else_=literal(NO, String)), sorted(types)


def voucher_ref(table: FromClause) -> ColumnElement[str]:
    """``vt/year/no/vN`` — how the ledger names a voucher version (``VoucherRow.ref``)."""
    c = table.c
    return (c.vt_code + "/" + cast(c.st_year, String) + "/" + c.voucher_no + "/v"
            + cast(c.version, String))


def booking_party(table: FromClause) -> ColumnElement[str]:
    c = table.c
    return case((c.direction == "out", c.sender_party), else_=c.receiver_party)


def _other_party(table: FromClause) -> ColumnElement[str]:
    c = table.c
    return case((c.direction == "out", c.receiver_party), else_=c.sender_party)


def _booked_vouchers(period: Period, kinds: dict[str, list[str]]) -> Subquery:
    """The node's vouchers of the types its parties book, each with its booking party, the
    account its rule books and whether the posting is due (``expect``)."""
    v = vouchers
    party = booking_party(v)
    account, expect, types = _rule_cases(v, party, kinds)
    where = [v.c.vt_code.in_(types), party.in_(sorted(c for cs in kinds.values() for c in cs))]
    if not period.everything:
        where.append(v.c.vou_date.between(period.first, period.last))
    return (
        select(v.c.admdiv, party.label("party"), _other_party(v).label("counterparty"),
               v.c.vt_code, v.c.st_year, v.c.voucher_no, v.c.version, v.c.state,
               v.c.amount_fen, v.c.vou_date, account.label("account"),
               expect.label("expect"), voucher_ref(v).label("ref"))
        .where(*where)
        .subquery("v")
    )


def _postings(period: Period, wanted: list[str] | None) -> Subquery:
    e = ledger_entries
    where = []
    if not period.everything:
        where.append(e.c.day.between(period.first, period.last))
    if wanted is not None:
        where.append(e.c.party.in_(wanted))
    return select(e.c.id, e.c.admdiv, e.c.party, e.c.account, e.c.amount_fen, e.c.day,
                  e.c.voucher_ref).where(*where).subquery("e")


V_COLUMNS: Final = ("admdiv", "party", "counterparty", "vt_code", "st_year", "voucher_no",
                    "version", "state", "amount_fen", "vou_date", "account", "expect")
E_COLUMNS: Final = ("id", "admdiv", "party", "account", "amount_fen", "day", "voucher_ref")


def _joined(conn: Connection, period: Period, wanted: list[str] | None) -> Select[Any]:
    kinds = _party_kinds(conn, wanted)
    v, e = _booked_vouchers(period, kinds), _postings(period, wanted)
    on = and_(v.c.admdiv == e.c.admdiv, v.c.party == e.c.party, v.c.ref == e.c.voucher_ref,
              v.c.account == e.c.account)
    return (
        select(*(v.c[k] for k in V_COLUMNS), *(e.c[k] for k in E_COLUMNS))
        .select_from(v.join(e, on, full=True))
        .where(or_(and_(e.c.id.is_(None), v.c.expect == YES),
                   v.c.voucher_no.is_(None),
                   and_(e.c.id.is_not(None),
                        or_(v.c.amount_fen != e.c.amount_fen, v.c.expect == NO))))
        .order_by(*ordered(conn, func.coalesce(v.c.admdiv, e.c.admdiv),
                           func.coalesce(v.c.ref, e.c.voucher_ref),
                           func.coalesce(v.c.account, e.c.account)))
    )


def _first_look(row: Any, suspects: _Suspects) -> Break | None:
    """The break a joined row shows at once, or ``None`` after queuing it for a second look."""
    n = len(V_COLUMNS)
    voucher = dict(zip(V_COLUMNS, row[:n], strict=True)) if row[5] is not None else None
    entry = dict(zip(E_COLUMNS, row[n:], strict=True)) if row[n] is not None else None
    if entry is None:
        assert voucher is not None
        return _voucher_break(voucher, None, BreakKind.UNBOOKED,
                              f"its rule books {voucher['account']} and the ledger has no "
                              "such posting")
    if voucher is not None and voucher["amount_fen"] != entry["amount_fen"]:
        if voucher["expect"] == NO:
            suspects.add(entry["id"], "not_due", entry["voucher_ref"])
        return _voucher_break(voucher, entry, BreakKind.AMOUNT_MISMATCH,
                              f"the voucher says {voucher['amount_fen']} fen, the posting "
                              f"{entry['amount_fen']} fen")
    suspects.add(entry["id"], "not_due" if voucher is not None else "orphan",
                 entry["voucher_ref"])
    return None


def _voucher_break(voucher: dict[str, Any], entry: dict[str, Any] | None, kind: BreakKind,
                   detail: str) -> Break:
    return Break(
        layer=Layer.LIBRARY_LEDGER, kind=kind, admdiv=voucher["admdiv"],
        party=voucher["party"], counterparty=voucher["counterparty"], left="voucher",
        right="ledger", vt_code=voucher["vt_code"], st_year=voucher["st_year"],
        voucher_no=voucher["voucher_no"], version=voucher["version"],
        day=voucher["vou_date"], left_amount_fen=voucher["amount_fen"],
        right_amount_fen=None if entry is None else entry["amount_fen"],
        left_state=voucher["state"], account=voucher["account"], detail=detail)


# --- the second look -------------------------------------------------------------------------


SUSPECT_COLUMNS: Final = (("seq", Integer), ("entry_id", Integer), ("reason", String),
                          ("vt_code", String), ("st_year", Integer), ("voucher_no", String),
                          ("version", Integer))


class _Suspects:
    """Postings for a second look, ``CHUNK`` at a time: sent to the database as one JSON
    parameter and read there as a table (no temporary table: a read-only replica will do)."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.count = 0

    def add(self, entry_id: int, reason: str, ref: str) -> None:
        parts = parse_ref(ref)
        vt, year, no, version = parts if parts is not None else (None, None, None, None)
        self.count += 1
        self.pending.append({"seq": self.count, "entry_id": entry_id, "reason": reason,
                             "vt_code": vt, "st_year": year, "voucher_no": no,
                             "version": version})

    def look(self, conn: Connection) -> Iterator[Break]:
        if not self.pending:
            return
        rows = json.dumps(self.pending)
        self.pending = []
        for row in conn.execute(_suspects(_as_table(conn, rows))):
            yield _second_look(row)


def _as_table(conn: Connection, rows: str) -> FromClause:
    """A JSON array of suspects as a table with :data:`SUSPECT_COLUMNS`."""
    param = bindparam("suspects", rows, type_=Text)
    if conn.dialect.name == "postgresql":
        return (func.json_to_recordset(cast(param, JSON))
                .table_valued(*(column(n, t) for n, t in SUSPECT_COLUMNS))
                .render_derived(name="s", with_types=True))
    each = func.json_each(param).table_valued("value")
    return select(*(func.json_extract(each.c.value, f"$.{n}").label(n)
                    for n, _ in SUSPECT_COLUMNS)).select_from(each).subquery("s")


def _suspects(suspects: FromClause) -> Select[Any]:
    """Each suspect posting with its voucher (if the party holds that version) and two facts:
    is the same voucher booked under another account, or under another version?"""
    s, e, w = suspects, ledger_entries, vouchers
    other, f = vouchers.alias("o"), ledger_entries.alias("f")
    same_voucher = and_(w.c.admdiv == e.c.admdiv,
                        w.c.st_year == s.c.st_year, w.c.vt_code == s.c.vt_code,
                        w.c.voucher_no == s.c.voucher_no, w.c.version == s.c.version,
                        booking_party(w) == e.c.party)
    other_account = exists().where(f.c.voucher_ref == e.c.voucher_ref,
                                   f.c.account != e.c.account, f.c.admdiv == e.c.admdiv,
                                   f.c.party == e.c.party)
    other_version = (
        select(literal(1))
        .select_from(other.join(f, and_(f.c.voucher_ref == voucher_ref(other),
                                        f.c.account == e.c.account, f.c.party == e.c.party,
                                        f.c.admdiv == e.c.admdiv)))
        .where(other.c.admdiv == e.c.admdiv, other.c.st_year == s.c.st_year,
               other.c.vt_code == s.c.vt_code, other.c.voucher_no == s.c.voucher_no,
               other.c.version != s.c.version)
        .exists()
    )
    return (
        select(s.c.reason, s.c.vt_code, s.c.st_year, s.c.voucher_no, s.c.version,
               e.c.admdiv, e.c.party, e.c.account, e.c.amount_fen, e.c.day, e.c.voucher_ref,
               w.c.state, w.c.amount_fen.label("voucher_amount"), w.c.vou_date,
               _other_party(w).label("counterparty"),
               other_account.label("other_account"), other_version.label("other_version"))
        .select_from(s.join(e, e.c.id == s.c.entry_id).outerjoin(w, same_voucher))
        .order_by(s.c.seq)
    )


def _second_look(row: Any) -> Break:
    held = row.state is not None
    if row.other_account or row.other_version:
        kind = BreakKind.DUPLICATE_BOOKING
        detail = ("booked again: the same voucher is also booked under "
                  + ("another account" if row.other_account else "another version"))
    elif row.reason == "not_due":
        kind = BreakKind.STATUS_MISMATCH
        detail = f"booked to {row.account}, but the voucher is {row.state} and never books"
    elif held:
        kind = BreakKind.MISBOOKED
        detail = (f"booked to {row.account}, an account this voucher's rules never give"
                  if row.vou_date == row.day else
                  f"booked on {row.day}, the voucher is dated {row.vou_date}")
    else:
        kind = BreakKind.BOOKING_WITHOUT_VOUCHER
        detail = f"the posting names {row.voucher_ref}, which {row.party} does not hold"
    return Break(
        layer=Layer.LIBRARY_LEDGER, kind=kind, admdiv=row.admdiv, party=row.party,
        counterparty=row.counterparty, left="voucher", right="ledger", vt_code=row.vt_code,
        st_year=row.st_year, voucher_no=row.voucher_no, version=row.version, day=row.day,
        left_amount_fen=row.voucher_amount, right_amount_fen=row.amount_fen,
        left_state=row.state, account=row.account, detail=detail)
