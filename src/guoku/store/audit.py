"""The audit log in the node database: append inside the caller's transaction, verify the chain."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

from sqlalchemy import Connection, Engine, Insert, event, insert, select, update

from guoku.domain.audit import AuditEntry, ChainBreak, StoredEntry, entry_hash, verify_chain
from guoku.security.crypto import sm3
from guoku.store.tables import audit_head, audit_log

VERIFY_BATCH = 5000


Head = tuple[int, str]
"""(seq, hash) of the last entry."""


class Batch:
    """Several appends in one transaction that read the head once and write it once.

    The first append locks and reads the head row; later ones chain on the head kept here, and
    :func:`batched` writes it back when its block ends or the transaction commits. The entries
    themselves are inserted then too, in one multi-row statement: nothing reads the log inside
    the transaction that writes it. A savepoint rolled back on the connection — by anyone —
    rolls the kept head and the rows kept since it back with it (savepoints nest: each one
    pushes what it started with), so the chain is exactly what one append at a time would have
    made.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._head: Head | None = None
        self._stored: Head | None = None
        self._savepoints: list[tuple[Head | None, Head | None, int]] = []
        self._rows: list[tuple[Insert, dict[str, Any]]] = []

    def defer(self, statement: Insert, row: dict[str, Any]) -> None:
        self._rows.append((statement, row))

    def head(self) -> Head:
        if self._head is None:
            self._head = _lock_head(self.conn)
            self._stored = self._head
        return self._head

    def advance(self, head: Head) -> None:
        self._head = head

    def flush(self) -> None:
        self._insert_rows()
        if self._head is not None and self._head != self._stored:
            _write_head(self.conn, self._head)
            self._stored = self._head

    def _insert_rows(self) -> None:
        """Each table's rows in the order they came, one executemany per table and key set."""
        runs: dict[tuple[int, frozenset[str]], tuple[Insert, list[dict[str, Any]]]] = {}
        for statement, row in self._rows:
            runs.setdefault((id(statement), frozenset(row)), (statement, []))[1].append(row)
        self._rows = []
        for statement, rows in runs.values():
            self.conn.execute(statement, rows)

    def _savepoint(self, conn: Connection, name: str | None) -> None:
        self._savepoints.append((self._head, self._stored, len(self._rows)))

    def _release(self, conn: Connection, name: str, context: object) -> None:
        if self._savepoints:
            self._savepoints.pop()

    def _rollback(self, conn: Connection, name: str, context: object) -> None:
        # a head first read inside the savepoint is forgotten (its row lock went with it); a
        # savepoint older than the batch takes all the batch kept: read the head again
        if self._savepoints:
            self._head, self._stored, kept = self._savepoints.pop()
            del self._rows[kept:]
        else:
            self._forget(conn)

    def _commit(self, conn: Connection) -> None:
        """A commit inside the block writes the head first; the next transaction reads anew."""
        self.flush()
        self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        self._head = self._stored = None
        self._savepoints.clear()
        self._rows.clear()

    @property
    def listeners(self) -> tuple[tuple[str, Callable[..., None]], ...]:
        return (("savepoint", self._savepoint), ("release_savepoint", self._release),
                ("rollback_savepoint", self._rollback), ("commit", self._commit),
                ("rollback", self._forget))


_batch: ContextVar[Batch | None] = ContextVar("guoku_audit_batch", default=None)


@contextmanager
def batched(conn: Connection) -> Iterator[Batch]:
    """Within the block, :func:`append` on ``conn`` uses one :class:`Batch`; the head is written
    when the block ends normally or the transaction commits (an exception leaves the caller to
    roll back)."""
    batch = Batch(conn)
    listeners = batch.listeners
    for name, listener in listeners:
        event.listen(conn, name, listener)
    token = _batch.set(batch)
    try:
        yield batch
        batch.flush()
    finally:
        _batch.reset(token)
        for name, listener in listeners:
            event.remove(conn, name, listener)


_LOCK_HEAD: Final = (select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                     .with_for_update())
_WRITE_HEAD: Final = update(audit_head).where(audit_head.c.id == 1)
_INSERT_ENTRY: Final = insert(audit_log)
"""Built once, executed with parameters (SQLAlchemy then skips building and keying them)."""


def _lock_head(conn: Connection) -> Head:
    head = conn.execute(_LOCK_HEAD).one()
    return int(head.seq), str(head.hash)


def _write_head(conn: Connection, head: Head) -> None:
    conn.execute(_WRITE_HEAD, {"seq": head[0], "hash": head[1]})


def append(
    conn: Connection,
    *,
    admdiv: str,
    at: str,
    actor: str,
    action: str,
    outcome: str = "ok",
    post: str | None = None,
    voucher_ref: str | None = None,
    state_before: str | None = None,
    state_after: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry; the head row is locked first so concurrent writers form one line
    (inside :func:`batched`, once per batch)."""
    batch = _current(conn)
    seq, prev_hash = batch.head() if batch is not None else _lock_head(conn)
    entry = AuditEntry(
        seq=seq + 1,
        admdiv=admdiv,
        at=at,
        actor=actor,
        post=post,
        action=action,
        voucher_ref=voucher_ref,
        state_before=state_before,
        state_after=state_after,
        outcome=outcome,
        detail=json.dumps(dict(detail or {}), sort_keys=True, ensure_ascii=False),
    )
    digest = entry_hash(entry, prev_hash, sm3)
    row = {
        "seq": entry.seq, "admdiv": admdiv, "at": at, "actor": actor, "post": post,
        "action": action, "voucher_ref": voucher_ref, "state_before": state_before,
        "state_after": state_after, "outcome": outcome, "detail": entry.detail,
        "prev_hash": prev_hash, "hash": digest,
    }
    if batch is not None:
        batch.defer(_INSERT_ENTRY, row)
        batch.advance((entry.seq, digest))
    else:
        conn.execute(_INSERT_ENTRY, row)
        _write_head(conn, (entry.seq, digest))
    return entry


def _current(conn: Connection) -> Batch | None:
    batch = _batch.get()
    return batch if batch is not None and batch.conn is conn else None


def _rows(engine: Engine) -> Iterator[StoredEntry]:
    """Stream the log in seq order in batches: flat memory for any log length."""
    after = -1
    while True:
        with engine.connect() as conn:
            batch = conn.execute(
                select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq)
                .limit(VERIFY_BATCH)
            ).all()
        if not batch:
            return
        for r in batch:
            yield StoredEntry(
                AuditEntry(
                    seq=int(r.seq), admdiv=r.admdiv, at=r.at, actor=r.actor, post=r.post,
                    action=r.action, voucher_ref=r.voucher_ref, state_before=r.state_before,
                    state_after=r.state_after, outcome=r.outcome, detail=r.detail,
                ),
                r.prev_hash,
                r.hash,
            )
        after = int(batch[-1].seq)


def verify(engine: Engine) -> tuple[int, ChainBreak | None]:
    """Return (entries checked, first break or None)."""
    with engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    counted = 0

    def counting() -> Iterator[StoredEntry]:
        nonlocal counted
        for row in _rows(engine):
            counted += 1
            yield row

    found = verify_chain(counting(), (int(head.seq), head.hash), sm3)
    return counted, found
