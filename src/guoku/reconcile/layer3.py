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

Refunds (退款), per refund, the same way:

* finance's ``direct_refunded`` / ``authorized_refunded`` (the refund notices 2203 / 2204 it
  received, each only for the type its rule books) against the bank's ``refund_returned``
  (the refund application 2302 the treasury accepted), matched on the refunded payment: the
  notice and the application answering payment ``NO`` are numbered ``2203-NO`` / ``2204-NO``
  and ``2302-NO``;
* the bank's ``refund_returned`` against the treasury's ``refund_received`` — one voucher
  (2302) on both sides: the same ledger ref;
* the treasury's ``allocation_refunded`` (实拨退款 3208, booked when sent) against finance's
  ``allocation_refunded`` (booked on receipt): the same ref.

A side that books one key more than once is not silent when the amounts agree: each posting
of the other side takes one that agrees with it, and a posting left over is a duplicate
booking (重复记账) when the other side holds the key, missing or extra when it does not.

Then totals: finance paid against banks advanced by division, unit (预算单位), fund type
(资金性质) and day; banks advanced against treasury cleared by division, fund type and day (a
transfer application names no unit in its header, so the treasury's books have none);
allocations and allocation refunds by division, unit, fund type and day; refunds — finance
against the banks, the banks against the treasury — by division, fund type and day (a refund
application names no unit either).

Each pairwise check is a streaming merge of the two ledgers sorted by its key (any databases),
or — when all ledgers are schemas of one PostgreSQL database — a FULL OUTER JOIN in SQL that
sends back only the rows that do not agree; both give the same pairs in the same order, and
the same verdicts. The totals are one ``GROUP BY`` per ledger, merged.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    concurrently,
    connect_all,
    export_snapshot,
    in_schema,
    merge_groups,
    merge_runs,
    ordered,
    resolve_method,
    stream,
)
from guoku.store.tables import ledger_entries

ADVANCED, CLEARED, ALLOCATED = "advanced", "cleared", "allocated"
REFUND_RETURNED, REFUND_RECEIVED = "refund_returned", "refund_received"
ALLOCATION_REFUNDED: Final = "allocation_refunded"
TRANSFER_APPLICATION: Final = "2301"
REFUND_APPLICATION: Final = "2302"
ALLOCATION_REFUND: Final = "3208"


def _finance_types(*accounts: str) -> dict[str, str]:
    """Voucher type -> finance's (or a unit's) account for it, from the posting rules."""
    return {vt: account for (kind, _, vt, _), account in POSTINGS.items()
            if kind in (PartyKind.FINANCE, PartyKind.UNIT) and account in accounts}


PAID_BY_TYPE: Final = _finance_types("authorized_paid", "direct_paid")
"""Payment voucher type -> finance's account for it, from the posting rules."""
REFUNDED_BY_TYPE: Final = _finance_types("direct_refunded", "authorized_refunded")
"""Refund notice type (2203 direct, 2204 authorized) -> finance's account for it."""

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
FINANCE_REFUNDED = Books("finance refunded", "finance")
BANK_REFUNDED = Books("bank refund returned", "bank")
TREASURY_REFUNDED = Books("treasury refund received", "treasury")
FINANCE_ALLOCATION_REFUNDED = Books("finance allocation refunded", "finance")
TREASURY_ALLOCATION_REFUNDED = Books("treasury allocation refunded", "treasury")


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
    if schemas is None:  # separate databases: one stream at a time through each
        with ExitStack() as stack:
            conns = connect_all(stack, engines)
            for check in CHECKS:
                lefts, rights = roles[check.left_role], roles[check.right_role]
                groups = _merged(check, [conns[i] for i in lefts], [conns[i] for i in rights],
                                 period)
                for xs, ys in groups:
                    yield from _group_breaks(xs, ys, check)
            yield from _totals(conns[0], conns[1:-1], conns[-1], period)
        return
    tables = [in_schema(ledger_entries, s) for s in schemas]
    with ExitStack() as leader:
        yield from _side_by_side(engines, tables, roles, period,
                                 export_snapshot(leader, engines[0]))


