"""Replaying a dead letter (死信重放): one function for the CLI (``guoku mq dead-letters
replay``) and the operator console.

The body goes back through ``publish`` — the broker's queue it died in, or, over a demo
workspace, straight to the node's messenger — and only then is ``replayed_at`` stamped, in one
audited transaction. Replaying twice needs ``force`` (harmless: the inbox deduplicates, but an
operator should know).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select, update

from guoku.domain.errors import Conflict, NotFound
from guoku.library.ports import Clock, iso, system_clock
from guoku.store import audit
from guoku.store.tables import dead_letters
from guoku.store.uow import UnitOfWork

Publish = Callable[[str, bytes, str | None], None]
"""(queue it died in, body, envelope id) -> None; raises when the message was not taken."""


def letter(engine: Engine, letter_id: int) -> Any:
    with engine.connect() as conn:
        row = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).first()
    if row is None:
        raise NotFound(f"no dead letter {letter_id}")
    return row


def replay(engine: Engine, letter_id: int, publish: Publish, operator: str, *,
           force: bool = False, clock: Clock = system_clock) -> str:
    """Publish the stored body again, then stamp and audit the replay; returns its time."""
    row = letter(engine, letter_id)
    if row.replayed_at is not None and not force:
        raise Conflict(f"dead letter {letter_id} was replayed at {row.replayed_at}; "
                       "use --force to replay it again")
    publish(row.queue, row.body, row.envelope_id)
    at = iso(clock())
    with UnitOfWork(engine) as uow:
        uow.conn.execute(update(dead_letters).where(dead_letters.c.id == letter_id)
                         .values(replayed_at=at))
        audit.append(uow.conn, admdiv="000000", at=at, actor=operator, action="mq.replay",
                     detail={"dead_letter": letter_id, "envelope": row.envelope_id,
                             "queue": row.queue})
        uow.commit()
    return at
