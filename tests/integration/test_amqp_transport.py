"""AmqpTransport against the real RabbitMQ on this machine.

Each test owns a unique prefix (``guoku-test-<hex>``), so its queues and dead-letter exchange are
its own, and deletes them afterwards. All tests share one xdist group: the broker-restart test
must not pull the broker from under a neighbour.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from guoku.transport.amqp import AmqpTransport, Backoff, BrokerMisconfigured
from guoku.transport.ports import TransientError

pytestmark = [pytest.mark.rabbitmq, pytest.mark.xdist_group("rabbitmq")]

NODE = "finance"
FAST = Backoff(initial=0.01, maximum=0.05)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


Factory = Callable[..., AmqpTransport]


@pytest.fixture
def make_transport(amqp_url: str) -> Iterator[Factory]:
    prefix = f"guoku-test-{uuid.uuid4().hex[:8]}"
    made: list[AmqpTransport] = []

    def make(**kwargs: object) -> AmqpTransport:
        options: dict[str, object] = {"prefix": prefix, "retry": FAST, "reconnect": FAST}
        options.update(kwargs)
        transport = AmqpTransport(amqp_url, **options)  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    cleaner = AmqpTransport(amqp_url, prefix=prefix)
    for node in (NODE, "pboc"):
        cleaner.delete_topology(node)
    cleaner.delete_exchange()
    cleaner.close()
    for transport in made:
        transport.close()


class Consumer:
    """``transport.consume`` in a thread, with a handler the test scripts."""

    def __init__(self, transport: AmqpTransport, handler: Callable[[bytes], None],
                 node: str = NODE) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=transport.consume, args=(node, handler, self.stop),
                                       daemon=True)

    def __enter__(self) -> Consumer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "consumer did not stop"


def test_published_envelopes_arrive_in_order_and_are_acked(make_transport: Factory) -> None:
    transport = make_transport()
    bodies = [f"<MOF n='{i}'/>".encode() for i in range(20)]
    for i, body in enumerate(bodies):
        transport.publish(NODE, f"env-{i}", body)
    assert transport.queue_depth(NODE) == (20, 0)

    got: list[bytes] = []
    with Consumer(make_transport(), got.append):
        wait_until(lambda: len(got) == 20, what="20 deliveries")
    assert got == bodies
    assert transport.queue_depth(NODE) == (0, 0), "every processed delivery was acked"


def test_publish_declares_the_receivers_queue_before_it_ever_ran(
    make_transport: Factory,
) -> None:
    transport = make_transport()
    transport.publish("pboc", "env-1", b"<MOF/>")  # pboc's consumer has never started
    assert transport.queue_depth("pboc") == (1, 0)


def test_publish_to_an_unreachable_broker_is_transient() -> None:
    transport = AmqpTransport("amqp://guest:guest@127.0.0.1:1/", prefix="guoku-test-nowhere")
    with pytest.raises(TransientError, match="broker unavailable"):
        transport.publish(NODE, "env-1", b"<MOF/>")


def test_queue_declared_with_other_arguments_is_a_misconfiguration(
    make_transport: Factory,
) -> None:
    make_transport(delivery_limit=5).publish(NODE, "env-1", b"x")
    with pytest.raises(BrokerMisconfigured, match="406"):
        make_transport(delivery_limit=7).publish(NODE, "env-2", b"x")


def test_a_transient_failure_is_retried_and_then_processed(make_transport: Factory) -> None:
    transport = make_transport()
    transport.publish(NODE, "env-1", b"<MOF/>")
    calls: list[bytes] = []

    def flaky(body: bytes) -> None:
        calls.append(body)
        if len(calls) < 3:
            raise TransientError("database unavailable")

    with Consumer(make_transport(), flaky):
        wait_until(lambda: len(calls) == 3, what="three deliveries")
        wait_until(lambda: transport.queue_depth(NODE) == (0, 0), what="ack")
    assert len(calls) == 3


def test_after_the_delivery_limit_a_message_is_dead_lettered_and_drained(
    make_transport: Factory,
) -> None:
    transport = make_transport(delivery_limit=2)
    transport.publish(NODE, "env-dead", b"<MOF>poison</MOF>")
    transport.publish(NODE, "env-ok", b"<MOF>fine</MOF>")
    deliveries: list[bytes] = []

    def handler(body: bytes) -> None:
        deliveries.append(body)
        if b"poison" in body:
            raise TransientError("database unavailable")

    with Consumer(make_transport(delivery_limit=2), handler):
        wait_until(lambda: transport.queue_depth(NODE) == (0, 1), what="the dead letter")
    assert deliveries.count(b"<MOF>poison</MOF>") == 3, "first delivery + delivery_limit retries"
    assert deliveries.count(b"<MOF>fine</MOF>") == 1

    stored: list[tuple[str | None, bytes, str, int]] = []
    moved = transport.drain_dead_letters(NODE, lambda *row: stored.append(row))
    assert moved == 1
    queue = transport.queue_name(NODE)
    assert stored == [("env-dead", b"<MOF>poison</MOF>", f"delivery_limit in {queue}", 3)]
    assert transport.queue_depth(NODE) == (0, 0)


def test_a_handler_bug_is_never_acked_and_ends_as_a_dead_letter(make_transport: Factory) -> None:
    transport = make_transport(delivery_limit=1)
    transport.publish(NODE, "env-bug", b"<MOF/>")
    calls: list[bytes] = []

    def buggy(body: bytes) -> None:
        calls.append(body)
        raise ZeroDivisionError("bug")

    with Consumer(make_transport(delivery_limit=1), buggy):
        wait_until(lambda: transport.queue_depth(NODE) == (0, 1), what="the dead letter")
    assert len(calls) == 2


def test_a_dead_letter_stays_queued_when_the_sink_fails(make_transport: Factory) -> None:
    transport = make_transport(delivery_limit=1)
    transport.publish(NODE, "env-dead", b"<MOF/>")

    def fail(_body: bytes) -> None:
        raise TransientError("down")

    with Consumer(make_transport(delivery_limit=1), fail):
        wait_until(lambda: transport.queue_depth(NODE) == (0, 1), what="the dead letter")

    def broken_sink(*_row: object) -> None:
        raise TransientError("database unavailable")

    with pytest.raises(TransientError):
        transport.drain_dead_letters(NODE, broken_sink)
    wait_until(lambda: transport.queue_depth(NODE) == (0, 1), what="the requeued dead letter")


def test_replay_puts_a_dead_letter_back_on_its_queue(make_transport: Factory) -> None:
    transport = make_transport()
    transport.replay(NODE, b"<MOF>again</MOF>", "env-7")
    got: list[bytes] = []
    with Consumer(make_transport(), got.append):
        wait_until(lambda: got == [b"<MOF>again</MOF>"], what="the replayed message")


def test_stop_finishes_the_delivery_in_hand_and_leaves_the_rest_queued(
    make_transport: Factory,
) -> None:
    transport = make_transport()
    for i in range(5):
        transport.publish(NODE, f"env-{i}", f"<MOF n='{i}'/>".encode())
    started, release = threading.Event(), threading.Event()
    done: list[bytes] = []

    def slow(body: bytes) -> None:
        started.set()
        assert release.wait(10)
        done.append(body)

    consumer = Consumer(make_transport(prefetch=3), slow).__enter__()
    assert started.wait(10)
    consumer.stop.set()
    release.set()
    consumer.__exit__()
    assert done == [b"<MOF n='0'/>"]
    assert transport.queue_depth(NODE) == (4, 0), "processed one acked, the others returned"


_KILLABLE_CONSUMER = """
import sys, threading, time
from guoku.transport.amqp import AmqpTransport
def hold(body):
    print("HOLDING", body.decode(), flush=True)
    time.sleep(600)
