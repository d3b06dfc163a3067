"""Layer 1 — library to library (凭证库之间对账): every voucher one node sent against the copy
the other node received, voucher by voucher.

A pair is the sender's ``out`` copy and the receiver's ``in`` copy of one voucher version
(admdiv, year, type, number, version). It agrees when the amounts are equal and the states
tell the same story — :data:`PAIRS`, the one table of verdicts:

* sender ``accepted`` with receiver ``accepted``; ``returned`` (or, after the return,
  ``void`` / ``superseded``) with ``returned``; ``delivered`` with ``received``;
* a voucher never sent (draft, checked, sealed), refused by the receiving node (failed), or
  voided or superseded without reaching the receiver, has no receiver's copy;
* ``sent`` / ``indeterminate`` are in flight, and a receiver further on than the sender means
  its receipt is on the way: these become breaks only when neither copy moved for longer than
  the grace period (a dropped message, a voucher stuck in one state).

Two ways to read the copies, with the same verdicts: a streaming sorted merge of the two
databases (portable), or — when both nodes are schemas of one PostgreSQL database — a FULL OUTER
JOIN in SQL that sends back only the pairs that do not obviously agree.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import Connection, Engine, Table, and_, func, not_, or_, select, tuple_
from sqlalchemy.sql import Select

from guoku.domain.errors import ValidationError
from guoku.domain.lifecycle import State
from guoku.library.ports import iso, system_clock
from guoku.reconcile.breaks import Break, BreakKind, Layer, Period
from guoku.reconcile.merge import (
    Method,
    ascending,
    concurrently,
    connect_all,
    export_snapshot,
    in_schema,
    merge_join,
    ordered,
    resolve_method,
    stream,
)
from guoku.store.tables import vouchers

DEFAULT_GRACE: Final = timedelta(minutes=10)
"""How long a voucher may stay in flight before it is a break: the delivery time limit after
which the sender queries its status (``guoku.library.inbound.DELIVERY_LIMIT``)."""

KEY: Final = ("admdiv", "st_year", "vt_code", "voucher_no", "version")
COLUMNS: Final = (*KEY, "state", "amount_fen", "vou_date", "sender_party", "receiver_party",
                  "updated_at")
_key = itemgetter(0, 1, 2, 3, 4)
_STATE, _AMOUNT, _DAY, _SENDER, _RECEIVER, _UPDATED = 5, 6, 7, 8, 9, 10


class Verdict(enum.Enum):
    AGREE = "agree"
    MISSING = "missing"
    """The receiver has no copy of what the sender sent."""
    EXTRA = "extra"
    """The receiver holds a copy the sender has no record of."""
    STATUS = "status"
    LATE_MISSING = "late_missing"
    """In flight: missing only once the sender's copy is older than the grace period."""
    LATE_STATUS = "late_status"
    """A receipt on its way: a status mismatch only once neither copy moved within grace."""


S = State
_UNSENT = (S.DRAFT, S.CHECKED, S.SEALED)
_IN_FLIGHT = (S.SENT, S.INDETERMINATE, S.PAPER)
"""A paper-fallback voucher (decision 0021) is in flight like an indeterminate one: its
electronic copy is queued until the link is back."""
_RECEIVER_STATES = (S.RECEIVED, S.ACCEPTED, S.RETURNED)

PAIRS: Final[Mapping[tuple[str, str | None], Verdict]] = MappingProxyType({
    **{(s.value, None): Verdict.AGREE for s in _UNSENT},
    **{(s.value, None): Verdict.LATE_MISSING for s in _IN_FLIGHT},
    **{(s.value, None): Verdict.MISSING for s in (S.DELIVERED, S.ACCEPTED, S.RETURNED)},
    **{(s.value, None): Verdict.AGREE for s in (S.FAILED, S.VOID, S.SUPERSEDED)},
    **{(s.value, r.value): Verdict.LATE_STATUS for s in _IN_FLIGHT for r in _RECEIVER_STATES},
    (S.DELIVERED.value, S.RECEIVED.value): Verdict.AGREE,
    (S.DELIVERED.value, S.ACCEPTED.value): Verdict.LATE_STATUS,
    (S.DELIVERED.value, S.RETURNED.value): Verdict.LATE_STATUS,
    (S.ACCEPTED.value, S.ACCEPTED.value): Verdict.AGREE,
    **{(s.value, S.RETURNED.value): Verdict.AGREE
       for s in (S.RETURNED, S.VOID, S.SUPERSEDED)},
})
"""(sender's state, receiver's state or None when it has no copy) -> verdict. A pair not in
the table is a status mismatch when both copies exist."""

