"""A node as one of N stateless worker processes over one database and one set of queues.

:class:`PartitionedRuntime` is :class:`~guoku.node.runtime.NodeRuntime` with the work split
into partitions (:mod:`guoku.node.partitions`): a lease keeper takes and gives back partitions
towards this worker's share; for each partition held the worker consumes that partition's queue
(a consumer thread of its own) and relays that partition's outbox rows, oldest first, to the
receiver's queue of the same partition. Only the housekeeper sweeps time limits and drains dead
letters. A worker keeps nothing of its own: kill one and the others take its partitions over
(its session's leases end with it); whatever it had in hand is redelivered by the broker or
republished from the outbox and absorbed by the inbox.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any, Protocol

from guoku.node.partitions import Leases, owned
from guoku.node.runtime import LoopHealth, NodeMessenger, NodeRuntime, NodeTransport
from guoku.transport.amqp import DeadLetterSink
from guoku.transport.ports import Handler, OutgoingEnvelope

log = logging.getLogger(__name__)

STOP_CONSUMER_TIMEOUT = 30.0


class PartitionedMessenger(NodeMessenger, Protocol):
    def pending(self, limit: int, admdivs: set[str] | None = None) -> list[OutgoingEnvelope]: ...

    def pending_admdivs(self) -> set[str]: ...


class PartitionedTransport(NodeTransport, Protocol):
    def publish(self, receiver_node: str, envelope_id: str, body: bytes, *,
                partition: int | None = None) -> None: ...

    def consume(self, node: str, handler: Handler, stop: threading.Event, *,
                partition: int | None = None) -> None: ...

    def drain_dead_letters(self, node: str, sink: DeadLetterSink, *,
                           partitions: int | None = None) -> int: ...


class PartitionedRuntime(NodeRuntime):
    """One worker of a scaled-out node; ``leases`` decide which partitions it works."""

    def __init__(self, messenger: PartitionedMessenger, transport: PartitionedTransport,
                 leases: Leases, *, lease_interval: float = 1.0, **options: Any) -> None:
        super().__init__(messenger, transport, **options)
        assert lease_interval > 0
        self.pmessenger = messenger
        self.ptransport = transport
        self.leases = leases
        self.partitions = leases.partitions
        self.lease_interval = lease_interval
        self._held: frozenset[int] = frozenset()
        self._housekeeper = False
        self._consumers: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._relaying = {k: threading.Lock() for k in range(self.partitions)}
        self.counters.loops["leases"] = LoopHealth()

    # -- leases and consumers (the "consume" loop) -----------------------------------------

    def _consume_loop(self) -> None:
        backoff = self._fresh_backoff()
        try:
            while not self._stop.is_set():
                try:
                    held, housekeeper = self.leases.balance(self._release)
                except Exception as exc:
                    self._held, self._housekeeper = frozenset(), False
                    self._failed("leases", exc)
                    self._stop.wait(backoff.next())
                    continue
                backoff.reset()
                self._ok("leases")
                self._held, self._housekeeper = held, housekeeper
                for k in sorted(held):
                    running = self._consumers.get(k)
                    if running is None or not running[0].is_alive():
                        self._start_consumer(k)
                self._stop.wait(self.lease_interval)
        finally:
            self.leases.close(self._release)
            for k in list(self._consumers):
                self._stop_consumer(k)

    def _start_consumer(self, k: int) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._consume_partition, args=(k, stop),
                                  name=f"{self.node}-consume-{k}", daemon=True)
        self._consumers[k] = (thread, stop)
        thread.start()

    def _consume_partition(self, k: int, stop: threading.Event) -> None:
        backoff = self._fresh_backoff()
        while not stop.is_set() and not self._stop.is_set():
            try:
                self.ptransport.consume(self.node, self._handle, stop, partition=k)
            except Exception as exc:
                self._failed("consume", exc)
                stop.wait(backoff.next())
            else:
                backoff.reset()
                stop.wait(self.relay_interval)

    def _stop_consumer(self, k: int) -> None:
        running = self._consumers.pop(k, None)
        if running is None:
            return
        thread, stop = running
        stop.set()
        thread.join(STOP_CONSUMER_TIMEOUT)
        if thread.is_alive():
            log.error("consumer of partition %d did not stop in %.0f s", k,
                      STOP_CONSUMER_TIMEOUT)

    def _release(self, k: int) -> None:
        """Stop working partition ``k``: no new relay pass, the current one done, its consumer
        finished with the delivery in hand."""
        self._held = self._held - {k}
        with self._relaying[k]:
            pass
        self._stop_consumer(k)

    def stop(self) -> None:
        super().stop()
        for _, stop in list(self._consumers.values()):
            stop.set()

    # -- relay and housekeeping -------------------------------------------------------------

    def _relay_once(self) -> int:
        if not self._held:
            return 0
        moved = 0
        for k, admdivs in sorted(owned(self.pmessenger.pending_admdivs(), self._held,
                                       self.partitions).items()):
            with self._relaying[k]:
                if k not in self._held:
                    continue
                envelopes = self.pmessenger.pending(self.batch, admdivs)
                moved += self._relay(envelopes, partial(self._publish_to, k))
        return moved

    def _publish_to(self, k: int, envelope: OutgoingEnvelope) -> None:
        self.ptransport.publish(envelope.receiver_node, envelope.envelope_id, envelope.body,
                                partition=k)

    def _drain_into(self, sink: DeadLetterSink) -> int:
        if not self._housekeeper:
            return 0
        return self.ptransport.drain_dead_letters(self.node, sink, partitions=self.partitions)

    def _sweep(self) -> None:
        if self._housekeeper:
            super()._sweep()

    def snapshot(self) -> dict[str, Any]:
        document = super().snapshot()
        document.update(partitions=sorted(self._held), of_partitions=self.partitions,
                        housekeeper=self._housekeeper, live_workers=self.leases.live_workers())
        return document
