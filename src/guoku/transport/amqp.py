"""The production transport: RabbitMQ over AMQP 0-9-1 with pika's blocking adapter.

Topology, declared idempotently by the node that owns it (its consumer, its dead-letter drain,
or ``guoku mq declare`` at provisioning), never by a sender: each node chooses its own delivery
limit, and a sender that declared a receiver's queue would freeze its own choice into it::

    <prefix>.node.<node>   durable quorum queue, x-delivery-limit, dead-letters at least once
         │  after delivery_limit failed deliveries (delivery_limit + 1 in all)
         ▼
    <prefix>.dlx           durable direct exchange
         │  routing key <prefix>.dead.<node>
         ▼
    <prefix>.dead.<node>   durable quorum queue, drained into the node's ``dead_letters`` table

A node scaled out over several worker processes (``guoku node run --partitions P``) has P
queues instead of one, ``<prefix>.node.<node>.<k>`` for k in 0..P-1, each with a single active
consumer; a sender puts an envelope in the partition of its division
(:func:`guoku.node.partitions.partition_of`), so one voucher's messages stay in order while
partitions are worked in parallel. Every partition dead-letters into the one dead queue.

Guarantees, each the smallest that exactly-once on top needs:

- ``publish`` returns only after the broker confirmed the persistent message into the queue
  (publisher confirms, ``mandatory``); anything else raises :class:`TransientError` and the
  outbox keeps the envelope — also while the receiver's queue does not exist yet.
- ``consume`` acks a delivery only after the handler returned. A handler that raised is
  nacked back to the queue after a bounded backoff; the queue counts deliveries and dead-letters
  at the limit. A dropped connection is re-opened with backoff; whatever was in hand is
  redelivered by the broker and deduplicated by the receiver's inbox.
- ``drain_dead_letters`` acks a dead letter only after the sink stored it.

pika is not thread-safe: each thread gets its own connection (publish and drain share the
calling thread's; ``consume`` opens its own). Every pika exception is translated here, so callers
see only :class:`TransientError` or :class:`BrokerMisconfigured`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

import pika
import pika.exceptions as pex

from guoku.domain.errors import GuokuError
from guoku.transport.ports import Handler, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PREFIX: Final = "guoku"
DEFAULT_DELIVERY_LIMIT: Final = 5
DEFAULT_PREFETCH: Final = 8
MAX_QUEUE_NAME: Final = 64
"""Queue names must fit ``dead_letters.queue``."""
MAX_DRAIN: Final = 1000
"""Dead letters moved per ``drain_dead_letters`` call; the next call takes the rest."""
POLL_SECONDS: Final = 0.2
"""How often an idle consumer looks at its stop event."""
CONNECT_TIMEOUT: Final = 5.0
BLOCKED_TIMEOUT: Final = 30.0
"""A connection the broker blocks (memory or disk alarm) for longer than this fails over to
TransientError rather than hanging the relay."""
_NODE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

DeadLetterSink = Callable[[str | None, bytes, str, int], None]
"""``(envelope_id, body, reason, attempts)``; stores one dead letter durably or raises."""


class BrokerMisconfigured(GuokuError):
    """The broker refused the topology (an existing queue with other arguments, no access):
    retrying will not help, an operator must look."""

    code = "BROKER_MISCONFIGURED"


@dataclass
class Backoff:
    """Exponential delays, bounded: 0.2 s doubling to 5 s by default; ``reset`` after success."""

    initial: float = 0.2
    maximum: float = 5.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        assert 0 < self.initial <= self.maximum and self.factor >= 1
        self._next = self.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


_BROKER_ERRORS: Final = (pex.AMQPError, OSError)
"""What pika raises when the broker or the network misbehaves (AMQPError covers connection,
channel, stream-lost, unroutable and nack errors)."""


_MESSAGE_REFUSED: Final = (pex.UnroutableError, pex.NackError)
"""The broker refused one message; the channel itself is fine."""


class _StaleConnection(TransientError):
    """A broker error on a connection this thread had cached: worth one retry on a new one."""


def _translate(exc: BaseException, doing: str) -> GuokuError:
    if isinstance(exc, pex.ChannelClosedByBroker) and exc.reply_code in (403, 406):
        return BrokerMisconfigured(f"{doing}: broker refused: {exc.reply_code} {exc.reply_text}")
    if isinstance(exc, pex.UnroutableError):
        return TransientError(f"{doing}: no such queue yet (the receiver declares it when it "
                              "first starts, or `guoku mq declare`)")
    if isinstance(exc, pex.NackError):
        return TransientError(f"{doing}: the broker nacked the message")
    name, detail = type(exc).__name__, str(exc)
    if not detail.startswith(name):
        detail = f"{name}: {detail}" if detail else name
    return TransientError(f"{doing}: broker unavailable: {detail}")


@dataclass(frozen=True, slots=True)
class Topology:
    """The names a node's messages live under."""

    prefix: str

    def queue(self, node: str, partition: int | None = None) -> str:
        name = self._name("node", node)
        if partition is None:
            return name
        assert partition >= 0
        return self._fits(f"{name}.{partition}")

    def dead_queue(self, node: str) -> str:
        return self._name("dead", node)

    @property
    def dlx(self) -> str:
        return f"{self.prefix}.dlx"

    def node_of_queue(self, queue: str) -> str:
        """``<prefix>.node.<node>`` -> ``<node>`` (what a replay needs from a dead letter)."""
        head = f"{self.prefix}.node."
        if not queue.startswith(head):
            raise BrokerMisconfigured(f"queue {queue!r} is not a node queue under {head}*")
        node, _, partition = queue[len(head):].partition(".")
        if partition and not partition.isdigit():
            raise BrokerMisconfigured(f"queue {queue!r} is not a node queue under {head}*")
        return node

    def _name(self, kind: str, node: str) -> str:
        if not _NODE_NAME.match(node):
            raise BrokerMisconfigured(f"node name {node!r} is not [A-Za-z0-9][A-Za-z0-9_-]*")
        return self._fits(f"{self.prefix}.{kind}.{node}")

    @staticmethod
    def _fits(name: str) -> str:
        if len(name) > MAX_QUEUE_NAME:
            raise BrokerMisconfigured(f"queue name {name!r} is longer than {MAX_QUEUE_NAME}")
        return name