AGREEING: Final = frozenset(pair for pair, v in PAIRS.items()
                            if v is Verdict.AGREE and pair[1] is not None)
"""Pairs of states that agree when both copies exist: the merge's and the SQL's fast path."""


def verdict(sender_state: str | None, receiver_state: str | None) -> Verdict:
    if sender_state is None:
        return Verdict.EXTRA
    otherwise = Verdict.MISSING if receiver_state is None else Verdict.STATUS
    return PAIRS.get((sender_state, receiver_state), otherwise)


def layer1(
    a: Engine, a_party_codes: Collection[str], b: Engine, b_party_codes: Collection[str], *,
    day: str | None = None, month: str | None = None, grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None, method: Method = "auto",
) -> Iterator[Break]:
    """What ``a``'s parties sent to ``b``'s parties against what ``b`` received from them,
    then the other way round; breaks in key order, streamed."""
    period = Period.of(day, month)
    a_parties, b_parties = _codes(a_party_codes), _codes(b_party_codes)
    if grace < timedelta(0):
        raise ValidationError("the grace period cannot be negative")
    cutoff = iso((now or system_clock()) - grace)
    schemas = resolve_method(method, [a, b])
    if schemas is not None:
        a_table, b_table = (in_schema(vouchers, s) for s in schemas)
        with ExitStack() as leader:
            snapshot = export_snapshot(leader, a)
            yield from concurrently([
                _joined_way(a, snapshot, a_table, a_parties, b_table, b_parties, period, cutoff),
                _joined_way(a, snapshot, b_table, b_parties, a_table, a_parties, period, cutoff),
            ])
        return
    with ExitStack() as stack:  # separate databases: the streaming merge, one way at a time
        a_conn, b_conn = connect_all(stack, [a, b])
        for sender_conn, senders, receiver_conn, receivers in (
                (a_conn, a_parties, b_conn, b_parties),
                (b_conn, b_parties, a_conn, a_parties)):
            for pair in _merged(sender_conn, receiver_conn, senders, receivers, period):
                yield from classify(*pair, cutoff)


def _joined_way(engine: Engine, snapshot: str, sender: Table, senders: list[str],
                receiver: Table, receivers: list[str], period: Period,
                cutoff: str) -> Callable[[], Iterator[Break]]:
    """One way's join (what ``senders`` sent against what ``receivers`` received) on its own
    connection reading ``snapshot``: the two ways run side by side, one server core each."""

    def run() -> Iterator[Break]:
        with ExitStack() as stack:
            conn = connect_all(stack, [engine], snapshot)[0]
            for pair in _joined(conn, sender, receiver, senders, receivers, period):
                yield from classify(*pair, cutoff)

    return run


def _codes(codes: Collection[str]) -> list[str]:
    if isinstance(codes, str) or not codes:
        raise ValidationError("name the parties as a non-empty collection of party codes")
    return sorted(set(codes))


# --- reading the copies ----------------------------------------------------------------------


def copies(table: Table, direction: str, senders: list[str], receivers: list[str],
           period: Period) -> Select[Any]:
    """One node's copies (``out``: sent, ``in``: received) of what ``senders`` addressed to
    ``receivers``."""
    c = table.c
    where = [c.direction == direction, c.sender_party.in_(senders),
             c.receiver_party.in_(receivers)]
    if not period.everything:
        where.append(c.vou_date.between(period.first, period.last))
    return select(*(c[name] for name in COLUMNS)).where(*where)


def _merged(sender_conn: Connection, receiver_conn: Connection, senders: list[str],
            receivers: list[str], period: Period) -> Iterator[tuple[Any, Any]]:
    sides = []
    for conn, direction in ((sender_conn, "out"), (receiver_conn, "in")):
        stmt = copies(vouchers, direction, senders, receivers, period)
        stmt = stmt.order_by(*ordered(conn, *(vouchers.c[k] for k in KEY)))
        sides.append(ascending(stream(conn, stmt), _key, f"{direction} copies"))
    return merge_join(sides[0], sides[1], _key, _agree)