AmqpTransport(sys.argv[1], prefix=sys.argv[2]).consume(sys.argv[3], hold, threading.Event())
"""


def test_a_message_in_hand_when_the_consumer_is_killed_is_redelivered(
    make_transport: Factory, amqp_url: str,
) -> None:
    transport = make_transport()
    transport.publish(NODE, "env-1", b"<MOF>in-hand</MOF>")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_CONSUMER, amqp_url, transport.topology.prefix, NODE],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "HOLDING <MOF>in-hand</MOF>"
    finally:
        proc.kill()
        proc.wait(10)

    got: list[bytes] = []
    with Consumer(make_transport(), got.append):
        wait_until(lambda: got == [b"<MOF>in-hand</MOF>"], what="the redelivery")
    assert transport.queue_depth(NODE) == (0, 0)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None and not os.environ.get("CI"),
                    reason="rabbitmqctl is not installed here")
def test_broker_restart_while_publishing_and_consuming_loses_nothing(
    make_transport: Factory,
) -> None:
    total = 300
    publisher = make_transport()
    received: set[str] = set()
    deliveries = 0
    published: list[str] = []
    lock = threading.Lock()

    def handler(body: bytes) -> None:
        nonlocal deliveries
        with lock:
            received.add(body.decode())
            deliveries += 1

    def publish_all() -> None:
        backoff = Backoff(initial=0.1, maximum=1.0)
        for i in range(total):
            while True:  # what the relay does: keep it until the broker confirmed
                try:
                    publisher.publish(NODE, f"env-{i}", f"msg-{i}".encode())
                    break
                except TransientError:
                    time.sleep(backoff.next())
            backoff.reset()
            published.append(f"msg-{i}")
            time.sleep(0.01)

    producer = threading.Thread(target=publish_all, daemon=True)
    with Consumer(make_transport(), handler):
        producer.start()
        wait_until(lambda: len(published) > total // 4, what="a quarter published")
        try:
            _rabbitmqctl("stop_app")
            time.sleep(2)
        finally:
            _rabbitmqctl("start_app")
        producer.join(120)
        assert not producer.is_alive(), "publisher stuck after the restart"
        wait_until(lambda: received >= set(published), timeout=60, what="every message")
    assert len(published) == total
    assert received == set(published), "every confirmed message consumed at least once"
    assert deliveries >= total
    assert publisher.queue_depth(NODE) == (0, 0)