@dataclass
class _Session:
    """One thread's connection and confirm-mode channel, and the nodes it declared."""

    connection: Any
    channel: Any
    owner: threading.Thread
    declared: set[tuple[str, int | None]] = field(default_factory=set)


class AmqpTransport:
    """:class:`~guoku.transport.ports.Transport` on RabbitMQ quorum queues."""

    def __init__(
        self, url: str, *, prefix: str = DEFAULT_PREFIX,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT, prefetch: int = DEFAULT_PREFETCH,
        retry: Backoff | None = None, reconnect: Backoff | None = None,
    ) -> None:
        assert delivery_limit >= 1 and prefetch >= 1
        self._parameters = _parameters(url)
        self.where = f"{self._parameters.host}:{self._parameters.port}"
        """The broker's address for messages (never the credentials)."""
        self.topology = Topology(prefix)
        self.delivery_limit = delivery_limit
        self.prefetch = prefetch
        self._retry = retry or Backoff()
        self._reconnect = reconnect or Backoff(initial=0.2, maximum=5.0)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[_Session] = []

    # -- the Transport protocol ------------------------------------------------------------

    def publish(self, receiver_node: str, envelope_id: str, body: bytes, *,
                partition: int | None = None) -> None:
        """``partition``: the receiver's partition queue (None: its single queue)."""
        self._publish(receiver_node, envelope_id, body, partition)

    def consume(self, node: str, handler: Handler, stop: threading.Event, *,
                partition: int | None = None) -> None:
        reconnect = Backoff(self._reconnect.initial, self._reconnect.maximum)
        retry = Backoff(self._retry.initial, self._retry.maximum, self._retry.factor)
        while not stop.is_set():
            try:
                self._consume_connected(node, partition, handler, stop, reconnect, retry)
            except _BROKER_ERRORS as exc:
                error = _translate(exc, f"consume {self.topology.queue(node, partition)} at "
                                   f"{self.where}")
                if isinstance(error, BrokerMisconfigured):
                    raise error from exc
                delay = reconnect.next()
                log.warning("%s; reconnecting in %.1f s", error.message, delay)
                stop.wait(delay)

    def close(self) -> None:
        """Close every connection this transport opened for publishing or draining.

        Call it after the threads that used the transport have stopped; a live thread's
        connection is closed from its own thread the next time it talks to the broker.
        """
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            if session.owner is threading.current_thread() or not session.owner.is_alive():
                _close_quietly(session.connection)
            else:
                with suppress(*_BROKER_ERRORS):  # already closed
                    session.connection.add_callback_threadsafe(session.connection.close)
        self._local.session = None

    def declare(self, node: str, partitions: int | None = None) -> None:
        """Declare ``node``'s queues (its single queue, or ``partitions`` partition queues) and
        the dead-letter exchange (idempotent; a queue that exists with other arguments raises
        :class:`BrokerMisconfigured`)."""
        for partition in _partitions(partitions):
            self._run(f"declare {node}", lambda _session: None, declare=node,
                      partition=partition)

    def queue_name(self, node: str) -> str:
        """The queue ``node`` consumes (what ``dead_letters.queue`` records)."""
        return self.topology.queue(node)

    # -- dead letters ----------------------------------------------------------------------

    def drain_dead_letters(self, node: str, sink: DeadLetterSink, *, limit: int = MAX_DRAIN,
                           partitions: int | None = None) -> int:
        """Move up to ``limit`` messages from ``<prefix>.dead.<node>`` into ``sink``.

        Each is acked only after ``sink`` returned; if ``sink`` raises, that message goes back
        to the dead queue and the error propagates. Returns how many were moved.
        """
        dead = self.topology.dead_queue(node)

        def drain(session: _Session) -> int:
            moved = 0
            while moved < limit:
                method, properties, body = session.channel.basic_get(dead, auto_ack=False)
                if method is None:
                    break
                reason, attempts = self._death(properties.headers or {})
                try:
                    sink(properties.message_id, body, reason, attempts)
                except BaseException:
                    session.channel.basic_nack(method.delivery_tag, requeue=True)
                    raise
                session.channel.basic_ack(method.delivery_tag)
                moved += 1
            return moved

        return self._run(f"drain {dead}", drain, declare=node,
                         partition=None if partitions is None else 0)

    def replay(self, node: str, body: bytes, envelope_id: str | None = None, *,
               partition: int | None = None) -> None:
        """Publish a dead letter's body to ``node``'s queue again (a fresh delivery count)."""
        self._publish(node, envelope_id, body, partition)

    def queue_depth(self, node: str, partitions: int | None = None) -> tuple[int, int]:
        """``(ready messages in the node's queues, in its dead queue)`` for health and tests."""
        def depth(session: _Session) -> tuple[int, int]:
            main = sum(int(session.channel.queue_declare(self.topology.queue(node, p),
                                                         passive=True).method.message_count)
                       for p in _partitions(partitions))
            dead = session.channel.queue_declare(self.topology.dead_queue(node), passive=True)
            return main, int(dead.method.message_count)

        return self._run(f"inspect {node}", depth)

    def delete_topology(self, node: str, partitions: int | None = None) -> None:
        """Delete ``node``'s queues (tests and decommissioning; never on a live node)."""
        def delete(session: _Session) -> None:
            for partition in _partitions(partitions):
                session.channel.queue_delete(self.topology.queue(node, partition))
                session.declared.discard((node, partition))
            session.channel.queue_delete(self.topology.dead_queue(node))

        self._run(f"delete {node}", delete)

    def delete_exchange(self) -> None:
        self._run("delete dead-letter exchange",
                  lambda session: session.channel.exchange_delete(self.topology.dlx))

    # -- internals -------------------------------------------------------------------------

    def _publish(self, node: str, message_id: str | None, body: bytes,
                 partition: int | None = None) -> None:
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id,
            content_type="application/xml", timestamp=int(time.time()),
        )
        queue = self.topology.queue(node, partition)
        self._run(f"publish {message_id} to {node}", lambda session: session.channel.basic_publish(
            exchange="", routing_key=queue, body=body, properties=properties, mandatory=True))

    def _run(self, doing: str, work: Callable[[_Session], T], *, declare: str | None = None,
             partition: int | None = None) -> T:
        """``work`` on this thread's session. A cached connection may have died while idle
        (broker restart): then ``work`` runs once more on a new one. Repeating a publish at worst
        duplicates it, and the receiver's inbox drops the duplicate."""
        try:
            with self._session_for(doing, declare=declare, partition=partition) as session:
                return work(session)
        except _StaleConnection:
            with self._session_for(doing, declare=declare, partition=partition) as session:
                return work(session)

    def _current(self) -> _Session | None:
        session: _Session | None = getattr(self._local, "session", None)
        if session is not None and not session.connection.is_open:
            self._drop(session)
            return None
        return session

    @contextmanager
    def _session_for(self, doing: str, *, declare: str | None = None,
                     partition: int | None = None) -> Iterator[_Session]:
        """This thread's session (with the ``declare`` node's topology declared); a broker error
        drops the connection (the next call opens a new one) and surfaces as a guoku error."""
        session = self._current()
        cached = session is not None
        try:
            if session is None:
                session = self._open_session()
            if declare is not None and (declare, partition) not in session.declared:
                self._declare(session.channel, declare, partition)
                session.declared.add((declare, partition))
            yield session
        except _BROKER_ERRORS as exc:
            refused = isinstance(exc, _MESSAGE_REFUSED)
            if session is not None and not refused:
                self._drop(session)
            error = _translate(exc, f"{doing} at {self.where}")
            if cached and not refused and isinstance(error, TransientError):
                raise _StaleConnection(error.message) from exc
            raise error from exc

    def _open_session(self) -> _Session:
        connection = pika.BlockingConnection(self._parameters)
        channel = connection.channel()
        channel.confirm_delivery()
        session = _Session(connection, channel, threading.current_thread())
        with self._lock:
            self._sessions.append(session)
        self._local.session = session
        return session

    def _drop(self, session: _Session) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
        if getattr(self._local, "session", None) is session:
            self._local.session = None
        _close_quietly(session.connection)

    def _declare(self, channel: Any, node: str, partition: int | None = None) -> None:
        t = self.topology
        channel.exchange_declare(t.dlx, exchange_type="direct", durable=True)
        channel.queue_declare(t.dead_queue(node), durable=True,
                              arguments={"x-queue-type": "quorum"})
        channel.queue_bind(t.dead_queue(node), t.dlx, routing_key=t.dead_queue(node))
        # A partition is worked by one consumer at a time, whatever the workers' leases say.
        single = {} if partition is None else {"x-single-active-consumer": True}
        channel.queue_declare(t.queue(node, partition), durable=True, arguments={
            **single,
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": t.dlx,
            "x-dead-letter-routing-key": t.dead_queue(node),
            # Keep a message in its queue until the dead queue confirmed it (RabbitMQ >= 3.10).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })

    def _consume_connected(
        self, node: str, partition: int | None, handler: Handler, stop: threading.Event,
        reconnect: Backoff, retry: Backoff,
    ) -> None:
        connection = pika.BlockingConnection(self._parameters)
        queue = self.topology.queue(node, partition)
        try:
            channel = connection.channel()
            self._declare(channel, node, partition)
            channel.basic_qos(prefetch_count=self.prefetch)
            reconnect.reset()
            log.info("consuming %s", queue)
            for method, _properties, body in channel.consume(
                queue, inactivity_timeout=POLL_SECONDS
            ):
                if stop.is_set():
                    break  # not in hand yet: it goes back to the queue
                if method is None:
                    continue
                settle = self._process(connection, channel, method.delivery_tag, body, handler,
                                       stop, retry)
                if stop.is_set():
                    channel.cancel()  # no new delivery arrives once the one in hand is settled
                    settle()
                    return
                settle()
            channel.cancel()
        finally:
            _close_quietly(connection)

    def _process(
        self, connection: Any, channel: Any, tag: int, body: bytes, handler: Handler,
        stop: threading.Event, retry: Backoff,
    ) -> Callable[[], None]:
        """Run the handler; return how to settle the delivery: ack if it returned, else (after
        a backoff that ``stop`` cuts short) nack back to the queue, which counts the delivery."""
        try:
            handler(body)
        except TransientError as exc:
            delay = retry.next()
            log.warning("delivery %d failed (%s); requeue in %.1f s", tag, exc, delay)
        except Exception:
            delay = retry.next()
            log.exception("handler bug on delivery %d; requeue in %.1f s", tag, delay)
        else:
            retry.reset()
            return partial(channel.basic_ack, tag)
        _sleep(connection, delay, stop)
        return partial(channel.basic_nack, tag, requeue=True)

    def _death(self, headers: dict[str, Any]) -> tuple[str, int]:
        deaths = headers.get("x-death") or [{}]
        first = deaths[0]
        reason = _text(first.get("reason")) or _text(headers.get("x-first-death-reason"))
        queue = _text(first.get("queue")) or _text(headers.get("x-first-death-queue"))
        if reason == "delivery_limit":
            attempts = self.delivery_limit + 1
        else:
            attempts = int(first.get("count") or 1)
        return f"{reason or 'unknown'} in {queue or 'unknown queue'}", attempts


def _partitions(partitions: int | None) -> tuple[int | None, ...]:
    """The partition indexes of a node: ``(None,)`` for its single queue."""
    if partitions is None:
        return (None,)
    assert partitions >= 1
    return tuple(range(partitions))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _sleep(connection: Any, seconds: float, stop: threading.Event) -> None:
    """Wait ``seconds`` (or until ``stop``) while pika keeps answering heartbeats."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        connection.sleep(min(left, POLL_SECONDS))


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except _BROKER_ERRORS as exc:
        log.debug("closing a broken connection: %s", exc)


def _parameters(url: str) -> pika.URLParameters:
    """The URL's settings, with bounded waits unless the URL chose its own."""
    parameters = pika.URLParameters(url)
    query = url.partition("?")[2]
    if "socket_timeout" not in query:
        parameters.socket_timeout = CONNECT_TIMEOUT
    if "blocked_connection_timeout" not in query:
        parameters.blocked_connection_timeout = BLOCKED_TIMEOUT
    if "connection_attempts" not in query:
        parameters.connection_attempts = 1
    return parameters