def _agree(s: Any, r: Any) -> bool:
    return bool(s[_AMOUNT] == r[_AMOUNT] and (s[_STATE], r[_STATE]) in AGREEING)


def _joined(conn: Connection, sender_table: Table, receiver_table: Table, senders: list[str],
            receivers: list[str], period: Period) -> Iterator[tuple[Any, Any]]:
    """FULL OUTER JOIN of the sent and the received copies in one database, on the key alone
    (so the planner may merge the two key indexes); only the pairs that do not agree on sight
    come back, in key order, and get the same verdicts as merged pairs."""
    s = copies(sender_table, "out", senders, receivers, period).subquery("s")
    r = copies(receiver_table, "in", senders, receivers, period).subquery("r")
    same = sorted(x for x, y in AGREEING if x == y)
    crossed = sorted((x, y) for x, y in AGREEING if x != y)
    agreeing = or_(and_(s.c.state == r.c.state, s.c.state.in_(same)),  # nearly all: first
                   tuple_(s.c.state, r.c.state).in_(crossed))
    stmt = (
        select(*(s.c[k] for k in COLUMNS), *(r.c[k] for k in COLUMNS))
        .select_from(s.join(r, and_(*(s.c[k] == r.c[k] for k in KEY)), full=True))
        .where(or_(s.c.voucher_no.is_(None), r.c.voucher_no.is_(None),
                   s.c.amount_fen != r.c.amount_fen, not_(agreeing)))
        .order_by(*ordered(conn, *(func.coalesce(s.c[k], r.c[k]) for k in KEY)))
    )
    width = len(COLUMNS)
    for row in stream(conn, stmt):
        sender = None if row[3] is None else tuple(row[:width])
        receiver = None if row[width + 3] is None else tuple(row[width:])
        yield sender, receiver


# --- verdicts --------------------------------------------------------------------------------


def classify(sender: Any, receiver: Any, cutoff: str) -> Iterator[Break]:
    """The breaks of one pair of copies (either may be ``None``); ``cutoff`` is the ISO time
    before which an in-flight voucher counts as lost or stuck."""
    row = sender if sender is not None else receiver
    sender_state = None if sender is None else sender[_STATE]
    receiver_state = None if receiver is None else receiver[_STATE]
    found = verdict(sender_state, receiver_state)
    if found is Verdict.LATE_MISSING:
        found = Verdict.MISSING if sender[_UPDATED] < cutoff else Verdict.AGREE
    elif found is Verdict.LATE_STATUS:
        latest = max(sender[_UPDATED], receiver[_UPDATED])
        found = Verdict.STATUS if latest < cutoff else Verdict.AGREE

    def brk(kind: BreakKind, detail: str) -> Break:
        return Break(
            layer=Layer.LIBRARIES, kind=kind, admdiv=row[0], party=row[_SENDER],
            counterparty=row[_RECEIVER], left="sender copy", right="receiver copy",
            vt_code=row[2], st_year=row[1], voucher_no=row[3], version=row[4], day=row[_DAY],
            left_amount_fen=None if sender is None else sender[_AMOUNT],
            right_amount_fen=None if receiver is None else receiver[_AMOUNT],
            left_state=sender_state, right_state=receiver_state, detail=detail)

    if found is Verdict.MISSING:
        yield brk(BreakKind.MISSING, f"the sender's copy is {sender_state}; the receiver "
                                     "has no copy")
    elif found is Verdict.EXTRA:
        yield brk(BreakKind.EXTRA, f"the receiver holds a copy ({receiver_state}) the sender "
                                   "has no record of")
    elif found is Verdict.STATUS:
        yield brk(BreakKind.STATUS_MISMATCH, f"the sender's copy is {sender_state}, the "
                                             f"receiver's {receiver_state}")
    if sender is not None and receiver is not None and sender[_AMOUNT] != receiver[_AMOUNT]:
        yield brk(BreakKind.AMOUNT_MISMATCH, f"the sender's copy says {sender[_AMOUNT]} fen, "
                                             f"the receiver's {receiver[_AMOUNT]} fen")