def _side_by_side(engines: Sequence[Engine], tables: Sequence[Table],
                  roles: Mapping[str, list[int]], period: Period,
                  snapshot: str) -> Iterator[Break]:
    """Each check its own join on its own connection (a server backend each), side by side,
    every one reading ``snapshot``; the breaks still come in the order of :data:`CHECKS`,
    then the totals."""

    def joined(check: Check) -> Callable[[], Iterator[Break]]:
        def run() -> Iterator[Break]:
            with ExitStack() as stack:
                conn = connect_all(stack, engines[:1], snapshot)[0]
                groups = _joined(conn, check, [tables[i] for i in roles[check.left_role]],
                                 [tables[i] for i in roles[check.right_role]], period)
                for xs, ys in groups:
                    yield from _group_breaks(xs, ys, check)
        return run

    def totals() -> Iterator[Break]:
        with ExitStack() as stack:
            conns = connect_all(stack, engines, snapshot)
            yield from _totals(conns[0], conns[1:-1], conns[-1], period)

    yield from concurrently([*(joined(check) for check in CHECKS), totals])


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


def answering_link(t: FromClause, dialect: str, *vt_codes: str) -> ColumnElement[str]:
    """``admdiv|year/no`` of the payment a voucher of one of ``vt_codes`` numbered ``vt-no``
    answers (``flows.model.answering_header``); ``admdiv|?year/...`` when its number does
    not name one."""
    year, number = _year_and_number(t, dialect)
    width = len(vt_codes[0]) + 1
    assert all(len(vt) + 1 == width for vt in vt_codes)  # type codes: 4 digits
    head = func.substr(number, 1, width)
    names = (head == f"{vt_codes[0]}-" if len(vt_codes) == 1
             else head.in_([f"{vt}-" for vt in vt_codes]))
    return case((names, t.c.admdiv + "|" + year + "/" + func.substr(number, width + 1)),
                else_=t.c.admdiv + "|?" + year + "/" + number)


def clearing_link(t: FromClause, dialect: str) -> ColumnElement[str]:
    """``admdiv|year/no`` of the payment a cleared transfer application ``2301-no`` answers."""
    return answering_link(t, dialect, TRANSFER_APPLICATION)


Side = Callable[[Table, Period, str], Select[Any]]


def _side(t: Table, link: ColumnElement[str], period: Period,
          *where: ColumnElement[bool]) -> Select[Any]:
    conditions = list(where)
    if not period.everything:
        conditions.append(t.c.day.between(period.first, period.last))
    return select(link.label("link"), *(t.c[k] for k in COLUMNS[1:])).where(*conditions)


def _by_rule(t: Table, by_type: Mapping[str, str]) -> ColumnElement[bool]:
    """Postings each to the account its voucher type's rule gives."""
    return or_(*(and_(t.c.account == account, t.c.voucher_ref.like(f"{vt}/%"))
                 for vt, account in sorted(by_type.items())))


def finance_paid(t: Table, period: Period, dialect: str) -> Select[Any]:
    """Finance's payment postings, each to the account its voucher type's rule gives."""
    return _side(t, payment_link(t, dialect), period, _by_rule(t, PAID_BY_TYPE))


def bank_advanced(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, payment_link(t, dialect), period, t.c.account == ADVANCED)


def treasury_cleared(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, clearing_link(t, dialect), period, t.c.account == CLEARED)


def allocated(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, payment_link(t, dialect), period, t.c.account == ALLOCATED)


def finance_refunded(t: Table, period: Period, dialect: str) -> Select[Any]:
    """Finance's refund postings (2203 direct, 2204 authorized), linked to the payment."""
    return _side(t, answering_link(t, dialect, *sorted(REFUNDED_BY_TYPE)), period,
                 _by_rule(t, REFUNDED_BY_TYPE))


