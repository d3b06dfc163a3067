"""A node's messaging: outbox rows become sealed envelopes, envelopes become applied items.

Transport-neutral: the embedded transport and AMQP both drive the same four calls —
:meth:`Messenger.pending`, :meth:`Messenger.mark_published`, :meth:`Messenger.handle` and
:meth:`Messenger.sweep`. Consecutive outbox rows for the same (sender, receiver, kind) travel in
one envelope of up to ``MAX_BATCH`` items, so order per receiver is the outbox order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Any, Protocol, TypeVar

from sqlalchemy import distinct, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from guoku.domain.errors import GuokuError
from guoku.library import messages as msg
from guoku.library.ports import Clock, iso
from guoku.library.service import VoucherLibrary
from guoku.province import NodeSpec, ProvinceSpec
from guoku.security.certs import TrustStore
from guoku.security.crypto import sm3_hex
from guoku.security.x509 import Certificate
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.tables import dead_letters, outbox, rejected_envelopes, vouchers
from guoku.store.uow import UnitOfWork
from guoku.transport.envelope import (
    MAX_BATCH,
    MAX_BATCH_PAYLOAD,
    EnvelopeRejected,
    Head,
    Item,
    open_envelope,
    read_head,
    seal_envelope,
)
from guoku.transport.ports import OutgoingEnvelope, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


class EnvelopeKeys(Protocol):
    """The institution-key operations of the node's signing server."""

    def sign(self, party_code: str, data: bytes) -> bytes: ...

    def decrypt(self, party_code: str, ciphertext: bytes) -> bytes: ...


