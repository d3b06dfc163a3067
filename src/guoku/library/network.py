"""The embedded transport: every node in one process, messages moved from outboxes to peers.

Production uses RabbitMQ (the middleware issue); this in-process relay keeps the same contract —
a message leaves a node only from its committed outbox, is marked published only after the
receiver committed it, and a redelivery is absorbed by the receiver's inbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select, update

from guoku.library.ports import iso
from guoku.library.service import VoucherLibrary
from guoku.store.tables import outbox
from guoku.store.uow import UnitOfWork

RELAY_BATCH: Final = 500


@dataclass
class EmbeddedNetwork:
    """Routes each party code to the node (library) that serves it."""

    routes: dict[str, VoucherLibrary] = field(default_factory=dict)

    def attach(self, library: VoucherLibrary, parties: list[str]) -> None:
        for code in parties:
            self.routes[code] = library

    def nodes(self) -> list[VoucherLibrary]:
        unique: dict[int, VoucherLibrary] = {id(n): n for n in self.routes.values()}
        return list(unique.values())

    def pump(self) -> Mapping[str, int]:
        """Deliver pending messages until every outbox is empty; return counts by outcome."""
        counts: dict[str, int] = {}
        while True:
            moved = 0
            for node in self.nodes():
                moved += self._relay(node, counts)
            if moved == 0:
                return counts

    def _relay(self, node: VoucherLibrary, counts: dict[str, int]) -> int:
        with UnitOfWork(node.engine) as uow:
            pending = uow.conn.execute(
                select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.id)
                .limit(RELAY_BATCH)
            ).all()
        for msg in pending:
            target = self.routes.get(msg.receiver_party)
            if target is None:
                raise LookupError(f"no node serves party {msg.receiver_party}")
            outcome = target.receive(
                msg.sender_party, msg.receiver_party, msg.message_id, msg.kind, msg.payload
            )
            counts[outcome] = counts.get(outcome, 0) + 1
            with UnitOfWork(node.engine) as uow:
                uow.conn.execute(
                    update(outbox).where(outbox.c.id == msg.id)
                    .values(published_at=iso(node.clock()))
                )
                uow.commit()
        return len(pending)