def bank_refunded(t: Table, period: Period, dialect: str) -> Select[Any]:
    """The bank's refund applications (2302) the treasury accepted, linked to the payment."""
    return _side(t, answering_link(t, dialect, REFUND_APPLICATION), period,
                 t.c.account == REFUND_RETURNED)


def treasury_refunded(t: Table, period: Period, dialect: str) -> Select[Any]:
    return _side(t, answering_link(t, dialect, REFUND_APPLICATION), period,
                 t.c.account == REFUND_RECEIVED)


def allocation_refunded(t: Table, period: Period, dialect: str) -> Select[Any]:
    """实拨退款 (3208): the treasury books it when sent, finance on receipt; one ref."""
    return _side(t, answering_link(t, dialect, ALLOCATION_REFUND), period,
                 t.c.account == ALLOCATION_REFUNDED)


BY_REF: Final = ("voucher_ref",)
"""Finance's payment and the bank's advance are postings of one voucher version: one ref. A
ledger holds a ref once per account (its unique key), so each side has it at most once; the
join on the ref alone lets the planner merge the two ledgers' ref indexes, and a ref booked
in two divisions is told apart afterwards."""
BY_LINK: Final = ("link",)
"""The bank's advance and the treasury's clearing meet at the payment's number; so do
finance's refund notice and the bank's refund application."""


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
    counted: bool = True
    """Name a key a side books more than once even when every amount agrees (a duplicate
    booking under a second ref): the SQL join counts each side's postings per key. Off for
    the payment checks, which read every payment (10^6 rows a side in the benchmark): the
    count costs a window and a materialized side, 1.2-1.4 s of 2.1 s for the advance /
    clearing join at 10^6, and an agreeing duplicate payment still shows in the totals."""


CHECKS: Final = (
    Check(FINANCE_PAID, FINANCE, finance_paid, BANK_ADVANCED, BANKS, bank_advanced, BY_REF,
          counted=False),
    Check(BANK_ADVANCED, BANKS, bank_advanced, TREASURY_CLEARED, TREASURY, treasury_cleared,
          BY_LINK, counted=False),
    Check(FINANCE_ALLOCATED, FINANCE, allocated, TREASURY_ALLOCATED, TREASURY, allocated,
          BY_REF),
    Check(FINANCE_REFUNDED, FINANCE, finance_refunded, BANK_REFUNDED, BANKS, bank_refunded,
          BY_LINK),
    Check(BANK_REFUNDED, BANKS, bank_refunded, TREASURY_REFUNDED, TREASURY, treasury_refunded,
          BY_REF),
    Check(TREASURY_ALLOCATION_REFUNDED, TREASURY, allocation_refunded,
          FINANCE_ALLOCATION_REFUNDED, FINANCE, allocation_refunded, BY_REF),
)


# --- joined in SQL ---------------------------------------------------------------------------

Group = tuple[list[Any], list[Any]]
"""The postings each side books under one key: normally one each, or one on one side."""


def _union(selects: list[Select[Any]], name: str) -> Subquery:
    return (selects[0] if len(selects) == 1 else union_all(*selects)).subquery(name)


def _counted(side: Subquery, key: tuple[str, ...], name: str) -> Subquery:
    """``side`` with ``n``, the number of its postings under each key."""
    return select(side, func.count().over(partition_by=[side.c[k] for k in key]).label("n")
                  ).subquery(name)


def _may_repeat(check: Check, ledgers: int) -> bool:
    """Must a side be counted — can it book the key more than once? A ledger holds a ref
    once per account and every side reads one account per voucher type, so a ref repeats
    only across ledgers (two banks); a link is shared by every ref that names the same
    payment."""
    return check.counted and (check.key != BY_REF or ledgers > 1)


