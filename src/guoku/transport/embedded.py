"""The embedded transport: every node's queue in memory, pumped in one process.

Same messaging code as production (sealed, encrypted, signed envelopes through each node's
outbox and inbox); only the broker is a dict of deques. ``pump`` runs until no node has
anything left to publish or consume. ``duplicate=True`` delivers every envelope twice.
A node named in ``down`` is unavailable: it neither publishes nor consumes, and what is sent to
it waits in its queue (as in a durable broker queue) until it is back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from guoku.transport.messenger import Messenger


@dataclass
class EmbeddedTransport:
    queues: dict[str, deque[bytes]] = field(default_factory=dict)
    published: int = 0
    delivered: int = 0
    down: set[str] = field(default_factory=set)

    def publish(self, receiver_node: str, envelope_id: str, body: bytes) -> None:
        self.queues.setdefault(receiver_node, deque()).append(body)
        self.published += 1

    def pump(self, messengers: Iterable[Messenger], duplicate: bool = False) -> int:
        """Move everything until quiet; returns the number of envelopes delivered."""
        nodes = {m.node_name: m for m in messengers}
        moved_total = 0
        while True:
            moved = 0
            for messenger in (m for n, m in nodes.items() if n not in self.down):
                for envelope in messenger.pending():
                    self.publish(envelope.receiver_node, envelope.envelope_id, envelope.body)
                    messenger.mark_published(envelope)
                    moved += 1
            for name, queue in self.queues.items():
                while queue and name not in self.down:
                    body = queue.popleft()
                    for _ in range(2 if duplicate else 1):
                        nodes[name].handle(body)
                        self.delivered += 1
                    moved += 1
            moved_total += moved
            if moved == 0:
                return moved_total

    def close(self) -> None:
        self.queues.clear()
