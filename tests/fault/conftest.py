"""Fault tests' fixtures: a province of four ``guoku node run`` processes on RabbitMQ and
PostgreSQL, with the sender's vouchers already committed to its outbox.

The key ceremony and the sender's vouchers are made once per session: bank-icbc's clerks of one
county enter, review, seal and send ``GUOKU_FAULT_VOUCHERS`` 申请划款凭证 (2301, bank -> PBOC,
the bank's business seal) through the library's batch calls, into a database every scenario
clones with ``CREATE DATABASE ... TEMPLATE``. Each scenario then gets that clone for bank-icbc,
fresh databases for pboc, finance and bank-abc, and its own queue prefix. Once the receiver
holds every voucher, its receiving clerk accepts them all, so every voucher makes the whole
round trip: voucher -> delivered receipt -> acceptance receipt.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final

import pytest
from sqlalchemy import Engine, create_engine, update

from guoku.library.ports import iso
from guoku.node.bootstrap import DEMO_SECRETS
from guoku.node.runtime import MAX_LAG
from guoku.province import demo_province
from guoku.security.provision import provision
from guoku.store.tables import vouchers
from tests.fault.harness import (
    NODES,
    RECEIVER,
    SENDER,
    Acceptor,
    Databases,
    Duplicator,
    NodeProcess,
    build_sent_vouchers,
    db_name,
    delete_topology,
    digest,
    duplicate_vouchers,
    inbox_outcomes,
    queue_depths,
    received,
    rows,
    states,
    troubles,
    unpublished,
    wait_until,
)

VOUCHERS_ENV: Final = "GUOKU_FAULT_VOUCHERS"
DEFAULT_VOUCHERS: Final = 10_000
"""Per scenario, the issue's figure (``GUOKU_FAULT_VOUCHERS`` overrides). ``make test`` runs
this suite in its own pytest process after the parallel suite: about 10 minutes on two cores
(docs/decisions/0011)."""
MAX_VOUCHERS: Final = MAX_LAG
"""A sender with more unpublished rows than this reports itself degraded, not ok."""
NODE_BATCH: Final = 2
"""``--batch``: envelopes the relay seals per pass; a 2301 voucher with its seal is ~75 KB, so
one envelope carries ~60 of them and a pass reads ``batch * 500`` outbox rows."""
SETTLE_SECONDS_PER_VOUCHER: Final = 0.25
"""Patience per voucher for each of the two waits (all stored, all accepted): several times
what a loaded two-core machine needs, so a timeout means stuck, not slow."""
SETTLE_MIN_SECONDS: Final = 120.0


def fault_vouchers() -> int:
    count = int(os.environ.get(VOUCHERS_ENV, DEFAULT_VOUCHERS))
    assert 10 <= count <= MAX_VOUCHERS, f"{VOUCHERS_ENV} must be 10..{MAX_VOUCHERS}"
    return count


@pytest.fixture(scope="session")
def fault_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fault") / "security"
    provision(home, demo_province(), DEMO_SECRETS, datetime.now(UTC))
    return home


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def fault_databases(pg_url: str) -> Iterator[Databases]:
    """Every database the suite makes, dropped at the end. SIGTERM (a cancelled CI job) is
    turned into an interruption, so the teardowns still kill the nodes and drop the
    databases and queues instead of leaving gigabytes behind."""
    databases = Databases(pg_url)
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        yield databases
    finally:
        signal.signal(signal.SIGTERM, previous)
        databases.close()


@pytest.fixture(scope="session")
def sender_template(fault_databases: Databases, fault_home: Path) -> str:
    """The name of a database in which bank-icbc has sent every voucher (its outbox full)."""
    name = db_name(f"tpl{uuid.uuid4().hex[:8]}", SENDER)
    build_sent_vouchers(fault_home, fault_databases.create(name), fault_vouchers())
    return name


class FaultProvince:
    """Four node processes of one scenario, the clerk who accepts, and the final comparison."""

    def __init__(self, *, home: Path, databases: Databases, template: str, amqp_url: str,
                 workdir: Path) -> None:
        self.home = home
        self.databases = databases
        self.template = template
        self.amqp_url = amqp_url
        self.workdir = workdir
        self.vouchers = fault_vouchers()
        self.run = uuid.uuid4().hex[:8]
        self.prefixes: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        self.engines: dict[str, Engine] = {}
        self.nodes: dict[str, NodeProcess] = {}
        self.acceptor: Acceptor | None = None
        self.duplicators: list[Duplicator] = []
        self.marks: list[tuple[str, float]] = [("begin", time.monotonic())]

    def mark(self, event: str) -> None:
        self.marks.append((event, time.monotonic()))

    def timeline(self) -> str:
        """``event +seconds`` since the event before: where a scenario spent its time."""
        steps = zip(self.marks, self.marks[1:], strict=False)
        return ", ".join(f"{event} +{at - before:.1f} s" for (_, before), (event, at) in steps)

    # -- setting up ------------------------------------------------------------------------

    def start(self, *, deliver_twice: bool = False) -> None:
        """Databases (bank-icbc's a clone of the template), the four nodes, healthy.

        ``deliver_twice``: the sending side (bank-icbc, finance) and the receiving side (pboc,
        bank-abc) use two prefixes, and a :class:`Duplicator` per direction carries every
        message from one to the other twice.
        """
        base = f"gf-{self.run}"
        for node in NODES:
            side = "-r" if node in (RECEIVER, "bank-abc") else "-s"
            self.prefixes[node] = base + side if deliver_twice else base
        for node in NODES:
            name = db_name(self.run, node)
            template = self.template if node == SENDER else None
            self.urls[node] = self.databases.create(name, template)
            self.engines[node] = create_engine(self.urls[node], pool_size=1, max_overflow=1)
        self._redate_sent()
        if deliver_twice:
            sent, back = self.prefixes[SENDER], self.prefixes[RECEIVER]
            self.duplicators = [Duplicator(self.amqp_url, sent, back, RECEIVER),
                                Duplicator(self.amqp_url, back, sent, SENDER)]
            for duplicator in self.duplicators:
                duplicator.start()
        for node in NODES:
            self.nodes[node] = NodeProcess(
                node, home=self.home, db_url=self.urls[node], broker_url=self.amqp_url,
                prefix=self.prefixes[node], log=self.workdir / f"{node}.log", batch=NODE_BATCH)
            self.nodes[node].start()
        for process in self.nodes.values():
            process.wait_healthy()
        self.mark("started")

    def _redate_sent(self) -> None:
        """The template's vouchers were sent when the session began; a clone dates them now, so
        the sender's delivery time limit (10 minutes) counts from the scenario's start."""
        with self.engines[SENDER].begin() as conn:
            conn.execute(update(vouchers).where(vouchers.c.direction == "out",
                                                vouchers.c.state == "sent")
                         .values(updated_at=iso(datetime.now(UTC))))

    # -- faults ----------------------------------------------------------------------------

    def kill(self, node: str) -> None:
        self.nodes[node].kill()

    def restart(self, node: str) -> None:
        self.nodes[node].start()
        self.nodes[node].wait_healthy()

    # -- the end -----------------------------------------------------------------------------

    def settle(self) -> None:
        """Wait until the receiver stored every voucher; let the clerk accept them all; wait
        until every voucher is accepted on both sides and nothing is left anywhere: no
        unpublished outbox row, no message in any queue.

        The clerk accepts after the last voucher arrived, not while they arrive: the receiver's
        outbox then holds long runs of one kind (delivered, then acceptance receipts), which
        travel in full envelopes instead of alternating one- and two-item ones.
        """
        n = self.vouchers
        timeout = max(SETTLE_MIN_SECONDS, n * SETTLE_SECONDS_PER_VOUCHER)
        wait_until(lambda: received(self.engines[RECEIVER]) == n, timeout,
                   "the receiver to store every voucher", self.diagnose)
        self.mark("stored")
        self.acceptor = Acceptor(self.home, self.urls[RECEIVER])
        self.acceptor.start()

        def done() -> bool:
            if states(self.engines[SENDER], "out") != Counter({"accepted": n}):
                return False
            if states(self.engines[RECEIVER], "in") != Counter({"accepted": n}):
                return False
            if any(unpublished(engine) for engine in self.engines.values()):
                return False
            return not any(any(depth) for depth in self.queue_depths().values())

        wait_until(done, timeout, "every voucher accepted and every queue empty", self.diagnose)
        for duplicator in self.duplicators:
            duplicator.stop()
        self.mark("accepted")

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """Ready messages in every queue of the scenario: each node's own, and the ones the
        duplicators drain."""
        queues = {(self.prefixes[node], node) for node in NODES}
        queues |= {(self.prefixes[SENDER], RECEIVER), (self.prefixes[RECEIVER], SENDER)}
        depths: dict[str, tuple[int, int]] = {}
        for prefix in sorted({p for p, _ in queues}):
            nodes = sorted(n for p, n in queues if p == prefix)
            for node, depth in queue_depths(self.amqp_url, prefix, nodes).items():
                depths[f"{prefix}.{node}"] = depth
        return depths

    def check(self) -> dict[str, Any]:
        """The sender's sent set equals the receiver's accepted set, and nothing is doubled,
        refused, dead or left behind. Returns the figures compared."""
        n = self.vouchers
        sender, receiver = self.engines[SENDER], self.engines[RECEIVER]
        sent = rows(sender, "out")
        accepted = rows(receiver, "in", "accepted")
        assert len(sent) == n
        assert digest(sent) == digest(accepted), "sent set != accepted set"
        assert rows(sender, "out", "accepted") == sent, "the sender has not seen every acceptance"
        assert duplicate_vouchers(sender) == duplicate_vouchers(receiver) == 0
        assert inbox_outcomes(receiver) == Counter({"voucher/stored": n})
        assert inbox_outcomes(sender) == Counter({"delivered/applied": n, "receipt/applied": n})
        for node, engine in self.engines.items():
            assert unpublished(engine) == 0, f"{node} has unpublished outbox rows"
            assert troubles(engine) == {"dead_letters": 0, "rejected_envelopes": 0}, node
            if node not in (SENDER, RECEIVER):
                assert not inbox_outcomes(engine), f"{node} was sent something"
        assert not any(any(depth) for depth in self.queue_depths().values())
        count, sm3 = digest(accepted)
        self.mark("checked")
        return {"vouchers": count, "sm3": sm3}

    def finish(self) -> dict[str, int]:
        """Stop the clerk, then every node with SIGTERM; each must exit 0 (a clean shutdown)."""
        if self.acceptor is not None:
            self.acceptor.stop()
            self.acceptor = None
        codes = {node: process.stop() for node, process in self.nodes.items()}
        assert codes == dict.fromkeys(self.nodes, 0), (
            f"exit codes {codes}\n" + "\n".join(p.tail() for p in self.nodes.values()))
        self.mark("stopped")
        return codes

    def diagnose(self) -> str:
        lines = [f"sender {dict(states(self.engines[SENDER], 'out'))}",
                 f"receiver {dict(states(self.engines[RECEIVER], 'in'))}",
                 f"unpublished { {n: unpublished(e) for n, e in self.engines.items()} }",
                 f"accepted by the clerk: {self.acceptor.accepted if self.acceptor else None}"]
        try:
            lines.append(f"queues {self.queue_depths()}")
        except Exception as exc:  # the broker may be what is wrong
            lines.append(f"queues unavailable: {exc!r}")
        for process in self.nodes.values():
            lines.append(f"{process.name} health {process.health()}")
            lines.append(process.tail(15))
        return "\n".join(lines)

    def close(self) -> None:
        """Whatever the test did: no process, duplicator, queue or database is left behind
        (the databases even when the broker is what failed)."""
        try:
            for duplicator in self.duplicators:
                duplicator.stop(check=False)
            if self.acceptor is not None:
                self.acceptor.stop(check=False)
            for process in self.nodes.values():
                if process.alive:
                    process.kill()
            for prefix in set(self.prefixes.values()):
                delete_topology(self.amqp_url, prefix, NODES)
        finally:
            for engine in self.engines.values():
                engine.dispose()
            for node in self.urls:
                self.databases.drop(db_name(self.run, node))


@pytest.fixture
def province(fault_home: Path, fault_databases: Databases, sender_template: str,
             amqp_url: str, tmp_path: Path) -> Iterator[FaultProvince]:
    made = FaultProvince(home=fault_home, databases=fault_databases, template=sender_template,
                         amqp_url=amqp_url, workdir=tmp_path)
    try:
        yield made
    finally:
        made.close()