def _joined(conn: Connection, check: Check, lefts: list[Table], rights: list[Table],
            period: Period) -> Iterator[Group]:
    """FULL OUTER JOIN of the two books on the check's key; only what does not agree (one
    side missing, the amounts differ, or — when counted — a side books the key more than
    once) comes back, in key order, grouped by key: the postings of each side that came.

    A side whose key may repeat (:func:`_may_repeat`) is counted per key — a window over
    the order the join sorts in anyway; the others are not, so that the join of two ledgers
    on the ref still merges their ref indexes. Presence is tested on the ref, a column,
    not on the link, an expression PostgreSQL would compute again for every row."""
    dialect = conn.dialect.name
    x = _union([check.left_side(t, period, dialect) for t in lefts], "x")
    y = _union([check.right_side(t, period, dialect) for t in rights], "y")
    repeats = [_may_repeat(check, len(lefts)), _may_repeat(check, len(rights))]
    if repeats[0]:
        x = _counted(x, check.key, "xn")
    if repeats[1]:
        y = _counted(y, check.key, "yn")
    suspect = [x.c.voucher_ref.is_(None), y.c.voucher_ref.is_(None),
               x.c.amount_fen != y.c.amount_fen, x.c.admdiv != y.c.admdiv,
               *(side.c.n > 1 for side, counted in zip((x, y), repeats, strict=True)
                 if counted)]
    stmt = (
        select(*(x.c[k] for k in COLUMNS), *(y.c[k] for k in COLUMNS))
        .select_from(x.join(y, and_(*(x.c[k] == y.c[k] for k in check.key)), full=True))
        .where(or_(*suspect))
        .order_by(*ordered(conn, *(func.coalesce(x.c[k], y.c[k]) for k in check.key),
                           x.c.voucher_ref, y.c.voucher_ref))
    )
    n = len(COLUMNS)
    at = [COLUMNS.index(k) for k in check.key]

    def key(row: Any) -> tuple[Any, ...]:
        side = 0 if row[0] is not None else n
        return tuple(row[side + i] for i in at)

    for _, rows in itertools.groupby(stream(conn, stmt), key=key):
        pairs = [(_part(row, 0, n), _part(row, n, n)) for row in rows]
        yield _distinct(x for x, _ in pairs), _distinct(y for _, y in pairs)


def _part(row: Any, start: int, width: int) -> tuple[Any, ...] | None:
    return None if row[start] is None else tuple(row[start:start + width])


def _distinct(rows: Iterable[tuple[Any, ...] | None]) -> list[Any]:
    """The postings of one side of a key's joined rows, each once (a key booked twice on
    one side and once on the other comes back as two rows sharing the other's posting)."""
    return list(dict.fromkeys(r for r in rows if r is not None))


# --- merged ----------------------------------------------------------------------------------


def _merged(check: Check, lefts: list[Connection], rights: list[Connection],
            period: Period) -> Iterator[Group]:
    """The same groups as :func:`_joined`, in the same order, from sorted streams: per key,
    the postings each side books under it, unless they are one each and agree (for an
    uncounted check, only the postings of the pairs that do not agree, as the join)."""
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
        if len(xs) == 1 and len(ys) == 1 and _agree(xs[0], ys[0]):
            continue
        if check.counted or not xs or not ys:
            yield xs, ys
            continue
        # what the uncounted join sends back: the pairs that do not agree, nothing if all do
        pairs = [(x, y) for x in xs for y in ys if not _agree(x, y)]
        if pairs:
            yield _distinct(x for x, _ in pairs), _distinct(y for _, y in pairs)


def _by_ref(row: Any) -> tuple[Any, ...]:
    """Postings in ref order; one ref booked by two banks in the order of the whole row, so
    that both ways of reading pair the same postings."""
    return (row[_REF], row)


def _agree(x: Any, y: Any) -> bool:
    return bool(x[_AMOUNT] == y[_AMOUNT] and x[_ADMDIV] == y[_ADMDIV])


# --- verdicts --------------------------------------------------------------------------------


