"""A province of separate processes on this machine: one signing server and one node process
per node, on PostgreSQL and RabbitMQ — what tests and the deployment commands start.

Clerk-side work (entry, review, seal, answer) goes through each node's library in the calling
process, sealing through the same signing-server processes over HTTP; the node processes carry
the envelopes. :meth:`LocalProvince.settle` waits until nothing is in flight.
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
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    health: str
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    def start(self) -> None:
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

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

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class LocalProvince:
    """Start with :meth:`up`, drive flows through :meth:`library`, wait with :meth:`settle`."""

    home: Path
    province: ProvinceSpec
    db_urls: Mapping[str, str]
    broker_url: str
    prefix: str
    workdir: Path
    secrets: Secrets = DEMO_SECRETS
    signing: dict[str, Child] = field(default_factory=dict)
    nodes: dict[str, Child] = field(default_factory=dict)
    assembled: dict[str, AssembledNode] = field(default_factory=dict)

    # --- processes ---------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {**os.environ, "GUOKU_SIGNING_PASSPHRASE": self.secrets.passphrase,
                "GUOKU_USB_PIN": self.secrets.user_pin, "GUOKU_BROKER_URL": self.broker_url}

    def _signing_child(self, spec: NodeSpec) -> Child:
        port = free_port()
        argv = [sys.executable, "-m", "guoku", "signing-server", "--dir",
                str(signing_dir(self.home, spec)), "--port", str(port)]
        return Child(f"signing-{spec.name}", argv, self._env(),
                     self.workdir / f"signing-{spec.name}.log",
                     f"http://127.0.0.1:{port}/health")

    def _node_child(self, spec: NodeSpec) -> Child:
        port = free_port()
        signing_url = self.signing[spec.name].health.removesuffix("/health")
        argv = [sys.executable, "-m", "guoku", "node", "run", "--party", spec.name,
                "--db", self.db_urls[spec.name], "--home", str(self.home), "--prefix",
                self.prefix, "--health-port", str(port), "--signing", signing_url]
        return Child(f"node-{spec.name}", argv, self._env(),
                     self.workdir / f"node-{spec.name}.log",
                     f"http://127.0.0.1:{port}/health")

    def up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for spec in self.province.nodes:
            self.signing[spec.name] = self._signing_child(spec)
            self.signing[spec.name].start()
        for child in self.signing.values():
            child.wait_ready()
        trust = TrustStore.from_directory(self.home / "trust")
        for spec in self.province.nodes:  # migrate and seed before the node processes start
            url = self.signing[spec.name].health.removesuffix("/health")
            self.assembled[spec.name] = assemble(self.home, spec, self.db_urls[spec.name],
                                                 secrets=self.secrets, province=self.province,
                                                 trust=trust, signing_url=url)
        transport = AmqpTransport(self.broker_url, prefix=self.prefix)
        try:
            for spec in self.province.nodes:
                with_broker(partial(transport.declare, spec.name))
        finally:
            transport.close()
        for spec in self.province.nodes:
            self.start_node(spec.name)

    def start_node(self, name: str) -> None:
        spec = next(s for s in self.province.nodes if s.name == name)
        self.nodes[name] = self._node_child(spec)
        self.nodes[name].start()
        self.nodes[name].wait_ready()

    def down(self) -> dict[str, int | None]:
        codes = {f"node-{n}": c.stop() for n, c in self.nodes.items()}
        codes.update({f"signing-{n}": c.stop() for n, c in self.signing.items()})
        for node in self.assembled.values():
            node.close()
        return codes

    def delete_queues(self) -> None:
        transport = AmqpTransport(self.broker_url, prefix=self.prefix)
        try:
            for spec in self.province.nodes:
                with_broker(partial(transport.delete_topology, spec.name))
            with_broker(transport.delete_exchange)
        finally:
            transport.close()

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
            pending += with_broker(partial(transport.queue_depth, name))[0]
        return pending, received

    def _why(self) -> str:
        return "; ".join(f"{n}: {c.tail(5)}" for n, c in self.nodes.items())
