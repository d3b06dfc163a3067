"""PartitionedRuntime with one worker holding every partition (SoleLeases) and in-memory fakes:
each envelope goes to the receiver's queue of its division's partition, in outbox order within a
partition; a consumer runs per partition; housekeeping runs on the housekeeper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from guoku.node.partitions import SoleLeases, partition_of
from guoku.node.workers import PartitionedRuntime
from guoku.transport.amqp import DeadLetterSink
from guoku.transport.ports import Handler, OutgoingEnvelope

PARTITIONS = 4
ADMDIVS = ("533103", "533102", "530102", "530103")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Messenger:
    node_name = "pboc"

    def __init__(self) -> None:
        # outbox rows: (id, admdiv); each becomes a one-row envelope
        self.rows = [(i, ADMDIVS[i % len(ADMDIVS)]) for i in range(20)]
        self.published: set[int] = set()
        self.handled: list[bytes] = []
        self.swept = 0
        self.lock = threading.Lock()

    def pending_admdivs(self) -> set[str]:
        with self.lock:
            return {a for i, a in self.rows if i not in self.published}

    def pending(self, limit: int, admdivs: Collection[str] | None = None
                ) -> list[OutgoingEnvelope]:
        with self.lock:
            rows = [(i, a) for i, a in self.rows if i not in self.published
                    and (admdivs is None or a in admdivs)][:limit]
        return [OutgoingEnvelope(f"{a}:{i}", "bank-icbc", a.encode(), (i,)) for i, a in rows]

    def mark_published(self, envelope: OutgoingEnvelope) -> None:
        with self.lock:
            self.published.update(envelope.outbox_ids)

    def handle(self, body: bytes) -> None:
        self.handled.append(body)

    def sweep(self) -> int:
        self.swept += 1
        return 0

    def record_dead_letter(self, *_args: object) -> None:
        raise AssertionError("no dead letters here")


class Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None, str]] = []
        self.consuming: set[int | None] = set()
        self.drained: list[int | None] = []

    def publish(self, receiver_node: str, envelope_id: str, body: bytes, *,
                partition: int | None = None) -> None:
        self.sent.append((receiver_node, partition, envelope_id))

    def consume(self, node: str, handler: Handler, stop: threading.Event, *,
                partition: int | None = None) -> None:
        self.consuming.add(partition)
        handler(f"{node}:{partition}".encode())
        stop.wait()

    def drain_dead_letters(self, node: str, sink: DeadLetterSink, *,
                           partitions: int | None = None) -> int:
        self.drained.append(partitions)
        return 0

    def queue_name(self, node: str) -> str:
        return f"q.{node}"

    def close(self) -> None:
        pass


def test_envelopes_go_to_their_partition_in_order() -> None:
    messenger, transport = Messenger(), Transport()
    runtime = PartitionedRuntime(messenger, transport, SoleLeases(PARTITIONS),
                                 relay_interval=0.01, sweep_interval=0.01, drain_interval=0.01,
                                 lease_interval=0.01)
    runtime.start()
    try:
        wait_until(lambda: len(messenger.published) == 20)
        wait_until(lambda: transport.consuming == set(range(PARTITIONS)))
        wait_until(lambda: messenger.swept > 0 and transport.drained != [])
        assert runtime.snapshot()["partitions"] == list(range(PARTITIONS))
    finally:
        assert runtime.shutdown()
    assert len(transport.sent) == 20
    for _receiver, partition, envelope_id in transport.sent:
        assert partition == partition_of(envelope_id.split(":")[0], PARTITIONS)
    for admdiv in ADMDIVS:
        ids = [int(e.split(":")[1]) for _, _, e in transport.sent if e.startswith(admdiv)]
        assert ids == sorted(ids)
    assert sorted(messenger.handled) == sorted(f"pboc:{k}".encode() for k in range(PARTITIONS))
    assert set(transport.drained) == {PARTITIONS}