def _group_breaks(xs: list[Any], ys: list[Any], check: Check) -> Iterator[Break]:
    """The breaks of one key: a posting of each side, or one alone, is compared as it is;
    when a side books the key more than once, each left posting takes the first right one
    (by ref) that agrees with it, what is left is paired in ref order, and a posting still
    left over is a duplicate booking — or missing / extra when the other side has none."""
    if len(xs) <= 1 and len(ys) <= 1:
        yield from _pair_breaks(xs[0] if xs else None, ys[0] if ys else None, check)
        return
    rights = sorted(ys, key=_by_ref)
    lefts = []
    for x in sorted(xs, key=_by_ref):
        match = next((i for i, y in enumerate(rights) if _agree(x, y)), None)
        if match is None:
            lefts.append(x)
        else:
            del rights[match]
    for x, y in itertools.zip_longest(lefts, rights):
        if x is None or y is None:
            yield from _pair_breaks(x, y, check, duplicate=bool(xs and ys))
        else:
            yield from _pair_breaks(x, y, check)


def _pair_breaks(left: Any, right: Any, check: Check, *,
                 duplicate: bool = False) -> Iterator[Break]:
    lbooks, rbooks = check.left, check.right
    if left is None and right is None:
        return
    if left is not None and right is not None:
        if _agree(left, right):
            return
        if left[_ADMDIV] != right[_ADMDIV]:  # one ref, two divisions: neither has the other's
            yield from _pair_breaks(left, None, check)
            yield from _pair_breaks(None, right, check)
            return
        kind = BreakKind.AMOUNT_MISMATCH
        detail = (f"{lbooks.name} {left[_AMOUNT]} fen, {rbooks.name} {right[_AMOUNT]} fen")
    elif duplicate:
        kind = BreakKind.DUPLICATE_BOOKING
        books, other, row = (lbooks, rbooks, left) if right is None else (rbooks, lbooks, right)
        detail = (f"{books.name} {row[_REF]}: booked once more than the {other.who}'s books "
                  f"for {_what(check, row)}")
    elif right is None:
        kind = BreakKind.MISSING
        detail = f"{lbooks.name} {left[_REF]}; the {rbooks.who}'s books have no counterpart"
    else:
        kind = BreakKind.EXTRA
        detail = f"{rbooks.name} {right[_REF]}; the {lbooks.who}'s books have no counterpart"
        if check.key == BY_LINK and right[_LINK].split("|", 1)[-1].startswith("?"):
            detail += (f" (its number does not name a payment as "
                       f"{str(right[_REF]).split('/', 1)[0]}-<no>)")
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


def _what(check: Check, row: Any) -> str:
    if check.key == BY_LINK:
        return f"payment {str(row[_LINK]).split('|', 1)[-1]}"
    return f"voucher {row[_REF]}"


# --- totals ----------------------------------------------------------------------------------

BY_UNIT: Final = ("admdiv", "agency_code", "fund_type", "day")
BY_FUND: Final = ("admdiv", "fund_type", "day")
PAID: Final = "paid"
"""Finance's two payment accounts (authorized and direct) summed as one measure."""
REFUNDED: Final = "refunded"
"""Finance's two refund accounts (direct and authorized) summed as one measure."""
MEASURES: Final[Mapping[str, Mapping[str, str]]] = {
    FINANCE: {**dict.fromkeys(sorted(set(PAID_BY_TYPE.values())), PAID), ALLOCATED: ALLOCATED,
              **dict.fromkeys(sorted(set(REFUNDED_BY_TYPE.values())), REFUNDED),
              ALLOCATION_REFUNDED: ALLOCATION_REFUNDED},
    BANKS: {ADVANCED: ADVANCED, REFUND_RETURNED: REFUND_RETURNED},
    TREASURY: {CLEARED: CLEARED, ALLOCATED: ALLOCATED, REFUND_RECEIVED: REFUND_RECEIVED,
               ALLOCATION_REFUNDED: ALLOCATION_REFUNDED},
}
"""Whose ledgers -> the accounts its totals sum -> the measure each is summed into."""
Measure = tuple[str, str, Books]
"""(whose ledgers, measure, how a break names it)."""
BY_UNIT_PAIRS: Final[tuple[tuple[Measure, Measure], ...]] = (
    ((FINANCE, PAID, FINANCE_PAID), (BANKS, ADVANCED, BANK_ADVANCED)),
    ((FINANCE, ALLOCATED, FINANCE_ALLOCATED), (TREASURY, ALLOCATED, TREASURY_ALLOCATED)),
    ((TREASURY, ALLOCATION_REFUNDED, TREASURY_ALLOCATION_REFUNDED),
     (FINANCE, ALLOCATION_REFUNDED, FINANCE_ALLOCATION_REFUNDED)),
)
BY_FUND_PAIRS: Final[tuple[tuple[Measure, Measure], ...]] = (
    ((BANKS, ADVANCED, BANK_ADVANCED), (TREASURY, CLEARED, TREASURY_CLEARED)),
    ((FINANCE, REFUNDED, FINANCE_REFUNDED), (BANKS, REFUND_RETURNED, BANK_REFUNDED)),
    ((BANKS, REFUND_RETURNED, BANK_REFUNDED), (TREASURY, REFUND_RECEIVED, TREASURY_REFUNDED)),
)
"""Compared by division, fund type and day: the treasury's clearing and every refund
application's posting name no unit (2301 and 2302 headers have no AgencyCode)."""
_BY_FUND_MEASURES: Final[list[tuple[str, str]]] = sorted(
    {(who, measure) for pair in BY_FUND_PAIRS for who, measure, _ in pair})


