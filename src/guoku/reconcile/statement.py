"""Library-to-library statements (对账单): what one node sent to and received from another, per
voucher type and direction — counts, amounts and an SM3 digest over the sorted rows.

Two nodes agree on a line when one's ``sent`` equals the other's ``received`` in count, amount
and digest. The digest covers (type, voucher no, version, amount, state as both sides name it),
so a missing, extra, changed or stuck voucher changes it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, and_, exists, or_, select

from guoku.security.crypto import sm3
from guoku.store.tables import voucher_events, vouchers

COMMON_STATE: Final = {
    # the sender's copy
    ("out", "sent"): "in_flight", ("out", "indeterminate"): "in_flight",
    ("out", "delivered"): "received", ("out", "accepted"): "accepted",
    ("out", "returned"): "returned", ("out", "failed"): "refused",
    # came back returned, then voided or replaced by a corrected version (only if it was sent)
    ("out", "void"): "returned", ("out", "superseded"): "returned",
    # the receiver's copy
    ("in", "received"): "received", ("in", "accepted"): "accepted",
    ("in", "returned"): "returned",
}
"""States both sides can name; a voucher never sent (draft .. sealed) is not counted."""
RECONCILIATION_TYPES: Final = ("3501", "3502", "3503", "3511", "3512", "3513")
"""Statements and their answers are not part of what they count."""
EMPTY_DIGEST: Final = sm3(b"").hex()


@dataclass(frozen=True, slots=True)
class Line:
    vt_code: str
    direction: str
    """``sent`` or ``received``, seen from the node that made the statement."""
    count: int
    amount_fen: int
    digest: str

    def mirrored(self) -> tuple[str, str]:
        """The key this line has in the counterparty's statement."""
        return self.vt_code, "received" if self.direction == "sent" else "sent"


def _scope(scope: str) -> object:
    if len(scope) == 8:
        return vouchers.c.vou_date == scope
    return vouchers.c.vou_date.like(f"{scope}%")


def _was_sent() -> Any:
    """An outgoing voucher counts once it was sent (a void draft never left)."""
    return exists().where(voucher_events.c.voucher_id == vouchers.c.id,
                          voucher_events.c.event == "send")


def summarize(conn: Connection, admdiv: str, ours: Collection[str],
              theirs: Collection[str], scope: str) -> list[Line]:
    """Our vouchers with ``theirs`` in division ``admdiv`` for a day (yyyymmdd) or a month."""
    rows = conn.execute(
        select(vouchers.c.vt_code, vouchers.c.direction, vouchers.c.voucher_no,
               vouchers.c.version, vouchers.c.amount_fen, vouchers.c.state)
        .where(vouchers.c.admdiv == admdiv, _scope(scope),  # type: ignore[arg-type]
               vouchers.c.vt_code.not_in(RECONCILIATION_TYPES),
               or_(and_(vouchers.c.direction == "out", vouchers.c.sender_party.in_(ours),
                        vouchers.c.receiver_party.in_(theirs), _was_sent()),
                   and_(vouchers.c.direction == "in", vouchers.c.receiver_party.in_(ours),
                        vouchers.c.sender_party.in_(theirs))))
        .order_by(vouchers.c.vt_code, vouchers.c.direction, vouchers.c.voucher_no,
                  vouchers.c.version)
        .execution_options(yield_per=2000)
    )
    return list(_lines(rows))


def _lines(rows: Iterable[Any]) -> Iterator[Line]:
    key: tuple[str, str] | None = None
    count = amount = 0
    h = None
    for r in rows:
        vt, direction, no, version, fen, state = tuple(r)
        common = COMMON_STATE.get((direction, state))
        if common is None:
            continue
        this = (vt, "sent" if direction == "out" else "received")
        if this != key:
            if key is not None and h is not None:
                yield Line(key[0], key[1], count, amount, h.hexdigest())
            key, count, amount, h = this, 0, 0, _Hasher()
        count += 1
        amount += int(fen)
        assert h is not None
        h.update(f"{vt}|{no}|{version}|{fen}|{common}\n".encode())
    if key is not None and h is not None:
        yield Line(key[0], key[1], count, amount, h.hexdigest())


class _Hasher:
    """Incremental SM3 through ``cryptography`` (flat memory for any number of rows)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import hashes

        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


@dataclass(frozen=True, slots=True)
class LineResult:
    vt_code: str
    direction: str
    ours: Line | None
    theirs: Line | None

    @property
    def agrees(self) -> bool:
        return (self.ours is not None and self.theirs is not None
                and (self.ours.count, self.ours.amount_fen, self.ours.digest)
                == (self.theirs.count, self.theirs.amount_fen, self.theirs.digest))


def compare(ours: list[Line], theirs: list[Line]) -> list[LineResult]:
    """Line by line: our ``sent`` against their ``received`` and the other way round."""
    mine = {(line.vt_code, line.direction): line for line in ours}
    other = {line.mirrored(): line for line in theirs}
    return [LineResult(vt, d, mine.get((vt, d)), other.get((vt, d)))
            for vt, d in sorted(set(mine) | set(other))]
