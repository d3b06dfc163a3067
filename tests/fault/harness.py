"""Fault-test harness: real node processes, their databases, the broker, and what to compare.

Everything here acts on the servers as an operator would. A node is ``guoku node run`` in its
own process (output to a log file), killed with SIGKILL or stopped with SIGTERM; a database is
made with ``CREATE DATABASE ... TEMPLATE``; the broker is restarted with ``rabbitmqctl``.
Nothing in ``src/`` is patched, and no node code runs inside the test process except the
receiving clerk (:class:`Acceptor`), who uses the library as the counter application would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from guoku.bootstrap import build_node
from guoku.node.bootstrap import assemble, business_hooks, resolve_node
from guoku.province import ProvinceSpec, demo_province
from guoku.security.certs import TrustStore
from guoku.security.crypto import sm3_hex
from guoku.security.sealing import VoucherVerifier
from guoku.store.repository import VoucherQuery
from guoku.store.tables import dead_letters, inbox, outbox, rejected_envelopes, vouchers
from guoku.transport.amqp import AmqpTransport, Backoff
from guoku.transport.envelope import read_head
from guoku.xml.samples import sample_document

NODES: Final = ("finance", "pboc", "bank-icbc", "bank-abc")
SENDER: Final = "bank-icbc"
RECEIVER: Final = "pboc"
COUNTY: Final = "533103"
RECEIVING_CLERK: Final = f"pboc-{COUNTY}-recv"
VT_CODE: Final = "2301"
"""申请划款凭证, bank -> PBOC: one stamp (the bank's business seal), the cheapest to seal."""
BUILD_CHUNK: Final = 500
POLL: Final = 0.25
START_TIMEOUT: Final = 120.0
STOP_TIMEOUT: Final = 60.0
LOG_TAIL: Final = 30
_NOT_INHERITED: Final = frozenset({"GUOKU_DB_URL", "GUOKU_SIGNING_URL"})
"""Settings of the caller's own environment that would point a node elsewhere."""
_HEALTH_LINE: Final = re.compile(r"health endpoint on http://127\.0\.0\.1:(\d+)/health")

Row = tuple[str, int, int]
"""(voucher no, version, amount in fen): what the two sides must agree on."""


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               diagnose: Callable[[], str] = lambda: "") -> float:
    """Poll ``condition`` until true; returns the seconds it took, or fails with a diagnosis."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                 f"{diagnose()}")
        time.sleep(POLL)
    return time.monotonic() - start


# -- the sender's vouchers -----------------------------------------------------------------------


def voucher_no(i: int) -> str:
    return f"FT{i:08d}"


def build_sent_vouchers(home: Path, db_url: str, count: int) -> None:
    """bank-icbc's entry, review and seal clerks: ``count`` vouchers sent, in batches."""
    assembled = assemble(home, resolve_node(demo_province(), SENDER), db_url)
    library = assembled.node.library
    entry, review, seal = (f"icbc-{COUNTY}-{desk}" for desk in ("entry", "review", "seal"))
    try:
        for start in range(0, count, BUILD_CHUNK):
            entries = []
            for i in range(start, min(count, start + BUILD_CHUNK)):
                doc = sample_document(VT_CODE, voucher_no=voucher_no(i),
                                      amount=f"{i % 90_000 + 1}.{i % 100:02d}", admdiv=COUNTY)
                entries.append((doc.header, doc.details))
            ids = [r.id for r in library.create_many(entry, VT_CODE, entries,
                                                     receiver="P530000")]
            library.check_many(review, ids)
            library.seal_many(seal, ids)
            library.send_many(seal, ids)
    finally:
        assembled.close()


# -- node processes ------------------------------------------------------------------------------


