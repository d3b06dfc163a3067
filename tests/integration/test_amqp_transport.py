"""AmqpTransport against the real RabbitMQ on this machine.

Each test owns a unique prefix (``guoku-test-<hex>``), so its queues and dead-letter exchange are
its own, and deletes them afterwards. All tests share one xdist group: the broker-restart test
must not pull the broker from under a neighbour.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text
from typer.testing import CliRunner

from guoku.bootstrap import open_engine
from guoku.cli import mq
from guoku.node.bootstrap import assemble, resolve_node
from guoku.node.runtime import NodeRuntime
from guoku.province import demo_province
from guoku.store.engine import sqlite_url
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.store.tables import audit_log, dead_letters, vouchers
from guoku.transport.amqp import AmqpTransport, Backoff, BrokerMisconfigured
from guoku.transport.ports import TransientError
from guoku.xml.samples import sample_document
from tests.conftest import pg_url_with_schema

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
    for node in (NODE, "pboc", "bank-icbc"):
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
    transport.declare(NODE)
    bodies = [f"<MOF n='{i}'/>".encode() for i in range(20)]
    for i, body in enumerate(bodies):
        transport.publish(NODE, f"env-{i}", body)
    assert transport.queue_depth(NODE) == (20, 0)

    got: list[bytes] = []
    with Consumer(make_transport(), got.append):
        wait_until(lambda: len(got) == 20, what="20 deliveries")
    assert got == bodies
    assert transport.queue_depth(NODE) == (0, 0), "every processed delivery was acked"


def test_publishing_to_a_node_that_never_started_waits_until_its_queue_exists(
    make_transport: Factory,
) -> None:
    sender = make_transport()
    with pytest.raises(TransientError, match="no such queue yet"):
        sender.publish("pboc", "env-1", b"<MOF/>")  # the outbox keeps it; the relay retries
    make_transport(delivery_limit=9).declare("pboc")  # pboc's own choice of limit
    sender.publish("pboc", "env-1", b"<MOF/>")
    assert sender.queue_depth("pboc") == (1, 0)


def test_publish_to_an_unreachable_broker_is_transient() -> None:
    transport = AmqpTransport("amqp://guest:guest@127.0.0.1:1/", prefix="guoku-test-nowhere")
    with pytest.raises(TransientError, match="broker unavailable"):
        transport.publish(NODE, "env-1", b"<MOF/>")


def test_queue_declared_with_other_arguments_is_a_misconfiguration(
    make_transport: Factory,
) -> None:
    make_transport(delivery_limit=5).declare(NODE)
    with pytest.raises(BrokerMisconfigured, match="406"):
        make_transport(delivery_limit=7).declare(NODE)


def test_a_transient_failure_is_retried_and_then_processed(make_transport: Factory) -> None:
    transport = make_transport()
    transport.declare(NODE)
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
    transport.declare(NODE)
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
    transport.declare(NODE)
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
    transport.declare(NODE)
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
    transport.declare(NODE)
    transport.replay(NODE, b"<MOF>again</MOF>", "env-7")
    got: list[bytes] = []
    with Consumer(make_transport(), got.append):
        wait_until(lambda: got == [b"<MOF>again</MOF>"], what="the replayed message")


def test_stop_finishes_the_delivery_in_hand_and_leaves_the_rest_queued(
    make_transport: Factory,
) -> None:
    transport = make_transport()
    transport.declare(NODE)
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
    # processed one acked, the others returned (the quorum queue takes them back in a moment)
    wait_until(lambda: transport.queue_depth(NODE) == (4, 0), what="four returned")


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
    transport.declare(NODE)
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
    publisher.declare(NODE)
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


# -- two real nodes: finance as a `guoku node run` process, the bank in this process -----------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def two_schemas(pg_url: str) -> Iterator[dict[str, str]]:
    names = {node: f"t_{uuid.uuid4().hex[:10]}_{node.replace('-', '_')}"
             for node in ("finance", "bank-icbc")}
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        for schema in names.values():
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield {node: pg_url_with_schema(pg_url, schema) for node, schema in names.items()}
    with admin.begin() as conn:
        for schema in names.values():
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _voucher_state(url: str, voucher_id: int) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(vouchers.c.state).where(vouchers.c.id == voucher_id)
                                ).scalar_one_or_none()
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_voucher_goes_to_the_bank_and_its_receipt_comes_back_over_rabbitmq(
    make_transport: Factory, amqp_url: str, tmp_path: Path, security_material: Path,
    two_schemas: dict[str, str],
) -> None:
    home = tmp_path / "security"
    shutil.copytree(security_material, home)
    province = demo_province()
    county = "533103"

    # Finance enters, reviews, seals and sends: the envelope waits in finance's outbox.
    finance = assemble(home, resolve_node(province, "finance"), two_schemas["finance"],
                       province=province)
    try:
        lib = finance.node.library
        doc = sample_document("5201", voucher_no="MQ0001", amount="2345.60", admdiv=county)
        row = lib.create(f"fin-{county}-entry", "5201", doc.header, doc.details,
                         receiver="B-ICBC")
        lib.check(f"fin-{county}-review", row.id)
        lib.seal(f"fin-{county}-seal", row.id)
        sent = lib.send(f"fin-{county}-seal", row.id)
    finally:
        finance.close()

    bank_transport = make_transport()
    bank = assemble(home, resolve_node(province, "bank-icbc"), two_schemas["bank-icbc"],
                    province=province)
    bank_runtime = NodeRuntime(bank.messenger, bank_transport, relay_interval=0.02)
    bank_runtime.start()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "guoku", "node", "run", "--party", f"F{county}", "--home", str(home),
         "--db", two_schemas["finance"], "--prefix", bank_transport.topology.prefix,
         "--health-port", str(port)],
        env={**os.environ, "GUOKU_BROKER_URL": amqp_url}, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: _health(port) == 200, timeout=60, what="finance node healthy")

        def bank_copy() -> VoucherRow | None:
            page = bank.node.library.query(f"icbc-{county}-recv", VoucherQuery(vt_code="5201"))
            return next((r for r in page.items if r.voucher_no == "MQ0001"), None)

        wait_until(lambda: bank_copy() is not None, timeout=30, what="the bank's copy")
        received = bank_copy()
        assert received is not None and received.state == "received"
        bank.node.library.accept(f"icbc-{county}-recv", received.id)
        wait_until(lambda: _voucher_state(two_schemas["finance"], sent.id) == "accepted",
                   timeout=30, what="finance sees the acceptance")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert bank_runtime.shutdown()
        bank.close()
    assert code == 0, stderr
    assert "stopped" in stderr
    assert bank_runtime.snapshot()["errors"]["consume"] == 0


def test_a_drained_dead_letter_is_replayed_from_the_command_line(
    make_transport: Factory, amqp_url: str, tmp_path: Path,
) -> None:
    transport = make_transport(delivery_limit=1)
    transport.declare(NODE)
    transport.publish(NODE, "env-9", b"<MOF>retry me</MOF>")

    def down(_body: bytes) -> None:
        raise TransientError("database unavailable")

    with Consumer(make_transport(delivery_limit=1), down):
        wait_until(lambda: transport.queue_depth(NODE) == (0, 1), what="the dead letter")

    url = sqlite_url(tmp_path / "node.db")
    engine = open_engine(url)

    def store(envelope_id: str | None, body: bytes, reason: str, attempts: int) -> None:
        with engine.begin() as conn:
            conn.execute(insert(dead_letters).values(
                envelope_id=envelope_id, queue=transport.queue_name(NODE), body=body,
                reason=reason, attempts=attempts, dead_at="2026-01-01T00:00:00.000000Z"))

    assert transport.drain_dead_letters(NODE, store) == 1
    result = CliRunner().invoke(mq.app, [
        "dead-letters", "replay", "1", "--db", url, "--broker", amqp_url,
        "--prefix", transport.topology.prefix, "--operator", "ops-zhang", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.output)["queue"] == transport.queue_name(NODE)
    assert transport.queue_depth(NODE) == (1, 0)
    with engine.connect() as conn:
        letter = conn.execute(select(dead_letters)).one()
        trail = conn.execute(select(audit_log).where(audit_log.c.action == "mq.replay")).one()
    assert letter.replayed_at is not None and letter.attempts == 2
    assert trail.actor == "ops-zhang"
    got: list[bytes] = []
    with Consumer(make_transport(delivery_limit=1), got.append):
        wait_until(lambda: got == [b"<MOF>retry me</MOF>"], what="the replayed message")


def test_mq_declare_creates_a_nodes_queues_before_it_first_runs(
    make_transport: Factory, amqp_url: str,
) -> None:
    transport = make_transport()
    result = CliRunner().invoke(mq.app, ["declare", "pboc", "bank-icbc", "--broker", amqp_url,
                                         "--prefix", transport.topology.prefix])
    assert result.exit_code == 0, (result.output, result.exception)
    transport.publish("pboc", "env-1", b"<MOF/>")
    assert transport.queue_depth("pboc") == (1, 0)
    assert transport.queue_depth("bank-icbc") == (0, 0)
