"""A province of separate processes on this machine: one signing server and one or more node
worker processes per node, on PostgreSQL and RabbitMQ — what tests, benchmarks and
``guoku deploy`` start, all through :class:`Launch` (which processes, with which command lines)
and :class:`Child` (one process: start, health, stop, kill).

:class:`LocalProvince` runs them from the calling process (tests); ``guoku deploy`` hands the
same children to a :class:`~guoku.deploy.supervisor.Supervisor` in a daemon. Clerk-side work
(entry, review, seal, answer) goes through each node's library in the calling process, sealing
through the same signing-server processes over HTTP; the node processes carry the envelopes.
:meth:`LocalProvince.settle` waits until nothing is in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Final, TypeVar

from sqlalchemy import func, select

from guoku.library.service import VoucherLibrary
from guoku.logs import PROCESS_ENV
from guoku.node.bootstrap import DEMO_SECRETS, AssembledNode, assemble
from guoku.province import NodeSpec, ProvinceSpec
from guoku.security.certs import TrustStore
from guoku.security.provision import Secrets, signing_dir
from guoku.store.tables import inbox, outbox
from guoku.transport.amqp import AmqpTransport
from guoku.transport.ports import TransientError

T = TypeVar("T")

READY_TIMEOUT_S: Final = 60.0
SETTLE_TIMEOUT_S: Final = 120.0
QUIET_POLLS: Final = 3


BROKER_PATIENCE_S: Final = 60.0
"""How long a broker that is restarting (or still starting) may refuse connections."""


def with_broker(work: Callable[[], T], patience: float = BROKER_PATIENCE_S) -> T:
    """Run a broker operation, retrying while the broker is briefly unavailable."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return work()
        except TransientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class ProcessFailed(RuntimeError):
    """A process did not come up, or died: its log tail says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """One process: ``argv`` with ``env``, output appended to ``log``, ready when ``health``
    answers 200. ``start`` again after it exited (a supervisor's restart)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    health: str
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None
    started_at: float | None = None
    """``time.time()`` of the last start."""
    starts: int = 0

    def start(self) -> None:
        self._close_log()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, env={**self.env, PROCESS_ENV: self.name},
                                        stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.time()
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.health, timeout=timeout) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(f"{self.name} exited: {self.tail()}")
            try:
                with urllib.request.urlopen(self.health, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise ProcessFailed(f"{self.name} not ready after {timeout} s: {self.tail()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop. Returns the exit code."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9: no shutdown, no flush."""
        if self.process is not None and self.alive():
            self.process.kill()
            self.process.wait()
        self._close_log()

    def reap(self) -> int | None:
        """The exit code once the process ended (its log closed), else None."""
        if self.process is None or self.process.poll() is None:
            return None
        self._close_log()
        return self.process.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def signing_argv(home: Path, spec: NodeSpec, port: int) -> list[str]:
    return [sys.executable, "-m", "guoku", "signing-server", "--dir",
            str(signing_dir(home, spec)), "--port", str(port)]


def node_argv(home: Path, node: str, db_url: str, prefix: str, *, health_port: int,
              signing_url: str | None, province_file: Path | None = None,
              partitions: int | None = None, log_format: str | None = None,
              extra: tuple[str, ...] = ()) -> list[str]:
    """``guoku node run`` for one worker of ``node``."""
    argv = [sys.executable, "-m", "guoku", "node", "run", "--party", node, "--db", db_url,
            "--home", str(home), "--prefix", prefix, "--health-port", str(health_port)]
    if signing_url:
        argv += ["--signing", signing_url]
    if province_file is not None:
        argv += ["--province", str(province_file)]
    if partitions is not None:
        argv += ["--partitions", str(partitions)]
    if log_format is not None:
        argv += ["--log-format", log_format]
    return [*argv, *extra]


def worker_name(node: str, index: int) -> str:
    """``node-finance`` for a node's only (or first) worker, ``node-finance.1`` and on after."""
    return f"node-{node}" if index == 0 else f"node-{node}.{index}"


@dataclass
class Launch:
    """The processes of a province: a signing server per node, ``workers[node]`` node workers
    (1 when not named), with their command lines, environment, logs and health URLs."""

    home: Path
    province: ProvinceSpec
    db_urls: Mapping[str, str]
    broker_url: str
    prefix: str
    workdir: Path
    secrets: Secrets = DEMO_SECRETS
    province_file: Path | None = None
    """The TOML the node processes load the province from (None: the demo province)."""
    partitions: int | None = None
    workers: Mapping[str, int] = field(default_factory=dict)
    log_format: str | None = None
    port: Callable[[], int] = free_port

    def env(self) -> dict[str, str]:
        return {**os.environ, "GUOKU_SIGNING_PASSPHRASE": self.secrets.passphrase,
                "GUOKU_USB_PIN": self.secrets.user_pin, "GUOKU_BROKER_URL": self.broker_url}

    def signing_child(self, spec: NodeSpec) -> Child:
        port = self.port()
        return Child(f"signing-{spec.name}", signing_argv(self.home, spec, port), self.env(),
                     self.workdir / f"signing-{spec.name}.log",
                     f"http://127.0.0.1:{port}/health")

    def node_children(self, spec: NodeSpec, signing_url: str) -> list[Child]:
        children = []
        for index in range(self.workers.get(spec.name, 1)):
            port = self.port()
            name = worker_name(spec.name, index)
            argv = node_argv(self.home, spec.name, self.db_urls[spec.name], self.prefix,
                             health_port=port, signing_url=signing_url,
                             province_file=self.province_file, partitions=self.partitions,
                             log_format=self.log_format)
            children.append(Child(name, argv, self.env(), self.workdir / f"{name}.log",
                                  f"http://127.0.0.1:{port}/health"))
        return children

    def declare_queues(self) -> None:
        self._topology(lambda t, node: t.declare(node, self.partitions))

    def delete_queues(self) -> None:
        self._topology(lambda t, node: t.delete_topology(node, self.partitions))
        transport = AmqpTransport(self.broker_url, prefix=self.prefix)
        try:
            with_broker(transport.delete_exchange)
        finally:
            transport.close()

    def queue_depth(self, transport: AmqpTransport, node: str) -> int:
        return with_broker(partial(transport.queue_depth, node, self.partitions))[0]

    def _topology(self, work: Callable[[AmqpTransport, str], None]) -> None:
        transport = AmqpTransport(self.broker_url, prefix=self.prefix)
        try:
            for spec in self.province.nodes:
                with_broker(partial(work, transport, spec.name))
        finally:
            transport.close()


@dataclass
class LocalProvince(Launch):
    """Start with :meth:`up`, drive flows through :meth:`library`, wait with :meth:`settle`."""

    signing: dict[str, Child] = field(default_factory=dict)
    nodes: dict[str, Child] = field(default_factory=dict)
    """Node worker processes by name (:func:`worker_name`)."""
    assembled: dict[str, AssembledNode] = field(default_factory=dict)

    # --- processes ---------------------------------------------------------------------------

    def up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for spec in self.province.nodes:
            self.signing[spec.name] = self.signing_child(spec)
            self.signing[spec.name].start()
        for child in self.signing.values():
            child.wait_ready()
        # migrate and seed before the node processes start
        self.attach({spec.name: self.signing_url(spec) for spec in self.province.nodes})
        self.declare_queues()
        for spec in self.province.nodes:
            self.start_node(spec.name)

    def attach(self, signing_urls: Mapping[str, str]) -> None:
        """Each node's library in this process, sealing through its signing server at
        ``signing_urls[node]`` (processes started here by :meth:`up`, or by a supervisor)."""
        trust = TrustStore.from_directory(self.home / "trust")
        for spec in self.province.nodes:
            self.assembled[spec.name] = assemble(self.home, spec, self.db_urls[spec.name],
                                                 secrets=self.secrets, province=self.province,
                                                 trust=trust, signing_url=signing_urls[spec.name])

    def signing_url(self, spec: NodeSpec) -> str:
        return self.signing[spec.name].health.removesuffix("/health")

    def start_node(self, name: str) -> None:
        spec = next(s for s in self.province.nodes if s.name == name)
        children = self.node_children(spec, self.signing_url(spec))
        for child in children:
            self.nodes[child.name.removeprefix("node-")] = child
            child.start()
        for child in children:
            child.wait_ready()

    def down(self) -> dict[str, int | None]:
        codes = {f"node-{n}": c.stop() for n, c in self.nodes.items()}
        codes.update({f"signing-{n}": c.stop() for n, c in self.signing.items()})
        for node in self.assembled.values():
            node.close()
        return codes

    # --- the flows' view ---------------------------------------------------------------------

    def library(self, party: str) -> VoucherLibrary:
        return self.assembled[self.province.node_of(party).name].node.library

    def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until every outbox is published, every queue empty and no inbox grows."""
        deadline = time.monotonic() + timeout
        transport = AmqpTransport(self.broker_url, prefix=self.prefix)
        quiet, last = 0, (-1, -1)
        try:
            while quiet < QUIET_POLLS:
                if time.monotonic() > deadline:
                    raise ProcessFailed(f"not settled after {timeout} s: {self._why()}")
                for name, child in self.nodes.items():
                    if not child.alive():
                        raise ProcessFailed(f"node {name} died: {child.tail()}")
                state = self._in_flight(transport)
                quiet = quiet + 1 if state[0] == 0 and state == last else 0
                last = state
                time.sleep(0.15)
        finally:
            transport.close()

    def _in_flight(self, transport: AmqpTransport) -> tuple[int, int]:
        pending = received = 0
        for name, node in self.assembled.items():
            with node.node.engine.connect() as conn:
                pending += int(conn.execute(select(func.count()).select_from(outbox)
                                            .where(outbox.c.published_at.is_(None)))
                               .scalar_one())
                received += int(conn.execute(select(func.count()).select_from(inbox))
                                .scalar_one())
            pending += self.queue_depth(transport, name)
        return pending, received

    def _why(self) -> str:
        return "; ".join(f"{n}: {c.tail(5)}" for n, c in self.nodes.items())