def _sums(conn: Connection, accounts: Iterable[str], period: Period) -> Iterator[Any]:
    """One pass over a ledger: the sum of each account by division, unit, fund type and day."""
    t = ledger_entries
    where = [t.c.account.in_(sorted(accounts))]
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
    :data:`BY_FUND_PAIRS` summed on the way (one entry per division, fund type and day — a
    few thousand at most) and compared at the end."""
    owners = [FINANCE, *(BANKS for _ in b_conns), TREASURY]
    conns = [f_conn, *b_conns, p_conn]
    width = len(BY_UNIT)
    streams = [ascending(_sums(c, MEASURES[who], period), itemgetter(*range(width + 1)),
                         f"totals of the {who}' books")
               for c, who in zip(conns, owners, strict=True)]
    by_fund: dict[tuple[str, ...], dict[tuple[str, str], int]] = defaultdict(
        lambda: defaultdict(int))
    fund_party: dict[tuple[str, str], str] = {}
    for key, rows_of in merge_groups(streams, itemgetter(*range(width))):
        sums: dict[tuple[str, str], int] = defaultdict(int)
        party: dict[tuple[str, str], str] = {}
        for who, rows in zip(owners, rows_of, strict=True):
            for row in rows:
                measure = MEASURES[who][row[width]]
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
        for summed in _BY_FUND_MEASURES:
            fund[summed] += sums[summed]
            if summed in party:
                fund_party.setdefault(summed, party[summed])
    for key, fund in sorted(by_fund.items()):
        for left, right in BY_FUND_PAIRS:
            lm, rm = (left[0], left[1]), (right[0], right[1])
            amounts = [fund[lm], fund[rm]]
            if amounts[0] != amounts[1]:
                yield _total_break(dict(zip(BY_FUND, key, strict=True)), left[2], right[2],
                                   amounts, [fund_party.get(lm, left[2].who),
                                             fund_party.get(rm, right[2].who)])


def _total_break(group: dict[str, Any], left: Books, right: Books, amounts: list[int],
                 party: list[str]) -> Break:
    what = ", ".join(f"{k} {v}" for k, v in group.items() if k != "admdiv")
    return Break(
        layer=Layer.BUSINESS, kind=BreakKind.TOTAL_MISMATCH, admdiv=group["admdiv"],
        party=party[0], counterparty=party[1], left=left.name, right=right.name,
        day=group["day"], left_amount_fen=amounts[0], right_amount_fen=amounts[1],
        agency_code=group.get("agency_code") or None, fund_type=group["fund_type"] or None,
        detail=f"{what}: {left.name} {amounts[0]} fen, {right.name} {amounts[1]} fen")
