"""The node process: four loops around one messenger, and a health endpoint.

    relay      outbox -> broker: ``pending`` -> ``publish`` (confirmed) -> ``mark_published``
    consumer   broker -> inbox: ``transport.consume(node, messenger.handle)``
    dead       the node's dead-letter queue -> its ``dead_letters`` table (every drain_interval)
    sweeper    ``messenger.sweep()``: time limits, status queries (every sweep_interval)

Every failure is logged, counted for ``/health`` and retried with a bounded backoff; a loop
never dies of one bad pass, and nothing is marked done that was not. The outbox keeps what the
relay could not publish; the broker keeps what the consumer did not ack.

Shutdown (SIGTERM, SIGINT or :meth:`NodeRuntime.stop`): the consumer takes no new delivery and
finishes (and acks) the one in hand, the relay finishes its current envelope, then connections
close. No business logic lives here.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Final, Protocol

from guoku.domain.errors import GuokuError
from guoku.node.health import HealthServer
from guoku.transport.amqp import Backoff, DeadLetterSink
from guoku.transport.ports import OutgoingEnvelope, Transport

log = logging.getLogger(__name__)

DEFAULT_BATCH: Final = 20
"""Envelopes the relay seals per pass (each holds up to envelope.MAX_BATCH items)."""
MAX_LAG: Final = 10_000
"""Unpublished outbox rows beyond which the node reports itself degraded."""
SHUTDOWN_TIMEOUT: Final = 30.0
LOOPS: Final = ("relay", "consume", "dead_letters", "sweep")


class NodeMessenger(Protocol):
    """What the runtime needs of :class:`guoku.transport.messenger.Messenger`."""

    @property
    def node_name(self) -> str: ...

    def pending(self, limit: int) -> list[OutgoingEnvelope]: ...

    def mark_published(self, envelope: OutgoingEnvelope) -> None: ...

    def handle(self, body: bytes) -> None: ...

    def sweep(self) -> int: ...

    def record_dead_letter(self, queue: str, envelope_id: str | None, body: bytes, reason: str,
                           attempts: int) -> None: ...


class NodeTransport(Transport, Protocol):
    """A transport that also hands back what it dead-lettered (:class:`AmqpTransport`)."""

    def queue_name(self, node: str) -> str: ...

    def drain_dead_letters(self, node: str, sink: DeadLetterSink) -> int: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LoopHealth:
    """One loop's record: when it last succeeded, how often it failed, whether it is failing."""

    last_ok: datetime | None = None
    errors: int = 0
    failing: bool = False
    last_error: str | None = None


@dataclass
class Counters:
    published: int = 0
    consumed: int = 0
    dead_letters: int = 0
    swept: int = 0
    loops: dict[str, LoopHealth] = field(default_factory=lambda: {n: LoopHealth() for n in LOOPS})


