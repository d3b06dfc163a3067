"""Layer 3 — business to business (业务系统之间对账): finance's payments against the agent
banks' advances (垫付) and the treasury's clearing (清算), amount by amount, then in total.

Per payment voucher (5201 direct, 8202 authorized), from the three parties' ledgers:

* finance's ``authorized_paid`` / ``direct_paid`` posting against the bank's ``advanced``
  posting of the same voucher version (the same ledger ref ``vt/year/no/vN``);
* the bank's advance against the treasury's ``cleared`` posting of the transfer application
  (申请划款凭证 2301) that answers the payment. The link is the application's number: a voucher
  answering payment ``NO`` is numbered ``2301-NO`` (``guoku.flows.model.answering_header``),
  so the link needs no XML; a cleared application numbered otherwise links to no payment and
  is reported as cleared without an advance;
* finance's ``allocated`` (实拨 5207) against the treasury's ``allocated``.

Then totals: finance paid against banks advanced by division, unit (预算单位), fund type
(资金性质) and day; banks advanced against treasury cleared by division, fund type and day (a
transfer application names no unit in its header, so the treasury's books have none);
allocations by division, unit, fund type and day.

The per-voucher pass is a streaming three-way merge of the ledgers sorted by the link (any
databases), or — when all ledgers are schemas of one PostgreSQL database — two FULL OUTER
JOINs in SQL that send back only the rows that do not agree. Both feed the same verdicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import ColumnElement, Select, Subquery

from guoku.domain.books import POSTINGS
from guoku.domain.parties import PartyKind
from guoku.reconcile.breaks import Break, BreakKind, Layer, Period, parse_ref
from guoku.reconcile.merge import (
    Method,
    ascending,
    connect_all,
    in_schema,
    merge_groups,
    merge_join,
    ordered,
    resolve_method,
    stream,
)
from guoku.store.tables import ledger_entries

ADVANCED, CLEARED, ALLOCATED = "advanced", "cleared", "allocated"
TRANSFER_APPLICATION: Final = "2301"

PAID_BY_TYPE: Final = {vt: account for (kind, direction, vt, _), account in POSTINGS.items()
                       if kind in (PartyKind.FINANCE, PartyKind.UNIT) and direction == "out"
                       and account in ("authorized_paid", "direct_paid")}
"""Payment voucher type -> finance's account for it, from the posting rules."""

COLUMNS: Final = ("link", "admdiv", "party", "account", "amount_fen", "day", "voucher_ref",
                  "agency_code", "fund_type")
_LINK, _ADMDIV, _PARTY, _ACCOUNT, _AMOUNT, _DAY, _REF, _AGENCY, _FUND = range(9)
_link = itemgetter(_LINK)
_pair_key = itemgetter(_ADMDIV, _REF)


@dataclass(frozen=True, slots=True)
class Books:
    """Whose ledger a side is, as a break names it."""

    name: str
    """e.g. ``finance paid``."""
    who: str
    """``finance``, ``bank`` or ``treasury``."""


FINANCE_PAID = Books("finance paid", "finance")
BANK_ADVANCED = Books("bank advanced", "bank")
TREASURY_CLEARED = Books("treasury cleared", "treasury")
FINANCE_ALLOCATED = Books("finance allocated", "finance")
TREASURY_ALLOCATED = Books("treasury allocated", "treasury")


