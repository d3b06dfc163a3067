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

Each pairwise check is a streaming merge of the two ledgers sorted by its key (any databases),
or — when all ledgers are schemas of one PostgreSQL database — a FULL OUTER JOIN in SQL that
sends back only the rows that do not agree; both give the same pairs in the same order, and
the same verdicts. The totals are one ``GROUP BY`` per ledger, merged.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
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
from sqlalchemy.sql import ColumnElement, FromClause, Select, Subquery

from guoku.domain.books import POSTINGS
from guoku.domain.parties import PartyKind
from guoku.reconcile.breaks import Break, BreakKind, Layer, Period, parse_ref
from guoku.reconcile.merge import (
    Method,
    ascending,
    connect_all,
    in_schema,
    merge_groups,
    merge_runs,
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


FINANCE, BANKS, TREASURY = "finance", "banks", "treasury"
"""Whose ledgers a side of a check reads."""


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
    roles = {FINANCE: [0], BANKS: list(range(1, len(engines) - 1)),
             TREASURY: [len(engines) - 1]}
    with ExitStack() as stack:
        conns = connect_all(stack, engines)
        for check in CHECKS:
            lefts, rights = roles[check.left_role], roles[check.right_role]
            if schemas is not None:
                tables = [in_schema(ledger_entries, s) for s in schemas]
                pairs = _joined(conns[0], check, [tables[i] for i in lefts],
                                [tables[i] for i in rights], period)
            else:
                pairs = _merged(check, [conns[i] for i in lefts], [conns[i] for i in rights],
                                period)
            for left, right in pairs:
                yield from _pair_breaks(left, right, check.left, check.right)
        yield from _totals(conns[0], conns[1:-1], conns[-1], period)


# --- the sides -------------------------------------------------------------------------------


def _year_and_number(t: FromClause, dialect: str) -> tuple[ColumnElement[str],
                                                             ColumnElement[str]]:
    """The year and voucher number of the ledger ref ``vt/year/no/vN``. A voucher number has
    no ``/`` (a code: ``[0-9A-Za-z._-]``), so PostgreSQL splits at the slashes; elsewhere the
    version's digits are trimmed off (no regular expressions in SQLite)."""
    ref = t.c.voucher_ref
    if dialect == "postgresql":
        return func.split_part(ref, "/", 2), func.split_part(ref, "/", 3)
    head = func.substr(ref, 1, func.length(func.rtrim(ref, "0123456789")) - 2)
    return func.substr(head, 6, 4), func.substr(head, 11)


def payment_link(t: FromClause, dialect: str) -> ColumnElement[str]:
    """``admdiv|year/no`` of a payment posting."""
    year, number = _year_and_number(t, dialect)
    return t.c.admdiv + "|" + year + "/" + number


def clearing_link(t: FromClause, dialect: str) -> ColumnElement[str]:
    """``admdiv|year/no`` of the payment a cleared transfer application ``2301-no`` answers;
    ``admdiv|?year/...`` when its number does not name one."""
    year, number = _year_and_number(t, dialect)
    prefix = TRANSFER_APPLICATION + "-"
    return case(
        (func.substr(number, 1, len(prefix)) == prefix,
         t.c.admdiv + "|" + year + "/" + func.substr(number, len(prefix) + 1)),
        else_=t.c.admdiv + "|?" + year + "/" + number)


Side = Callable[[Table, Period, str], Select[Any]]


def _side(t: Table, link: ColumnElement[str], period: Period,
          *where: ColumnElement[bool]) -> Select[Any]:
    conditions = list(where)
    if not period.everything:
        conditions.append(t.c.day.between(period.first, period.last))
    return select(link.label("link"), *(t.c[k] for k in COLUMNS[1:])).where(*conditions)


def finance_paid(t: Table, period: Period, dialect: str) -> Select[Any]:
    """Finance's payment postings, each to the account its voucher type's rule gives."""
    by_rule = or_(*(and_(t.c.account == account, t.c.voucher_ref.like(f"{vt}/%"))
                    for vt, account in sorted(PAID_BY_TYPE.items())))
    return _side(t, payment_link(t, dialect), period, by_rule)


def bank_advanced(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, payment_link(t, dialect), period, t.c.account == ADVANCED)


def treasury_cleared(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, clearing_link(t, dialect), period, t.c.account == CLEARED)


def allocated(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, payment_link(t, dialect), period, t.c.account == ALLOCATED)


BY_REF: Final = ("voucher_ref",)
"""Finance's payment and the bank's advance are postings of one voucher version: one ref. A
ledger holds a ref once per account (its unique key), so each side has it at most once; the
join on the ref alone lets the planner merge the two ledgers' ref indexes, and a ref booked
in two divisions is told apart afterwards."""
BY_LINK: Final = ("link",)
"""The bank's advance and the treasury's clearing meet at the payment's number."""


@dataclass(frozen=True, slots=True)
class Check:
    """Two parties' books compared posting by posting: which postings, matched on what."""

    left: Books
    left_role: str
    left_side: Side
    right: Books
    right_role: str
    right_side: Side
    key: tuple[str, ...]


CHECKS: Final = (
    Check(FINANCE_PAID, FINANCE, finance_paid, BANK_ADVANCED, BANKS, bank_advanced, BY_REF),
    Check(BANK_ADVANCED, BANKS, bank_advanced, TREASURY_CLEARED, TREASURY, treasury_cleared,
          BY_LINK),
    Check(FINANCE_ALLOCATED, FINANCE, allocated, TREASURY_ALLOCATED, TREASURY, allocated,
          BY_REF),
)


# --- joined in SQL ---------------------------------------------------------------------------


def _union(selects: list[Select[Any]], name: str) -> Subquery:
    return (selects[0] if len(selects) == 1 else union_all(*selects)).subquery(name)


def _joined(conn: Connection, check: Check, lefts: list[Table], rights: list[Table],
            period: Period) -> Iterator[tuple[Any, Any]]:
    """FULL OUTER JOIN of the two books on the check's key; only what does not agree (one
    side missing, or the amounts differ) comes back, in key order."""
    dialect = conn.dialect.name
    x = _union([check.left_side(t, period, dialect) for t in lefts], "x")
    y = _union([check.right_side(t, period, dialect) for t in rights], "y")
    stmt = (
        select(*(x.c[k] for k in COLUMNS), *(y.c[k] for k in COLUMNS))
        .select_from(x.join(y, and_(*(x.c[k] == y.c[k] for k in check.key)), full=True))
        .where(or_(x.c.link.is_(None), y.c.link.is_(None), x.c.amount_fen != y.c.amount_fen,
                   x.c.admdiv != y.c.admdiv))
        .order_by(*ordered(conn, *(func.coalesce(x.c[k], y.c[k]) for k in check.key),
                           x.c.voucher_ref, y.c.voucher_ref))
    )
    n = len(COLUMNS)
    for row in stream(conn, stmt):
        yield _part(row, 0, n), _part(row, n, n)


def _part(row: Any, start: int, width: int) -> tuple[Any, ...] | None:
    return None if row[start] is None else tuple(row[start:start + width])


# --- merged ----------------------------------------------------------------------------------


def _merged(check: Check, lefts: list[Connection], rights: list[Connection],
            period: Period) -> Iterator[tuple[Any, Any]]:
    """The same pairs as :func:`_joined`, in the same order, from sorted streams: per key,
    every left posting with every right one (normally one each), or alone."""
    key = itemgetter(*(COLUMNS.index(k) for k in check.key))
    order = itemgetter(*(COLUMNS.index(k) for k in (*check.key, "voucher_ref")))

    def side(conns: list[Connection], read: Side) -> Iterator[Any]:
        streams = []
        for conn in conns:
            sub = read(ledger_entries, period, conn.dialect.name).subquery()
            stmt = select(*(sub.c[k] for k in COLUMNS)).order_by(
                *ordered(conn, *(sub.c[k] for k in check.key), sub.c.voucher_ref))
            streams.append(ascending(stream(conn, stmt), order, read.__name__))
        return streams[0] if len(streams) == 1 else heapq.merge(*streams, key=order)

    for xs, ys in merge_runs(side(lefts, check.left_side), side(rights, check.right_side),
                             key):
        if len(xs) == 1 and len(ys) == 1:
            if not _agree(xs[0], ys[0]):
                yield xs[0], ys[0]
        elif not ys:
            yield from ((x, None) for x in xs)
        elif not xs:
            yield from ((None, y) for y in ys)
        else:  # a key booked more than once on a side: every pairing, as the join gives it
            yield from ((x, y) for x in sorted(xs, key=_by_ref)
                        for y in sorted(ys, key=_by_ref) if not _agree(x, y))


_by_ref = itemgetter(_REF)


def _agree(x: Any, y: Any) -> bool:
    return bool(x[_AMOUNT] == y[_AMOUNT] and x[_ADMDIV] == y[_ADMDIV])


# --- verdicts --------------------------------------------------------------------------------


def _pair_breaks(left: Any, right: Any, lbooks: Books, rbooks: Books) -> Iterator[Break]:
    if left is None and right is None:
        return
    if left is not None and right is not None:
        if _agree(left, right):
            return
        if left[_ADMDIV] != right[_ADMDIV]:  # one ref, two divisions: neither has the other's
            yield from _pair_breaks(left, None, lbooks, rbooks)
            yield from _pair_breaks(None, right, lbooks, rbooks)
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
PAID: Final = "paid"
"""Finance's two payment accounts (authorized and direct) summed as one measure."""
SUMMED: Final = {FINANCE: (*sorted(set(PAID_BY_TYPE.values())), ALLOCATED),
                 BANKS: (ADVANCED,), TREASURY: (CLEARED, ALLOCATED)}
"""Whose ledgers -> the accounts its totals sum."""
Measure = tuple[str, str, Books]
"""(whose ledgers, measure, how a break names it)."""
BY_UNIT_PAIRS: Final[tuple[tuple[Measure, Measure], ...]] = (
    ((FINANCE, PAID, FINANCE_PAID), (BANKS, ADVANCED, BANK_ADVANCED)),
    ((FINANCE, ALLOCATED, FINANCE_ALLOCATED), (TREASURY, ALLOCATED, TREASURY_ALLOCATED)),
)
BY_FUND_PAIR: Final[tuple[Measure, Measure]] = (
    (BANKS, ADVANCED, BANK_ADVANCED), (TREASURY, CLEARED, TREASURY_CLEARED))


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
    """The :data:`BY_UNIT_PAIRS` group by group as the sorted sums stream in; the
    :data:`BY_FUND_PAIR` summed on the way (one entry per division, fund type and day — a few
    thousand at most) and compared at the end."""
    owners = [FINANCE, *(BANKS for _ in b_conns), TREASURY]
    conns = [f_conn, *b_conns, p_conn]
    width = len(BY_UNIT)
    streams = [ascending(_sums(c, SUMMED[who], period), itemgetter(*range(width + 1)),
                         f"totals of the {who}' books")
               for c, who in zip(conns, owners, strict=True)]
    paid = set(SUMMED[FINANCE]) - {ALLOCATED}
    by_fund: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    fund_party: dict[str, str] = {}
    for key, rows_of in merge_groups(streams, itemgetter(*range(width))):
        sums: dict[tuple[str, str], int] = defaultdict(int)
        party: dict[tuple[str, str], str] = {}
        for who, rows in zip(owners, rows_of, strict=True):
            for row in rows:
                measure = PAID if who == FINANCE and row[width] in paid else row[width]
                sums[who, measure] += int(row[width + 1])
                party[who, measure] = row[width + 2]
        group = dict(zip(BY_UNIT, key, strict=True))
        for left, right in BY_UNIT_PAIRS:
            amounts = [sums[left[:2]], sums[right[:2]]]
            if amounts[0] != amounts[1]:
                yield _total_break(group, left[2], right[2], amounts,
                                   [party.get(left[:2], left[2].who),
                                    party.get(right[:2], right[2].who)])
        fund = by_fund[tuple(group[k] for k in BY_FUND)]
        for who, measure, _ in BY_FUND_PAIR:
            fund[who] += sums[who, measure]
            if (who, measure) in party:
                fund_party.setdefault(who, party[who, measure])
    left, right = BY_FUND_PAIR
    for key, fund in sorted(by_fund.items()):
        amounts = [fund[left[0]], fund[right[0]]]
        if amounts[0] != amounts[1]:
            yield _total_break(dict(zip(BY_FUND, key, strict=True)), left[2], right[2],
                               amounts, [fund_party.get(left[0], left[2].who),
                                         fund_party.get(right[0], right[2].who)])


def _total_break(group: dict[str, Any], left: Books, right: Books, amounts: list[int],
                 party: list[str]) -> Break:
    what = ", ".join(f"{k} {v}" for k, v in group.items() if k != "admdiv")
    return Break(
        layer=Layer.BUSINESS, kind=BreakKind.TOTAL_MISMATCH, admdiv=group["admdiv"],
        party=party[0], counterparty=party[1], left=left.name, right=right.name,
        day=group["day"], left_amount_fen=amounts[0], right_amount_fen=amounts[1],
        agency_code=group.get("agency_code") or None, fund_type=group["fund_type"] or None,
        detail=f"{what}: {left.name} {amounts[0]} fen, {right.name} {amounts[1]} fen")