class NodeRuntime:
    """Runs one node until stopped. ``health_port=None`` serves no endpoint; 0 picks a port."""

    def __init__(
        self, messenger: NodeMessenger, transport: NodeTransport, *,
        relay_interval: float = 0.05, sweep_interval: float = 5.0, drain_interval: float = 5.0,
        batch: int = DEFAULT_BATCH, health_port: int | None = None,
        backlog: Callable[[], int] | None = None, max_lag: int = MAX_LAG,
        backoff: Backoff | None = None, clock: Callable[[], datetime] = utc_now,
    ) -> None:
        assert relay_interval > 0 and sweep_interval > 0 and drain_interval > 0 and batch >= 1
        self.messenger = messenger
        self.transport = transport
        self.node = messenger.node_name
        self.relay_interval = relay_interval
        self.sweep_interval = sweep_interval
        self.drain_interval = drain_interval
        self.batch = batch
        self.max_lag = max_lag
        self._backlog = backlog
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._health_port = health_port
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.counters = Counters()
        self.health: HealthServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        assert not self._threads, "a runtime starts once"
        if self._health_port is not None:
            self.health = HealthServer(self.snapshot, port=self._health_port)
            self.health.start()
        targets: dict[str, Callable[[], None]] = {
            "relay": self._relay_loop,
            "consume": self._consume_loop,
            "dead_letters": lambda: self._every("dead_letters", self.drain_interval, self._drain),
            "sweep": lambda: self._every("sweep", self.sweep_interval, self._sweep),
        }
        for name, target in targets.items():
            thread = threading.Thread(target=target, name=f"{self.node}-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        log.info("node %s running", self.node)

    def stop(self) -> None:
        """Ask every loop to finish; safe from any thread and from a signal handler."""
        self._stop.set()

    def run(self) -> int:
        """Start, block until SIGTERM/SIGINT or :meth:`stop`, shut down; 0 when clean."""
        previous = self._install_signals()
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            clean = self.shutdown()
            self._restore_signals(previous)
        return 0 if clean else 1

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
        """Stop the loops (consumer first: it finishes the delivery in hand), then close."""
        self._stopping = True
        self._stop.set()
        clean = True
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                clean = False
                log.error("%s did not stop within %.0f s", thread.name, timeout)
        try:
            self.transport.close()
        except Exception:
            clean = False
            log.exception("closing the transport")
        if self.health is not None:
            self.health.close()
        log.info("node %s stopped%s", self.node, "" if clean else " (not cleanly)")
        return clean

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stop()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    # -- loops -----------------------------------------------------------------------------

    def _relay_loop(self) -> None:
        backoff = self._fresh_backoff()
        while not self._stop.is_set():
            try:
                moved = self._relay_once()
            except Exception as exc:
                self._failed("relay", exc)
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            self._ok("relay")
            if moved < self.batch:
                self._stop.wait(self.relay_interval)

    def _relay_once(self) -> int:
        """Publish the oldest pending envelopes in order; stop at the first failure (the rest
        wait in the outbox, so a receiver never sees them out of order)."""
        return self._relay(self.messenger.pending(self.batch), self._publish)

    def _publish(self, envelope: OutgoingEnvelope) -> None:
        self.transport.publish(envelope.receiver_node, envelope.envelope_id, envelope.body)

    def _relay(self, envelopes: list[OutgoingEnvelope],
               publish: Callable[[OutgoingEnvelope], None]) -> int:
        """Publish (confirmed) and mark each envelope in turn; stop when asked to."""
        for envelope in envelopes:
            if self._stop.is_set():
                break
            publish(envelope)
            self.messenger.mark_published(envelope)
            with self._lock:
                self.counters.published += 1
        return len(envelopes)

    def _consume_loop(self) -> None:
        backoff = self._fresh_backoff()
        while not self._stop.is_set():
            try:
                self.transport.consume(self.node, self._handle, self._stop)
            except Exception as exc:
                self._failed("consume", exc)
                self._stop.wait(backoff.next())
            else:
                backoff.reset()
                self._stop.wait(self.relay_interval)  # returned early: do not spin

    def _handle(self, body: bytes) -> None:
        try:
            self.messenger.handle(body)
        except Exception as exc:
            self._failed("consume", exc)
            raise  # the transport requeues it; the broker counts the delivery
        with self._lock:
            self.counters.consumed += 1
        self._ok("consume")

    def _drain(self) -> None:
        queue = self.transport.queue_name(self.node)

        def sink(envelope_id: str | None, body: bytes, reason: str, attempts: int) -> None:
            self.messenger.record_dead_letter(queue, envelope_id, body, reason, attempts)
            log.error("dead letter %s from %s: %s after %d deliveries", envelope_id, queue,
                      reason, attempts)

        moved = self._drain_into(sink)
        with self._lock:
            self.counters.dead_letters += moved

    def _drain_into(self, sink: DeadLetterSink) -> int:
        return self.transport.drain_dead_letters(self.node, sink)

    def _sweep(self) -> None:
        swept = self.messenger.sweep()
        with self._lock:
            self.counters.swept += swept

    def _every(self, name: str, interval: float, work: Callable[[], None]) -> None:
        backoff = self._fresh_backoff()
        while not self._stop.is_set():
            try:
                work()
            except Exception as exc:
                self._failed(name, exc)
                self._stop.wait(min(backoff.next(), interval))
                continue
            backoff.reset()
            self._ok(name)
            self._stop.wait(interval)

    def _fresh_backoff(self) -> Backoff:
        return Backoff(self._backoff.initial, self._backoff.maximum, self._backoff.factor)

    def _ok(self, loop: str) -> None:
        with self._lock:
            state = self.counters.loops[loop]
            state.last_ok = self._clock()
            state.failing = False

    def _failed(self, loop: str, exc: Exception) -> None:
        if isinstance(exc, GuokuError):
            log.warning("%s: %s", loop, exc)
        else:
            log.error("%s: unexpected %s", loop, type(exc).__name__, exc_info=exc)
        with self._lock:
            state = self.counters.loops[loop]
            state.errors += 1
            state.failing = True
            state.last_error = f"{type(exc).__name__}: {exc}"[:500]

    # -- health ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The health document: ``status`` is ``ok`` only when every loop is alive and its
        last attempt succeeded and the relay lag is below ``max_lag``."""
        lag: int | None = None
        problems: list[str] = []
        if self._backlog is not None:
            try:
                lag = self._backlog()
            except Exception as exc:
                problems.append(f"backlog unavailable: {type(exc).__name__}")
        if lag is not None and lag > self.max_lag:
            problems.append(f"relay lag {lag} > {self.max_lag}")
        with self._lock:
            loops = {n: LoopHealth(s.last_ok, s.errors, s.failing, s.last_error)
                     for n, s in self.counters.loops.items()}
            counts = {"published": self.counters.published, "consumed": self.counters.consumed,
                      "dead_letters": self.counters.dead_letters, "swept": self.counters.swept}
        problems += [f"{n} failing: {s.last_error}" for n, s in loops.items() if s.failing]
        dead = [t.name for t in self._threads if not t.is_alive()]
        if self._stopping or self._stop.is_set():
            status = "stopping"
        else:
            problems += [f"thread {name} died" for name in dead]
            status = "degraded" if problems or not self._threads else "ok"
        return {
            "node": self.node,
            "status": status,
            "relay_lag": lag,
            "last_relay": _iso(loops["relay"].last_ok),
            "last_consume": _iso(loops["consume"].last_ok),
            "last_dead_letter_drain": _iso(loops["dead_letters"].last_ok),
            "last_sweep": _iso(loops["sweep"].last_ok),
            "errors": {n: s.errors for n, s in loops.items()},
            "problems": problems,
            **counts,
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()