def layer3(
    finance: Engine, bank: Engine | Sequence[Engine], pboc: Engine, *,
    day: str | None = None, month: str | None = None, method: Method = "auto",
) -> Iterator[Break]:
    """Finance's, the agent banks' and the treasury's books, payment by payment, then the
    totals. ``bank`` may be several agent banks' nodes: finance pays through all of them."""
    period = Period.of(day, month)
    banks = [bank] if isinstance(bank, Engine) else list(bank)
    engines = [finance, *banks, pboc]
    schemas = resolve_method(method, engines)
    with ExitStack() as stack:
        conns = connect_all(stack, engines)
        f_conn, b_conns, p_conn = conns[0], conns[1:-1], conns[-1]
        if schemas is not None:
            tables = [in_schema(ledger_entries, s) for s in schemas]
            f_tab, b_tabs, p_tab = tables[0], tables[1:-1], tables[-1]
            payments = _joined_payments(f_conn, f_tab, b_tabs, p_tab, period)
            allocations = _joined_allocations(f_conn, f_tab, p_tab, period)
        else:
            payments = _merged_payments(f_conn, b_conns, p_conn, period)
            allocations = _merged_allocations(f_conn, p_conn, period)
        for f, b, p in payments:
            yield from _payment_breaks(f, b, p)
        for f, p in allocations:
            yield from _pair_breaks(f, p, FINANCE_ALLOCATED, TREASURY_ALLOCATED)
        yield from _totals(f_conn, b_conns, p_conn, period)


# --- the sides -------------------------------------------------------------------------------


def _number(t: Table | Subquery) -> ColumnElement[str]:
    """``vt/year/no`` of the ledger ref ``vt/year/no/vN`` (portable: no regular expressions)."""
    ref = t.c.voucher_ref
    return func.substr(ref, 1, func.length(func.rtrim(ref, "0123456789")) - 2)


def payment_link(t: Table | Subquery) -> ColumnElement[str]:
    """``admdiv|year/no`` of a payment posting."""
    return t.c.admdiv + "|" + func.substr(_number(t), 6)


def clearing_link(t: Table | Subquery) -> ColumnElement[str]:
    """``admdiv|year/no`` of the payment a cleared transfer application ``2301-no`` answers;
    ``admdiv|?year/...`` when its number does not name one."""
    number = _number(t)
    prefix = TRANSFER_APPLICATION + "-"
    return case(
        (func.substr(number, 11, len(prefix)) == prefix,
         t.c.admdiv + "|" + func.substr(number, 6, 5) + func.substr(number, 11 + len(prefix))),
        else_=t.c.admdiv + "|?" + func.substr(number, 6))


def _side(t: Table, link: ColumnElement[str], period: Period,
          *where: ColumnElement[bool]) -> Select[Any]:
    conditions = list(where)
    if not period.everything:
        conditions.append(t.c.day.between(period.first, period.last))
    return select(link.label("link"), *(t.c[k] for k in COLUMNS[1:])).where(*conditions)


def finance_paid(t: Table, period: Period) -> Select[Any]:
    """Finance's payment postings, each to the account its voucher type's rule gives."""
    by_rule = or_(*(and_(t.c.account == account, t.c.voucher_ref.like(f"{vt}/%"))
                    for vt, account in sorted(PAID_BY_TYPE.items())))
    return _side(t, payment_link(t), period, by_rule)


def bank_advanced(t: Table, period: Period) -> Select[Any]:
    return _side(t, payment_link(t), period, t.c.account == ADVANCED)


def treasury_cleared(t: Table, period: Period) -> Select[Any]:
    return _side(t, clearing_link(t), period, t.c.account == CLEARED)


def allocated(t: Table, period: Period) -> Select[Any]:
    return _side(t, payment_link(t), period, t.c.account == ALLOCATED)


# --- payments: merged ------------------------------------------------------------------------

Triple = tuple[Any, Any, Any]


def _sorted_stream(conn: Connection, stmt: Select[Any]) -> Iterator[Any]:
    sub = stmt.subquery()
    stmt = select(*(sub.c[k] for k in COLUMNS)).order_by(
        *ordered(conn, sub.c.link, sub.c.voucher_ref))
    return stream(conn, stmt)