class NodeProcess:
    """One ``guoku node run`` process; ``start`` may be called again after ``kill``."""

    def __init__(self, name: str, *, home: Path, db_url: str, broker_url: str, prefix: str,
                 log: Path, batch: int) -> None:
        self.name = name
        self.log = log
        self.broker_url = broker_url
        self.argv = [sys.executable, "-m", "guoku", "node", "run", "--party", name,
                     "--home", str(home), "--db", db_url, "--prefix", prefix,
                     "--health-port", "0", "--batch", str(batch)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._offset = 0
        self._port: int | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is running already"
        self.starts += 1
        self._port = None
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts} of {self.name} ---\n".encode())
            out.flush()
            self._offset = out.tell()
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**{k: v for k, v in os.environ.items() if k not in _NOT_INHERITED},
                     "GUOKU_BROKER_URL": self.broker_url},
            )

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no ack — what a power cut does to the process."""
        assert self.proc is not None and self.alive, f"{self.name} is not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM and wait: the exit code of a graceful shutdown (0 when clean)."""
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            raise AssertionError(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT:.0f} s\n"
                                 f"{self.tail()}") from None

    def port(self) -> int | None:
        if self._port is None and self.log.exists():
            with self.log.open("rb") as f:
                f.seek(self._offset)
                found = _HEALTH_LINE.search(f.read().decode("utf-8", "replace"))
            self._port = int(found.group(1)) if found else None
        return self._port

    def health(self) -> dict[str, Any] | None:
        """The /health document (200 or 503 alike), or None when nothing answers."""
        port = self.port()
        if port is None or not self.alive:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                document: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            document = json.loads(exc.read())
        except (OSError, ValueError):
            return None
        return document

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        def ok() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}\n"
                                     f"{self.tail()}")
            document = self.health()
            return document is not None and document.get("status") == "ok"

        wait_until(ok, timeout, f"{self.name} to report ok on /health", self.tail)

    def tail(self, lines: int = LOG_TAIL) -> str:
        if not self.log.exists():
            return f"[{self.name}: no log]"
        text_lines = self.log.read_text("utf-8", "replace").splitlines()[-lines:]
        return "\n".join([f"[{self.name} log {self.log}]", *text_lines])


# -- databases -----------------------------------------------------------------------------------


