"""The contract between a node's messaging logic and the transports that carry its envelopes.

A transport moves opaque envelope bytes between node queues. Exactly-once is built on top of an
at-least-once transport: the sender's outbox (published only after commit, marked only after the
broker confirmed), and the receiver's inbox (a redelivered item is acknowledged and ignored).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from guoku.domain.errors import GuokuError


class TransientError(GuokuError):
    """A failure that may pass (database or broker unavailable): retry with backoff, then
    dead-letter. Everything else about a message is permanent and answered with an error
    receipt instead."""

    code = "TRANSIENT"


@dataclass(frozen=True, slots=True)
class OutgoingEnvelope:
    envelope_id: str
    receiver_node: str
    body: bytes
    outbox_ids: tuple[int, ...]


Handler = Callable[[bytes], None]
"""Processes one envelope completely (commits) or raises TransientError; then it is acked."""


class Transport(Protocol):
    def publish(self, receiver_node: str, envelope_id: str, body: bytes) -> None:
        """Hand ``body`` durably to ``receiver_node``'s queue; return only once confirmed."""
        ...

    def consume(self, node: str, handler: Handler, stop: threading.Event) -> None:
        """Feed ``node``'s queue to ``handler`` one envelope at a time until ``stop`` is set.

        Ack after the handler returns; on TransientError requeue with backoff and, after the
        delivery limit, dead-letter it.
        """
        ...

    def close(self) -> None: ...
