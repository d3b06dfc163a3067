"""NodeRuntime's loops with an in-memory transport and messenger: ordering, retries, shutdown,
health. The fakes keep the contract of the real ones (ack after the handler returned, requeue on
failure, dead-letter after the limit); tests/integration covers RabbitMQ itself."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from guoku.node.runtime import NodeRuntime
from guoku.transport.amqp import Backoff, DeadLetterSink
from guoku.transport.ports import Handler, OutgoingEnvelope, TransientError

FAST = Backoff(initial=0.005, maximum=0.02)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class FakeTransport:
    """Queues in memory with the broker's rules: ack after the handler, requeue at the head on
    failure, dead-letter after ``delivery_limit`` redeliveries."""

    def __init__(self, delivery_limit: int = 2) -> None:
        self.queues: dict[str, deque[bytes]] = {}
        self.dead: dict[str, list[tuple[bytes, int]]] = {}
        self.published: list[tuple[str, str]] = []
        self.acked: list[bytes] = []
        self.delivery_limit = delivery_limit
        self.publish_failures = 0
        self.publish_gate: threading.Event | None = None
        self.publishing = threading.Event()
        self.closed = False
        self.lock = threading.Lock()

    def publish(self, receiver_node: str, envelope_id: str, body: bytes) -> None:
        self.publishing.set()
        if self.publish_gate is not None:
            assert self.publish_gate.wait(5)
        with self.lock:
            if self.publish_failures:
                self.publish_failures -= 1
                raise TransientError("broker unavailable")
            self.queues.setdefault(receiver_node, deque()).append(body)
            self.published.append((receiver_node, envelope_id))

    def consume(self, node: str, handler: Handler, stop: threading.Event) -> None:
        counts: dict[bytes, int] = {}
        while not stop.is_set():
            with self.lock:
                queue = self.queues.setdefault(node, deque())
                body = queue.popleft() if queue else None
            if body is None:
                stop.wait(0.002)
                continue
            try:
                handler(body)
            except Exception:
                counts[body] = counts.get(body, 0) + 1
                with self.lock:
                    if counts[body] > self.delivery_limit:
                        self.dead.setdefault(node, []).append((body, counts[body]))
                    else:
                        queue.appendleft(body)
                continue
            with self.lock:
                self.acked.append(body)

    def queue_name(self, node: str) -> str:
        return f"fake.node.{node}"

    def drain_dead_letters(self, node: str, sink: DeadLetterSink) -> int:
        moved = 0
        with self.lock:
            dead = self.dead.setdefault(node, [])
            while dead:
                body, attempts = dead[0]
                sink(body.decode(), body, "delivery_limit", attempts)
                dead.pop(0)
                moved += 1
        return moved

    def close(self) -> None:
        self.closed = True


class FakeMessenger:
    """An outbox of (receiver, body) rows, one envelope per row, and a scripted handler."""

    node_name = "finance"

    def __init__(self, rows: int = 0, receiver: str = "pboc") -> None:
        self.outbox = [(i, receiver, f"env-{i}".encode()) for i in range(rows)]
        self.published: set[int] = set()
        self.handled: list[bytes] = []
        self.dead: list[tuple[str, str | None, bytes, str, int]] = []
        self.sweeps = 0
        self.fail_handle: Callable[[bytes], bool] = lambda _body: False
        self.handle_gate: threading.Event | None = None
        self.handling = threading.Event()
        self.fail_mark = 0
        self.fail_sweep = 0
        self.lock = threading.Lock()

    def pending(self, limit: int) -> list[OutgoingEnvelope]:
        with self.lock:
            rows = [r for r in self.outbox if r[0] not in self.published][:limit]
        return [OutgoingEnvelope(f"e{i}", node, body, (i,)) for i, node, body in rows]

    def mark_published(self, envelope: OutgoingEnvelope) -> None:
        with self.lock:
            if self.fail_mark:
                self.fail_mark -= 1
                raise TransientError("database unavailable")
            self.published.update(envelope.outbox_ids)

    def handle(self, body: bytes) -> None:
        self.handling.set()
        if self.handle_gate is not None:
            assert self.handle_gate.wait(5)
        if self.fail_handle(body):
            raise TransientError("database unavailable")
        self.handled.append(body)

    def sweep(self) -> int:
        if self.fail_sweep:
            self.fail_sweep -= 1
            raise RuntimeError("bug in sweep")
        self.sweeps += 1
        return 0

    def record_dead_letter(self, queue: str, envelope_id: str | None, body: bytes, reason: str,
                           attempts: int) -> None:
        self.dead.append((queue, envelope_id, body, reason, attempts))

    def backlog(self) -> int:
        with self.lock:
            return len(self.outbox) - len(self.published)


def runtime(messenger: FakeMessenger, transport: FakeTransport, **kwargs: Any) -> NodeRuntime:
    options: dict[str, Any] = {"relay_interval": 0.005, "sweep_interval": 0.01,
                               "drain_interval": 0.01, "backoff": FAST,
                               "backlog": messenger.backlog}
    options.update(kwargs)
    return NodeRuntime(messenger, transport, **options)


def test_relay_publishes_the_outbox_in_order_and_marks_each_envelope() -> None:
    messenger, transport = FakeMessenger(rows=30), FakeTransport()
    rt = runtime(messenger, transport, batch=7)
    rt.start()
    wait_until(lambda: len(messenger.published) == 30)
    assert rt.shutdown()
    assert transport.published == [("pboc", f"e{i}") for i in range(30)]
    assert rt.counters.published == 30


def test_relay_retries_after_a_transient_error_without_losing_or_duplicating() -> None:
    messenger, transport = FakeMessenger(rows=10), FakeTransport()
    transport.publish_failures = 3
    rt = runtime(messenger, transport, batch=4)
    rt.start()
    wait_until(lambda: len(messenger.published) == 10)
    assert rt.shutdown()
    assert transport.published == [("pboc", f"e{i}") for i in range(10)]
    assert rt.snapshot()["errors"]["relay"] == 3


def test_relay_marks_nothing_the_broker_did_not_confirm() -> None:
    messenger, transport = FakeMessenger(rows=3), FakeTransport()
    transport.publish_failures = 10**6
    rt = runtime(messenger, transport)
    rt.start()
    wait_until(lambda: rt.snapshot()["errors"]["relay"] >= 3)
    health = rt.snapshot()
    assert rt.shutdown()
    assert messenger.published == set()
    assert health["status"] == "degraded" and health["relay_lag"] == 3
    assert any("relay failing" in p for p in health["problems"])


def test_an_envelope_whose_marking_failed_is_published_again_not_lost() -> None:
    messenger, transport = FakeMessenger(rows=2), FakeTransport()
    messenger.fail_mark = 1
    rt = runtime(messenger, transport)
    rt.start()
    wait_until(lambda: len(messenger.published) == 2)
    assert rt.shutdown()
    # at least once: the receiver's inbox drops the second copy of e0
    assert transport.published == [("pboc", "e0"), ("pboc", "e0"), ("pboc", "e1")]


def test_consumer_feeds_the_messenger_and_acks_after_it_returned() -> None:
    messenger, transport = FakeMessenger(), FakeTransport()
    transport.queues["finance"] = deque([b"a", b"b", b"c"])
    rt = runtime(messenger, transport)
    rt.start()
    wait_until(lambda: len(transport.acked) == 3)
    assert rt.shutdown()
    assert messenger.handled == transport.acked == [b"a", b"b", b"c"]
    assert rt.snapshot()["consumed"] == 3


def test_a_transiently_failing_delivery_is_retried_then_dead_lettered_and_recorded() -> None:
    messenger, transport = FakeMessenger(), FakeTransport(delivery_limit=2)
    transport.queues["finance"] = deque([b"poison", b"fine"])
    messenger.fail_handle = lambda body: body == b"poison"
    rt = runtime(messenger, transport)
    rt.start()
    wait_until(lambda: len(messenger.dead) == 1 and messenger.handled == [b"fine"])
    assert rt.shutdown()
    assert messenger.dead == [("fake.node.finance", "poison", b"poison", "delivery_limit", 3)]
    assert transport.acked == [b"fine"]
    assert rt.snapshot()["dead_letters"] == 1
    assert rt.snapshot()["errors"]["consume"] == 3


def test_graceful_stop_finishes_the_delivery_in_hand_and_acks_only_it() -> None:
    messenger, transport = FakeMessenger(), FakeTransport()
    transport.queues["finance"] = deque([b"first", b"second", b"third"])
    messenger.handle_gate = threading.Event()
    rt = runtime(messenger, transport)
    rt.start()
    assert messenger.handling.wait(5)
    stopper = threading.Thread(target=rt.shutdown)
    stopper.start()
    time.sleep(0.05)
    assert not transport.closed, "connections stay open while a delivery is in hand"
    messenger.handle_gate.set()
    stopper.join(5)
    assert transport.acked == [b"first"] and messenger.handled == [b"first"]
    assert list(transport.queues["finance"]) == [b"second", b"third"]
    assert transport.closed


def test_graceful_stop_flushes_the_envelope_the_relay_holds() -> None:
    messenger, transport = FakeMessenger(rows=3), FakeTransport()
    transport.publish_gate = threading.Event()
    rt = runtime(messenger, transport)
    rt.start()
    assert transport.publishing.wait(5)
    stopper = threading.Thread(target=rt.shutdown)
    stopper.start()
    time.sleep(0.05)
    transport.publish_gate.set()
    stopper.join(5)
    assert transport.published == [("pboc", "e0")]
    assert messenger.published == {0}, "published and marked; the rest wait in the outbox"


def test_a_bug_in_a_periodic_loop_is_counted_and_the_loop_goes_on() -> None:
    messenger, transport = FakeMessenger(), FakeTransport()
    messenger.fail_sweep = 2
    rt = runtime(messenger, transport)
    rt.start()
    wait_until(lambda: messenger.sweeps >= 2)
    assert rt.snapshot()["errors"]["sweep"] == 2
    assert rt.snapshot()["status"] == "ok"
    assert rt.shutdown()


def _get(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_endpoint_reports_ok_with_the_relay_lag() -> None:
    messenger, transport = FakeMessenger(rows=4), FakeTransport()
    rt = runtime(messenger, transport, health_port=0)
    rt.start()
    wait_until(lambda: len(messenger.published) == 4)
    assert rt.health is not None
    wait_until(lambda: _get(rt.health.port)[0] == 200)  # type: ignore[union-attr]
    code, body = _get(rt.health.port)
    assert rt.shutdown()
    assert code == 200
    assert body["node"] == "finance" and body["status"] == "ok" and body["relay_lag"] == 0
    assert body["last_relay"] is not None and body["published"] == 4
    assert set(body["errors"]) == {"relay", "consume", "dead_letters", "sweep"}


def test_health_endpoint_is_503_when_degraded() -> None:
    messenger, transport = FakeMessenger(rows=5), FakeTransport()
    transport.publish_failures = 10**6
    rt = runtime(messenger, transport, health_port=0, max_lag=2)
    rt.start()
    assert rt.health is not None
    wait_until(lambda: rt.snapshot()["errors"]["relay"] >= 1)
    code, body = _get(rt.health.port)
    assert rt.shutdown()
    assert code == 503
    assert body["status"] == "degraded" and body["relay_lag"] == 5
    assert "relay lag 5 > 2" in body["problems"]


def test_health_endpoint_answers_404_elsewhere() -> None:
    rt = runtime(FakeMessenger(), FakeTransport(), health_port=0)
    rt.start()
    assert rt.health is not None
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{rt.health.port}/", timeout=5)
    assert err.value.code == 404
    assert rt.shutdown()


def test_run_stops_cleanly_on_sigterm() -> None:
    messenger, transport = FakeMessenger(rows=2), FakeTransport()
    rt = runtime(messenger, transport)

    def terminate() -> None:
        wait_until(lambda: len(messenger.published) == 2)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    assert rt.run() == 0
    assert transport.closed
    assert signal.getsignal(signal.SIGTERM) == before, "the previous handler is restored"