@dataclass
class Messenger:
    node: NodeSpec
    province: ProvinceSpec
    library: VoucherLibrary
    keys: EnvelopeKeys
    certificates: Mapping[str, Certificate]
    """Institution certificate of every party (the directory published with the trust)."""
    trust: TrustStore
    clock: Clock

    @property
    def node_name(self) -> str:
        return self.node.name

    # --- sending -----------------------------------------------------------------------------

    def pending(self, limit: int = 20,
                admdivs: Collection[str] | None = None) -> list[OutgoingEnvelope]:
        """Sealed envelopes for the oldest unpublished outbox rows, in outbox order; only the
        rows of ``admdivs`` when given (a worker's partition)."""
        query = (select(outbox, vouchers.c.voucher_no)
                 .outerjoin(vouchers, vouchers.c.id == outbox.c.voucher_id)
                 .where(outbox.c.published_at.is_(None)))
        if admdivs is not None:
            if not admdivs:
                return []
            query = query.where(outbox.c.admdiv.in_(sorted(admdivs)))
        with self._db() as uow:
            rows = uow.conn.execute(query.order_by(outbox.c.id).limit(limit * MAX_BATCH)).all()
        return [self._seal(group) for group in islice(_runs(rows), limit)]

    def pending_admdivs(self) -> set[str]:
        """The divisions that have unpublished outbox rows (what a partitioned relay splits)."""
        with self._db() as uow:
            return {str(a) for a in uow.conn.execute(
                select(distinct(outbox.c.admdiv)).where(outbox.c.published_at.is_(None)))
                .scalars()}

    def _seal(self, rows: list[Any]) -> OutgoingEnvelope:
        first = rows[0]
        head = Head(first.sender_party, first.receiver_party, uuid.uuid4().hex, first.kind,
                    first.vt_code, first.admdiv, self.clock(), len(rows))
        items = [Item(r.message_id, r.kind, r.payload) for r in rows]
        body = seal_envelope(
            head, items, sender_cert=self.certificates[head.sender],
            receiver_cert=self.certificates[head.receiver],
            sign=lambda data: self.keys.sign(head.sender, data),
        )
        log.info("sealed envelope", extra={
            "envelope_id": head.envelope_id, "receiver": head.receiver, "kind": head.kind,
            "admdiv": head.admdiv, "items": len(rows),
            "voucher_nos": [str(r.voucher_no) for r in rows if r.voucher_no is not None]})
        return OutgoingEnvelope(head.envelope_id, self.province.node_of(head.receiver).name,
                                body, tuple(int(r.id) for r in rows))

    def mark_published(self, envelope: OutgoingEnvelope) -> None:
        with self._db() as uow:
            uow.conn.execute(
                update(outbox).where(outbox.c.id.in_(envelope.outbox_ids))
                .values(published_at=iso(self.clock()), envelope_id=envelope.envelope_id)
            )
            uow.commit()

    # --- receiving ---------------------------------------------------------------------------

    def handle(self, body: bytes) -> None:
        """Apply one envelope in one transaction (each item exactly once, a refused item alone
        refused); refuse a bad envelope with an error receipt. Raises TransientError when the
        database fails: then nothing of the envelope is applied and it is delivered again."""
        try:
            opened = open_envelope(body, my_parties=frozenset(self.node.parties),
                                   trust=self.trust, now=self.clock(), decrypt=self.keys.decrypt)
        except EnvelopeRejected as exc:
            self._guarded(partial(self._reject, body, exc))
            return
        head = opened.head
        outcomes = self._guarded(partial(
            self.library.receive_many, head.sender, head.receiver,
            [(i.message_id, i.kind, i.payload) for i in opened.items]))
        log.info("applied envelope", extra={
            "envelope_id": head.envelope_id, "sender": head.sender, "kind": head.kind,
            "admdiv": head.admdiv, "message_ids": [i.message_id for i in opened.items],
            "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))}})

    @staticmethod
    def _guarded(work: Callable[[], T]) -> T:
        """Run ``work``; a database that is down is transient (the message is retried)."""
        try:
            return work()
        except (OperationalError, DBAPIError) as exc:
            raise TransientError(f"database unavailable: {exc.__class__.__name__}") from exc

    def _reject(self, body: bytes, exc: EnvelopeRejected) -> None:
        try:
            head: Head | None = read_head(body)
        except GuokuError:
            head = None
        at = iso(self.clock())
        with self._db() as uow:
            uow.conn.execute(insert(rejected_envelopes).values(
                envelope_id=head.envelope_id if head else None,
                claimed_sender=head.sender[:42] if head else None, code=exc.code,
                reason=exc.message[:2000], size=len(body), sha=sm3_hex(body), rejected_at=at,
            ))
            audit.append(uow.conn, admdiv="000000", at=at, actor=f"system:{self.node.name}",
                         action="receive.envelope", outcome="refused",
                         detail={"code": exc.code, "message": exc.message[:500],
                                 "envelope": head.envelope_id if head else None})
            if head is not None and repo.party_exists(uow.conn, head.sender):
                me = head.receiver if head.receiver in self.node.parties else self.node.node_party
                item = msg.ErrorReceipt(None, head.envelope_id, exc.code, exc.message[:500])
                msg.enqueue(uow.conn, at=at, admdiv="000000", sender=me, receiver=head.sender,
                            kind=msg.ERROR, vt_code="0000", voucher_id=None,
                            payload=msg.dump(item))
            uow.commit()

    # --- time limits and dead letters ----------------------------------------------------------

    def sweep(self) -> int:
        return self.library.sweep()

    def record_dead_letter(self, queue: str, envelope_id: str | None, body: bytes, reason: str,
                           attempts: int) -> None:
        with self._db() as uow:
            uow.conn.execute(insert(dead_letters).values(
                envelope_id=envelope_id, queue=queue, body=body, reason=reason[:2000],
                attempts=attempts, dead_at=iso(self.clock()),
            ))
            audit.append(uow.conn, admdiv="000000", at=iso(self.clock()),
                         actor=f"system:{self.node.name}", action="mq.dead_letter",
                         outcome="refused", detail={"envelope": envelope_id, "reason": reason})
            uow.commit()

    def _db(self) -> UnitOfWork:
        return UnitOfWork(self.library.engine)

    def now(self) -> datetime:
        return self.clock()


def _runs(rows: Sequence[Any]) -> Iterator[list[Any]]:
    """Consecutive rows with the same (sender, receiver, kind), at most MAX_BATCH items and
    MAX_BATCH_PAYLOAD bytes each."""
    run: list[Any] = []
    size = 0
    for row in rows:
        if run and ((row.sender_party, row.receiver_party, row.kind) !=
                    (run[0].sender_party, run[0].receiver_party, run[0].kind)
                    or len(run) == MAX_BATCH or size + len(row.payload) > MAX_BATCH_PAYLOAD):
            yield run
            run, size = [], 0
        run.append(row)
        size += len(row.payload)
    if run:
        yield run