def _merged_payments(f_conn: Connection, b_conns: Sequence[Connection], p_conn: Connection,
                     period: Period) -> Iterator[Triple]:
    streams = [_sorted_stream(f_conn, finance_paid(ledger_entries, period)),
               *(_sorted_stream(c, bank_advanced(ledger_entries, period)) for c in b_conns),
               _sorted_stream(p_conn, treasury_cleared(ledger_entries, period))]
    checked = [ascending(s, itemgetter(_LINK, _REF), f"side {i}") for i, s in enumerate(streams)]
    for _, sides in merge_groups(checked, _link):
        f_rows, p_rows = sides[0], sides[-1]
        b_rows = [row for rows in sides[1:-1] for row in rows]
        yield from _join_group(f_rows, b_rows, p_rows)


def _join_group(f_rows: list[Any], b_rows: list[Any], p_rows: list[Any]) -> Iterator[Triple]:
    """What ``(F FULL JOIN B ON admdiv, ref) FULL JOIN P ON P.link = B.link`` gives for one
    link, in the SQL path's order: pairs by ref, clearings by ref, unmatched clearings last."""
    pairs: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [None, None])
    for row in f_rows:
        pairs[_pair_key(row)][0] = row
    for row in b_rows:
        pairs[_pair_key(row)][1] = row
    clearings = sorted(p_rows, key=itemgetter(_REF))
    advanced = False
    for _, (f, b) in sorted(pairs.items(), key=lambda item: (item[0][1], item[0][0])):
        if b is None:
            yield f, None, None
            continue
        advanced = True
        for p in clearings or [None]:
            yield f, b, p
    if not advanced:
        for p in clearings:
            yield None, None, p


# --- payments: joined in SQL -----------------------------------------------------------------


def _joined_payments(conn: Connection, f_tab: Table, b_tabs: Sequence[Table], p_tab: Table,
                     period: Period) -> Iterator[Triple]:
    f = finance_paid(f_tab, period).subquery("f")
    banks = [bank_advanced(t, period) for t in b_tabs]
    b = (banks[0] if len(banks) == 1 else union_all(*banks)).subquery("b")
    p = treasury_cleared(p_tab, period).subquery("p")
    fb_link = func.coalesce(f.c.link, b.c.link)
    agree = and_(f.c.link.is_not(None), b.c.link.is_not(None), p.c.link.is_not(None),
                 f.c.amount_fen == b.c.amount_fen, b.c.amount_fen == p.c.amount_fen)
    stmt = (
        select(*(f.c[k] for k in COLUMNS), *(b.c[k] for k in COLUMNS),
               *(p.c[k] for k in COLUMNS))
        .select_from(
            f.join(b, and_(f.c.admdiv == b.c.admdiv, f.c.voucher_ref == b.c.voucher_ref),
                   full=True)
            .join(p, p.c.link == b.c.link, full=True))
        .where(~agree)
        .order_by(*ordered(conn, func.coalesce(fb_link, p.c.link),
                           func.coalesce(f.c.voucher_ref, b.c.voucher_ref),
                           func.coalesce(f.c.admdiv, b.c.admdiv), p.c.voucher_ref))
    )
    n = len(COLUMNS)
    for row in stream(conn, stmt):
        yield _part(row, 0, n), _part(row, n, n), _part(row, 2 * n, n)


def _part(row: Any, start: int, width: int) -> tuple[Any, ...] | None:
    return None if row[start] is None else tuple(row[start:start + width])


# --- allocations -----------------------------------------------------------------------------


def _merged_allocations(f_conn: Connection, p_conn: Connection,
                        period: Period) -> Iterator[tuple[Any, Any]]:
    sides = []
    for conn, side in ((f_conn, "finance"), (p_conn, "treasury")):
        sub = allocated(ledger_entries, period).subquery()
        stmt = select(*(sub.c[k] for k in COLUMNS)).order_by(
            *ordered(conn, sub.c.admdiv, sub.c.voucher_ref))
        sides.append(ascending(stream(conn, stmt), _pair_key, side))
    return merge_join(sides[0], sides[1], _pair_key, _same_amount)


