"""The small protocols the library speaks to; security and transport adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from guoku.domain.document import VoucherDocument
from guoku.domain.parties import Party
from guoku.store.repository import User

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    """Timestamps are stored as ISO-8601 UTC with microseconds (sortable as text)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Sealer(Protocol):
    """Stamps every seal position of the voucher's type for ``user`` (the sealing clerk)."""

    def seal(self, doc: VoucherDocument, user: User, at: datetime) -> VoucherDocument: ...

    def seal_many(
        self, docs: Sequence[VoucherDocument], user: User, at: datetime
    ) -> list[VoucherDocument]: ...


class SealVerifier(Protocol):
    """Checks every stamp of a received voucher: data, signature, seal, chain, holder, positions.

    Raises a :class:`~guoku.domain.errors.GuokuError` subclass naming the first failure.
    """

    def verify(self, doc: VoucherDocument, sender: Party, at: datetime) -> None: ...