class Databases:
    """Whole databases on the suite's PostgreSQL server: created, cloned, dropped."""

    def __init__(self, pg_url: str) -> None:
        self._base = make_url(pg_url)
        self._admin = create_engine(self._base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return self._base.set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        assert re.fullmatch(r"[a-z0-9_]{1,63}", name), name
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop(name)
        self._admin.dispose()


def db_name(run: str, node: str) -> str:
    return f"gf_{run}_{node.replace('-', '_')}"


# -- what the databases say ----------------------------------------------------------------------


def rows(engine: Engine, direction: str, state: str | None = None) -> list[Row]:
    """Sorted (voucher no, version, amount) of one side's vouchers."""
    query = select(vouchers.c.voucher_no, vouchers.c.version, vouchers.c.amount_fen).where(
        vouchers.c.direction == direction)
    if state is not None:
        query = query.where(vouchers.c.state == state)
    with engine.connect() as conn:
        return sorted((str(n), int(v), int(a)) for n, v, a in conn.execute(query))


def digest(found: Iterable[Row]) -> tuple[int, str]:
    """Count and SM3 over the sorted rows, one ``no|version|fen`` line each."""
    ordered = sorted(found)
    text_rows = "\n".join(f"{no}|{version}|{fen}" for no, version, fen in ordered)
    return len(ordered), sm3_hex(text_rows.encode())


def count(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def states(engine: Engine, direction: str) -> Counter[str]:
    with engine.connect() as conn:
        return Counter({str(s): int(n) for s, n in conn.execute(
            select(vouchers.c.state, func.count()).where(vouchers.c.direction == direction)
            .group_by(vouchers.c.state))})


def received(engine: Engine) -> int:
    return count(engine, select(func.count()).select_from(vouchers)
                 .where(vouchers.c.direction == "in"))


def published(engine: Engine, kind: str = "voucher") -> int:
    return count(engine, select(func.count()).select_from(outbox)
                 .where(outbox.c.kind == kind, outbox.c.published_at.is_not(None)))


def unpublished(engine: Engine) -> int:
    return count(engine, select(func.count()).select_from(outbox)
                 .where(outbox.c.published_at.is_(None)))


def inbox_outcomes(engine: Engine) -> Counter[str]:
    """``kind/outcome`` -> items; every item id appears once (it is the inbox's primary key)."""
    with engine.connect() as conn:
        return Counter({f"{k}/{o}": int(n) for k, o, n in conn.execute(
            select(inbox.c.kind, inbox.c.outcome, func.count())
            .group_by(inbox.c.kind, inbox.c.outcome))})


def duplicate_vouchers(engine: Engine) -> int:
    """Voucher keys stored more than once on one side (there must be none)."""
    key = (vouchers.c.admdiv, vouchers.c.st_year, vouchers.c.vt_code, vouchers.c.voucher_no,
           vouchers.c.version, vouchers.c.direction)
    dup = select(*key).group_by(*key).having(func.count() > 1).subquery()
    return count(engine, select(func.count()).select_from(dup))


def troubles(engine: Engine) -> dict[str, int]:
    """Dead letters and refused envelopes: each is a message that did not go through."""
    return {
        "dead_letters": count(engine, select(func.count()).select_from(dead_letters)),
        "rejected_envelopes": count(engine, select(func.count()).select_from(rejected_envelopes)),
    }


# -- the broker ----------------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=180)


def queue_depths(amqp_url: str, prefix: str, nodes: Iterable[str]) -> dict[str, tuple[int, int]]:
    transport = AmqpTransport(amqp_url, prefix=prefix)
    try:
        return {node: transport.queue_depth(node) for node in nodes}
    finally:
        transport.close()


def delete_topology(amqp_url: str, prefix: str, nodes: Iterable[str]) -> None:
    transport = AmqpTransport(amqp_url, prefix=prefix)
    try:
        for node in nodes:
            transport.delete_topology(node)
        transport.delete_exchange()
    finally:
        transport.close()


class Duplicator:
    """A network that delivers every message twice.

    The sending side's nodes publish under one prefix, the receiving side's consume under
    another; in between, this consumes ``<source>.node.<node>`` and publishes each body twice
    (broker-confirmed) to ``<target>.node.<node>`` before it acks the original.
    """

    def __init__(self, amqp_url: str, source: str, target: str, node: str) -> None:
        fast = Backoff(initial=0.05, maximum=0.5)
        self.node = node
        self._source = AmqpTransport(amqp_url, prefix=source, retry=fast, reconnect=fast)
        self._target = AmqpTransport(amqp_url, prefix=target, retry=fast, reconnect=fast)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dup-{node}", daemon=True)
        self.forwarded = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._source.consume(self.node, self._twice, self._stop)
        except BaseException as exc:  # reported by stop(), the test fails on it
            self.error = exc
        finally:
            self._target.close()

    def _twice(self, body: bytes) -> None:
        envelope_id = read_head(body).envelope_id
        self._target.publish(self.node, envelope_id, body)
        self._target.publish(self.node, envelope_id, body)
        self.forwarded += 1

    def stop(self, *, check: bool = True) -> None:
        self._stop.set()
        self._thread.join(30)
        if check:
            assert not self._thread.is_alive(), f"duplicator for {self.node} did not stop"
            assert self.error is None, f"duplicator for {self.node} failed: {self.error!r}"


# -- the receiving clerk -------------------------------------------------------------------------


class _NoSeals:
    """The receiving desk stamps nothing; a call here would be a bug in the test."""

    def seal(self, *_args: object) -> object:
        raise AssertionError("the receiving desk does not seal")

    seal_many = seal


class Desks:
    """The central bank's receiving desks (签收岗) of ``clerks``: accept every voucher as it
    arrives, or return every ``return_every``-th one (by number) with a reason.

    Uses the library in this process against the receiver's database, as the counter would;
    each answer writes a receipt to the outbox that the receiving node relays back.
    """

    def __init__(self, home: Path, province: ProvinceSpec, db_url: str, clerks: Sequence[str],
                 return_every: int = 0) -> None:
        spec = resolve_node(province, RECEIVER)
        # The node process holds the signing server's directory; the desk needs no seal.
        self._node = build_node(db_url, province, spec, _NoSeals(),
                                VoucherVerifier(TrustStore.from_directory(home / "trust")),
                                hooks=business_hooks(province.party(spec.node_party).kind))
        self._clerks = list(clerks)
        self._return_every = return_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="desks", daemon=True)
        self.answered = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        library = self._node.library
        waiting = VoucherQuery(state="received", direction="in")
        try:
            while not self._stop.is_set():
                busy = False
                for clerk in self._clerks:
                    for row in library.query(clerk, waiting, page=1, page_size=100).items:
                        busy = True
                        if self._returns(row.voucher_no):
                            library.return_(clerk, row.id, "收款人账户有误")
                        else:
                            library.accept(clerk, row.id)
                        self.answered += 1
                if not busy:
                    self._stop.wait(POLL)
        except BaseException as exc:  # reported by stop(), the test fails on it
            self.error = exc

    def _returns(self, voucher_no: str) -> bool:
        return bool(self._return_every) and int(voucher_no[2:]) % self._return_every == 0

    def stop(self, *, check: bool = True) -> None:
        self._stop.set()
        self._thread.join(60)
        self._node.engine.dispose()
        if check:
            assert not self._thread.is_alive(), "the receiving desks did not stop"
            assert self.error is None, f"the receiving desks failed: {self.error!r}"


class Acceptor(Desks):
    """The fault scenarios' one receiving desk of the demo county: accepts everything."""

    def __init__(self, home: Path, db_url: str) -> None:
        super().__init__(home, demo_province(), db_url, [RECEIVING_CLERK])

    @property
    def accepted(self) -> int:
        return self.answered
