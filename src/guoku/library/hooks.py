"""Business hooks: what a party's business system books when its vouchers move.

The library calls :meth:`Hooks.on_event` for every recorded event of every voucher, inside the
transaction of that event — so a quota hold that is refused rolls the send back, and a booking
can never exist without the voucher event it points at (or the reverse).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection

from guoku.store.repository import VoucherRow


class Hooks(Protocol):
    def on_event(self, conn: Connection, row: VoucherRow, event: str, state_after: str,
                 at: str) -> None:
        """``row`` as it was before ``event``; ``state_after`` is where it is now."""
        ...


class NoHooks:
    def on_event(self, conn: Connection, row: VoucherRow, event: str, state_after: str,
                 at: str) -> None:
        return None


class AllHooks:
    """Several business systems listening on one node, in order."""

    def __init__(self, hooks: Sequence[Hooks]) -> None:
        self.hooks = tuple(hooks)

    def on_event(self, conn: Connection, row: VoucherRow, event: str, state_after: str,
                 at: str) -> None:
        for hook in self.hooks:
            hook.on_event(conn, row, event, state_after, at)