def _same_amount(a: Any, b: Any) -> bool:
    return bool(a[_AMOUNT] == b[_AMOUNT])


def _joined_allocations(conn: Connection, f_tab: Table, p_tab: Table,
                        period: Period) -> Iterator[tuple[Any, Any]]:
    f, p = allocated(f_tab, period).subquery("f"), allocated(p_tab, period).subquery("p")
    stmt = (
        select(*(f.c[k] for k in COLUMNS), *(p.c[k] for k in COLUMNS))
        .select_from(f.join(p, and_(f.c.admdiv == p.c.admdiv,
                                    f.c.voucher_ref == p.c.voucher_ref), full=True))
        .where(or_(f.c.link.is_(None), p.c.link.is_(None), f.c.amount_fen != p.c.amount_fen))
        .order_by(*ordered(conn, func.coalesce(f.c.admdiv, p.c.admdiv),
                           func.coalesce(f.c.voucher_ref, p.c.voucher_ref)))
    )
    n = len(COLUMNS)
    for row in stream(conn, stmt):
        yield _part(row, 0, n), _part(row, n, n)


# --- verdicts --------------------------------------------------------------------------------


def _payment_breaks(f: Any, b: Any, p: Any) -> Iterator[Break]:
    if f is not None or b is not None:
        yield from _pair_breaks(f, b, FINANCE_PAID, BANK_ADVANCED)
    yield from _pair_breaks(b, p, BANK_ADVANCED, TREASURY_CLEARED)


def _pair_breaks(left: Any, right: Any, lbooks: Books, rbooks: Books) -> Iterator[Break]:
    if left is None and right is None:
        return
    if left is not None and right is not None:
        if left[_AMOUNT] == right[_AMOUNT]:
            return
        kind = BreakKind.AMOUNT_MISMATCH
        detail = (f"{lbooks.name} {left[_AMOUNT]} fen, {rbooks.name} {right[_AMOUNT]} fen")
    elif right is None:
        kind = BreakKind.MISSING
        detail = f"{lbooks.name} {left[_REF]}; the {rbooks.who}'s books have no counterpart"
    else:
        kind = BreakKind.EXTRA
        detail = f"{rbooks.name} {right[_REF]}; the {lbooks.who}'s books have no counterpart"
        if right[_LINK].split("|", 1)[-1].startswith("?"):
            detail += f" (its number does not name a payment as {TRANSFER_APPLICATION}-<no>)"
    row = left if left is not None else right
    parts = parse_ref(row[_REF])
    vt, year, no, version = parts if parts is not None else (None, None, None, None)
    yield Break(
        layer=Layer.BUSINESS, kind=kind, admdiv=row[_ADMDIV],
        party=left[_PARTY] if left is not None else lbooks.who,
        counterparty=right[_PARTY] if right is not None else rbooks.who,
        left=lbooks.name, right=rbooks.name, vt_code=vt, st_year=year, voucher_no=no,
        version=version, day=row[_DAY],
        left_amount_fen=None if left is None else left[_AMOUNT],
        right_amount_fen=None if right is None else right[_AMOUNT],
        account=row[_ACCOUNT], agency_code=row[_AGENCY] or None,
        fund_type=row[_FUND] or None, detail=detail)


# --- totals ----------------------------------------------------------------------------------

BY_UNIT: Final = ("admdiv", "agency_code", "fund_type", "day")
BY_FUND: Final = ("admdiv", "fund_type", "day")
PAID_ACCOUNTS: Final = tuple(sorted(set(PAID_BY_TYPE.values())))
SUMMED: Final = {0: (*PAID_ACCOUNTS, ALLOCATED), 1: (ADVANCED,), 2: (CLEARED, ALLOCATED)}
"""Side (0 finance, 1 the banks, 2 the treasury) -> the accounts its totals sum."""


