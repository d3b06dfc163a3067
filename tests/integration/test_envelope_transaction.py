"""One envelope, one transaction (ADR 0016): a refused item is refused alone, the others of the
same envelope still apply; a database failure in the middle leaves nothing of the envelope
applied, and the same envelope delivered again applies it whole. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError

from guoku.library import paper
from guoku.store import audit
from guoku.store.repository import VoucherRow
from guoku.store.tables import audit_head, audit_log, inbox, outbox, vouchers
from guoku.store.uow import UnitOfWork
from guoku.transport.ports import TransientError
from guoku.workspace import Workspace
from guoku.xml.samples import sample_document

COUNTY = "533103"
FINANCE = f"F{COUNTY}"


def _send(ws: Workspace, no: str) -> VoucherRow:
    fin = ws.node_for(FINANCE).library
    doc = sample_document("5201", voucher_no=no, amount="42.00", admdiv=COUNTY)
    row = fin.create(f"fin-{COUNTY}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
    fin.check(f"fin-{COUNTY}-review", row.id)
    fin.seal(f"fin-{COUNTY}-seal", row.id)
    return fin.send(f"fin-{COUNTY}-seal", row.id)


def _one_envelope(ws: Workspace) -> bytes:
    """What finance publishes now, as one envelope, marked published (the broker holds it)."""
    messenger = ws.network.messengers["finance"]
    (envelope,) = messenger.pending()
    messenger.mark_published(envelope)
    return envelope.body


def _state(ws: Workspace, row: VoucherRow) -> VoucherRow:
    return ws.node_for(FINANCE).library.get(f"fin-{COUNTY}-entry", row.id)


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return int(row.seq), str(row.hash)


def test_refused_items_inside_an_envelope_do_not_stop_the_others(province: Workspace) -> None:
    ws = province
    first, forged, twice, last = (_send(ws, f"E000{i}") for i in range(1, 5))
    with ws.nodes["finance"].engine.begin() as conn:
        payload = conn.execute(select(outbox.c.payload)
                               .where(outbox.c.voucher_id == first.id)).scalar_one()
        # a seal that no longer matches its voucher, and the first voucher a second time
        # under another message id (the voucher's unique key refuses it inside its savepoint)
        conn.execute(update(outbox).where(outbox.c.voucher_id == forged.id)
                     .values(payload=payload.replace(b">E0001<", b">E0009<")))
        conn.execute(update(outbox).where(outbox.c.voucher_id == twice.id)
                     .values(payload=payload))
    body = _one_envelope(ws)
    bank = ws.nodes["bank-icbc"].engine
    before = _head(bank)[0]

    ws.network.messengers["bank-icbc"].handle(body)

    with bank.connect() as conn:
        outcomes = sorted(conn.execute(select(inbox.c.outcome)).scalars())
        stored = sorted(conn.execute(select(vouchers.c.voucher_no)).scalars())
    assert outcomes == ["refused", "refused", "stored", "stored"]
    assert stored == ["E0001", "E0004"]
    # per stored voucher one receive entry, per refused item one refusal entry; a chain intact
    assert _head(bank)[0] == before + 4
    assert audit.verify(bank)[1] is None

    ws.network.pump()  # delivered receipts and error receipts travel back
    assert _state(ws, first).state == "delivered"
    assert _state(ws, last).state == "delivered"
    assert _state(ws, forged).state == "failed"
    failed_twice = _state(ws, twice)
    assert failed_twice.state == "failed"
    assert "received already" in (failed_twice.return_reason or "")
    assert audit.verify(ws.nodes["finance"].engine)[1] is None


def test_a_database_failure_mid_envelope_applies_nothing_and_the_envelope_redelivers(
    province: Workspace, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = province
    rows = [_send(ws, f"F000{i}") for i in range(1, 4)]
    body = _one_envelope(ws)
    bank = ws.nodes["bank-icbc"].engine
    head = _head(bank)
    arrivals = 0
    real = paper.on_arrival

    def fails_on_the_second(uow: Any, lib: Any, row: VoucherRow) -> None:
        nonlocal arrivals
        arrivals += 1
        if arrivals == 2:  # the database goes away under the second item
            if uow.conn.dialect.name == "postgresql":
                uow.conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
            raise OperationalError("receive", {}, Exception("the database went away"))
        real(uow, lib, row)

    monkeypatch.setattr(paper, "on_arrival", fails_on_the_second)
    with pytest.raises(TransientError):
        ws.network.messengers["bank-icbc"].handle(body)
    assert arrivals == 2
    assert (_count(bank, vouchers), _count(bank, inbox), _count(bank, outbox)) == (0, 0, 0)
    assert _head(bank) == head
    assert {_state(ws, r).state for r in rows} == {"sent"}

    monkeypatch.setattr(paper, "on_arrival", real)
    ws.network.messengers["bank-icbc"].handle(body)  # the broker delivers it again
    assert (_count(bank, vouchers), _count(bank, inbox)) == (3, 3)
    assert _head(bank)[0] == head[0] + 3
    assert audit.verify(bank)[1] is None
    ws.network.pump()
    assert {_state(ws, r).state for r in rows} == {"delivered"}


def test_the_audit_batch_follows_savepoints_rolled_back_inside_it(province: Workspace) -> None:
    """Handlers may open savepoints of their own (paper matching does): what one rolls back
    leaves the batch's head, and the chain written, as one append at a time would."""
    bank = province.nodes["bank-icbc"].engine
    seq = _head(bank)[0]

    def entry(conn: Any, action: str) -> None:
        audit.append(conn, admdiv=COUNTY, at="2026-01-01T00:00:00.000000Z", actor="test",
                     action=action)

    with UnitOfWork(bank) as uow, audit.batched(uow.conn):
        conn = uow.conn
        first = conn.begin_nested()  # the head is first read in here, then rolled back
        entry(conn, "gone-1")
        first.rollback()
        entry(conn, "kept-1")
        outer = conn.begin_nested()
        entry(conn, "gone-2")
        with conn.begin_nested():
            entry(conn, "gone-3")  # released into ``outer``, then rolled back with it
        outer.rollback()
        with conn.begin_nested():
            entry(conn, "kept-2")
        entry(conn, "kept-3")
        uow.commit()

    with bank.connect() as conn:
        actions = list(conn.execute(select(audit_log.c.action).where(audit_log.c.seq > seq)
                                    .order_by(audit_log.c.seq)).scalars())
    assert actions == ["kept-1", "kept-2", "kept-3"]
    assert _head(bank)[0] == seq + 3
    assert audit.verify(bank)[1] is None
