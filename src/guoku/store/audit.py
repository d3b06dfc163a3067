"""The audit log in the node database: append inside the caller's transaction, verify the chain."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from guoku.domain.audit import AuditEntry, ChainBreak, StoredEntry, entry_hash, verify_chain
from guoku.security.crypto import sm3
from guoku.store.tables import audit_head, audit_log

VERIFY_BATCH = 5000


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
    """Append one entry; the head row is locked first so concurrent writers form one line."""
    head = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    entry = AuditEntry(
        seq=int(head.seq) + 1,
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
    digest = entry_hash(entry, head.hash, sm3)
    conn.execute(
        insert(audit_log).values(
            seq=entry.seq, admdiv=admdiv, at=at, actor=actor, post=post, action=action,
            voucher_ref=voucher_ref, state_before=state_before, state_after=state_after,
            outcome=outcome, detail=entry.detail, prev_hash=head.hash, hash=digest,
        )
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=entry.seq, hash=digest))
    return entry


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