def _sums(conn: Connection, accounts: tuple[str, ...], period: Period) -> Iterator[Any]:
    """One pass over a ledger: the sum of each account by division, unit, fund type and day."""
    t = ledger_entries
    where = [t.c.account.in_(accounts)]
    if not period.everything:
        where.append(t.c.day.between(period.first, period.last))
    groups = [*(t.c[k] for k in BY_UNIT), t.c.account]
    stmt = (select(*groups, func.sum(t.c.amount_fen).label("amount_fen"),
                   func.min(t.c.party).label("party"))
            .where(*where).group_by(*groups).order_by(*ordered(conn, *groups)))
    return stream(conn, stmt)


def _totals(f_conn: Connection, b_conns: Sequence[Connection], p_conn: Connection,
            period: Period) -> Iterator[Break]:
    """Finance paid vs banks advanced and finance allocated vs treasury allocated, group by
    group as the sorted sums stream in; banks advanced vs treasury cleared by fund type, summed
    on the way (one entry per division, fund type and day) and compared at the end."""
    sides = [0, *(1 for _ in b_conns), 2]
    conns = [f_conn, *b_conns, p_conn]
    width = len(BY_UNIT)
    group = itemgetter(*range(width))
    streams = [ascending(_sums(c, SUMMED[side], period), itemgetter(*range(width + 1)),
                         f"totals of side {side}") for c, side in zip(conns, sides, strict=True)]
    by_fund: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    by_fund_party = ["bank", "treasury"]
    for key, rows_of in merge_groups(streams, group):
        sums: dict[tuple[int, str], int] = defaultdict(int)
        party: dict[tuple[int, str], str] = {}
        for side, rows in zip(sides, rows_of, strict=True):
            for row in rows:
                account = PAID_ACCOUNTS[0] if row[width] in PAID_ACCOUNTS else row[width]
                sums[side, account] += int(row[width + 1])
                party[side, account] = row[width + 2]
        where = dict(zip(BY_UNIT, key, strict=True))
        for left, right in (((0, PAID_ACCOUNTS[0], FINANCE_PAID), (1, ADVANCED, BANK_ADVANCED)),
                            ((0, ALLOCATED, FINANCE_ALLOCATED),
                             (2, ALLOCATED, TREASURY_ALLOCATED))):
            amounts = [sums[left[:2]], sums[right[:2]]]
            if amounts[0] != amounts[1]:
                yield _total_break(where, left[2], right[2], amounts,
                                   [party.get(left[:2], left[2].who),
                                    party.get(right[:2], right[2].who)])
        fund = by_fund[where["admdiv"], where["fund_type"], where["day"]]
        fund[0] += sums[1, ADVANCED]
        fund[1] += sums[2, CLEARED]
        by_fund_party = [party.get((1, ADVANCED), by_fund_party[0]),
                         party.get((2, CLEARED), by_fund_party[1])]
    for (admdiv, fund_type, day), amounts in sorted(by_fund.items()):
        if amounts[0] != amounts[1]:
            yield _total_break({"admdiv": admdiv, "fund_type": fund_type, "day": day},
                               BANK_ADVANCED, TREASURY_CLEARED, amounts, by_fund_party)


def _total_break(group: dict[str, Any], left: Books, right: Books, amounts: list[int],
                 party: list[str]) -> Break:
    what = ", ".join(f"{k} {v}" for k, v in group.items() if k != "admdiv")
    return Break(
        layer=Layer.BUSINESS, kind=BreakKind.TOTAL_MISMATCH, admdiv=group["admdiv"],
        party=party[0], counterparty=party[1], left=left.name, right=right.name,
        day=group["day"], left_amount_fen=amounts[0], right_amount_fen=amounts[1],
        agency_code=group.get("agency_code") or None, fund_type=group["fund_type"] or None,
        detail=f"{what}: {left.name} {amounts[0]} fen, {right.name} {amounts[1]} fen")
