"""Reconciliation runs and the handling of what they find, in a node's database.

A run records every break as a discrepancy (streamed in chunks: flat memory for any number of
breaks). Each discrepancy then goes open -> investigating -> annotated -> resolved; every step
names its user, needs the reconciliation post, and is audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Final, Protocol

from sqlalchemy import Engine, func, insert, select, update

from guoku.domain.controls import Post
from guoku.domain.discrepancy import NEEDS_NOTE, DiscrepancyStatus, DiscrepancyStep, next_status
from guoku.domain.errors import NotFound, PermissionDenied, ValidationError
from guoku.library.ports import iso, system_clock
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.tables import discrepancies, reconciliation_runs
from guoku.store.uow import UnitOfWork

CHUNK: Final = 5000


class BreakLike(Protocol):
    """What the engine's breaks carry (``guoku.reconcile.breaks.Break``)."""

    @property
    def layer(self) -> int: ...

    @property
    def kind(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: int
    breaks: int
    by_kind: dict[str, int]


def _value(brk: Any, *names: str) -> Any:
    for name in names:
        value = getattr(brk, name, None)
        if value is not None:
            return value
    return None


def _row(brk: Any, run_id: int, at: str, user: str) -> dict[str, Any]:
    kind = _value(brk, "kind")
    return {
        "run_id": run_id, "layer": int(brk.layer), "kind": str(getattr(kind, "value", kind)),
        "admdiv": _value(brk, "admdiv") or "000000",
        "counterparty": _value(brk, "counterparty"), "vt_code": _value(brk, "vt_code"),
        "voucher_no": _value(brk, "voucher_no"), "version": _value(brk, "version"),
        "left_amount_fen": _value(brk, "left_amount_fen", "left_amount"),
        "right_amount_fen": _value(brk, "right_amount_fen", "right_amount"),
        "left_state": _value(brk, "left_state"), "right_state": _value(brk, "right_state"),
        "detail": str(_value(brk, "detail") or ""), "status": DiscrepancyStatus.OPEN.value,
        "found_at": at, "updated_at": at, "updated_by": user,
    }


def record_run(engine: Engine, breaks: Iterable[Any], *, mode: str, layers: str, scope: str,
               user: str, now: datetime | None = None) -> RunSummary:
    """Store a run and its breaks; returns the counts by kind."""
    at = iso(now or system_clock())
    with UnitOfWork(engine) as uow:
        run_id = int(uow.conn.execute(insert(reconciliation_runs).values(
            mode=mode, layers=layers, scope=scope, started_at=at, breaks=0, started_by=user,
        )).inserted_primary_key[0])  # type: ignore[index]
        by_kind: dict[str, int] = {}
        for chunk in _chunks(iter(breaks)):
            rows = [_row(b, run_id, at, user) for b in chunk]
            uow.conn.execute(insert(discrepancies), rows)
            for r in rows:
                by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
        total = sum(by_kind.values())
        uow.conn.execute(update(reconciliation_runs).where(reconciliation_runs.c.id == run_id)
                         .values(finished_at=iso(now or system_clock()), breaks=total))
        audit.append(uow.conn, admdiv="000000", at=at, actor=user, action="reconcile.run",
                     detail={"run": run_id, "mode": mode, "layers": layers, "scope": scope,
                             "breaks": total, "by_kind": by_kind})
        uow.commit()
    return RunSummary(run_id, total, by_kind)


def _chunks(items: Iterator[Any]) -> Iterator[list[Any]]:
    while chunk := list(islice(items, CHUNK)):
        yield chunk


def open_discrepancies(engine: Engine, limit: int = 500) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(discrepancies).where(discrepancies.c.status != DiscrepancyStatus.RESOLVED)
            .order_by(discrepancies.c.id).limit(limit)).all())


def count_open(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(discrepancies).where(
            discrepancies.c.status != DiscrepancyStatus.RESOLVED)).scalar_one())


def handle(engine: Engine, username: str, discrepancy_id: int, step: DiscrepancyStep,
           note: str | None = None, now: datetime | None = None) -> DiscrepancyStatus:
    """One step of the handling workflow, by a user holding the reconciliation post."""
    if step in NEEDS_NOTE and not (note and note.strip()):
        raise ValidationError(f"{step.value} needs a note saying what was found or done")
    at = iso(now or system_clock())
    with UnitOfWork(engine) as uow:
        user = repo.get_user(uow.conn, username)
        if not (user.holds(Post.RECONCILE) or user.holds(Post.ADMIN)):
            raise PermissionDenied(f"user {username} does not hold the reconciliation post")
        row = uow.conn.execute(select(discrepancies).where(
            discrepancies.c.id == discrepancy_id)).first()
        if row is None:
            raise NotFound(f"no discrepancy {discrepancy_id}")
        status = next_status(DiscrepancyStatus(row.status), step)
        notes = json.loads(row.note) if row.note else []
        if note:
            notes.append({"by": username, "at": at, "step": step.value, "note": note.strip()})
        uow.conn.execute(update(discrepancies).where(discrepancies.c.id == discrepancy_id)
                         .values(status=status.value, note=json.dumps(notes, ensure_ascii=False),
                                 updated_at=at, updated_by=username))
        audit.append(uow.conn, admdiv=row.admdiv, at=at, actor=username,
                     post=Post.RECONCILE.value, action=f"discrepancy.{step.value}",
                     state_before=row.status, state_after=status.value,
                     voucher_ref=f"{row.vt_code}/{row.voucher_no}/v{row.version}",
                     detail={"discrepancy": discrepancy_id, "note": note})
        uow.commit()
    return status
