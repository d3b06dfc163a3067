"""The emergency procedure on the embedded transport: sending queues while a node is down and
resumes by itself, exactly once; past its time a voucher goes to paper, is printed with the
emergency mark, registered by the receiver, and when the link is back the electronic record is
complete, booked once, and layer-1 reconciliation is clean."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from guoku.domain.errors import IllegalTransition, PermissionDenied
from guoku.library.paper import FallbackTooEarly, PaperFacts, PaperStatus, registrations
from guoku.ops.fallback import (
    MARK_ASCII,
    FallbackPolicy,
    NotOnPaper,
    overdue,
    parse_duration,
    print_emergency,
    switch,
)
from guoku.reconcile.layer1 import layer1
from guoku.store import audit
from guoku.store.repository import VoucherRow
from guoku.store.tables import audit_log, inbox, ledger_entries, outbox, vouchers
from guoku.workspace import Workspace
from tests.integration.conftest import Clock
from tests.integration.test_middleware_embedded import _send, _state

COUNTY = "533103"
FIN, BANK = f"fin-{COUNTY}", f"icbc-{COUNTY}"


def _count(ws: Workspace, node: str, stmt: object) -> int:
    with ws.nodes[node].engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())  # type: ignore[call-overload]


def _received(ws: Workspace) -> int:
    return _count(ws, "bank-icbc", select(func.count()).select_from(vouchers)
                  .where(vouchers.c.direction == "in"))


def _layer1_breaks(ws: Workspace, clock: Clock) -> list[object]:
    f, b = ws.nodes["finance"], ws.nodes["bank-icbc"]
    return list(layer1(f.engine, f.spec.parties, b.engine, b.spec.parties, now=clock.now))


def _facts(row: VoucherRow, amount_fen: int | None = None) -> PaperFacts:
    return PaperFacts(sender=row.sender_party, vt_code=row.vt_code, st_year=row.st_year,
                      voucher_no=row.voucher_no, version=row.version,
                      amount_fen=row.amount_fen if amount_fen is None else amount_fen,
                      vou_date=row.vou_date)


# --- queue and resume ------------------------------------------------------------------------


def test_while_the_receiver_is_down_sending_queues_and_resumes_by_itself_exactly_once(
    ws: Workspace, clock: Clock,
) -> None:
    ws.network.transport.down.add("bank-icbc")
    sent = [_send(ws, f"DOWN{i:04d}", f"{i + 1}.00") for i in range(12)]
    ws.network.pump()
    assert _received(ws) == 0
    assert {_state(ws, r).state for r in sent} == {"sent"}
    assert len(ws.network.transport.queues["bank-icbc"]) >= 1  # waiting in the receiver's queue
    clock.now += timedelta(minutes=15)  # no receipt in time: indeterminate, queried
    assert ws.nodes["finance"].library.sweep() == 12
    ws.network.pump()
    assert {_state(ws, r).state for r in sent} == {"indeterminate"}

    ws.network.transport.down.discard("bank-icbc")
    ws.network.pump(duplicate=True)  # every envelope twice: still applied once
    assert _received(ws) == 12
    assert {_state(ws, r).state for r in sent} == {"delivered"}
    assert _count(ws, "bank-icbc", select(func.count()).select_from(inbox)
                  .where(inbox.c.kind == "voucher", inbox.c.outcome == "stored")) == 12
    assert _layer1_breaks(ws, clock) == []


def test_while_the_senders_link_is_down_its_outbox_keeps_the_vouchers(
    ws: Workspace, clock: Clock,
) -> None:
    ws.network.transport.down.add("finance")
    sent = [_send(ws, f"LINK{i:04d}") for i in range(5)]
    ws.network.pump()
    unpublished = select(func.count()).select_from(outbox).where(
        outbox.c.published_at.is_(None), outbox.c.kind == "voucher")
    assert _count(ws, "finance", unpublished) == 5
    assert _received(ws) == 0
    ws.network.transport.down.discard("finance")
    ws.network.pump()
    assert _count(ws, "finance", unpublished) == 0
    assert _received(ws) == 5
    assert {_state(ws, r).state for r in sent} == {"delivered"}


# --- the paper round trip --------------------------------------------------------------------


def test_link_down_paper_print_register_link_back_reconciles_with_one_booking(
    ws: Workspace, clock: Clock, tmp_path: Path,
) -> None:
    fin, bank = ws.node_for(f"F{COUNTY}").library, ws.node_for("B-ICBC").library
    policy = FallbackPolicy()
    ws.network.transport.down.add("bank-icbc")
    row = _send(ws, "PAPER0001", "1234.56")
    ws.network.pump()

    clock.now += timedelta(minutes=30)
    assert overdue(fin, policy, clock.now) == []
    with pytest.raises(FallbackTooEarly):
        switch(fin, policy, f"{FIN}-seal", row.id, "工行节点中断")
    with pytest.raises(PermissionDenied):  # the entry clerk does not hold the sending post
        clock.now += timedelta(hours=2)
        switch(fin, policy, f"{FIN}-entry", row.id, "工行节点中断")
    assert [w.row.id for w in overdue(fin, policy, clock.now)] == [row.id]
    paper_row = switch(fin, policy, f"{FIN}-seal", row.id, "工行节点中断，启用纸质凭证")
    assert paper_row.state == "paper"
    with pytest.raises(IllegalTransition):
        switch(fin, policy, f"{FIN}-seal", row.id, "again")

    printed = print_emergency(fin, f"{FIN}-recv", row.id, tmp_path / "paper.pdf")
    pdf = printed.path.read_bytes()
    assert pdf.startswith(b"%PDF") and MARK_ASCII.encode() in pdf
    assert f"{row.ref} PRINT 1".encode() in pdf
    assert printed.print_no == 1 and _state(ws, row).print_count == 1

    record = bank.register_paper(f"{BANK}-recv", _facts(paper_row))
    assert record.status == PaperStatus.REGISTERED.value and record.voucher_id is None
    with pytest.raises(Exception, match="registered already"):
        bank.register_paper(f"{BANK}-recv", _facts(paper_row))
    with pytest.raises(PermissionDenied):  # registering is the receiving post's
        bank.register_paper(f"{BANK}-entry", _facts(paper_row, 1))

    ws.network.transport.down.discard("bank-icbc")
    ws.network.pump(duplicate=True)

    copy = bank.find(f"{BANK}-recv", row.vt_code, row.st_year, row.voucher_no, row.version,
                     "in")
    assert copy.state == "accepted"
    assert _state(ws, row).state == "accepted"
    with ws.nodes["bank-icbc"].engine.connect() as conn:
        [matched] = registrations(conn)
        bookings = conn.execute(select(ledger_entries.c.account).where(
            ledger_entries.c.voucher_ref == row.ref)).scalars().all()
        actions = conn.execute(select(audit_log.c.action, audit_log.c.outcome).where(
            audit_log.c.voucher_ref == row.ref).order_by(audit_log.c.seq)).all()
    assert matched.status == "matched" and matched.voucher_id == copy.id
    assert json.loads(matched.detail or "{}") == {"accepted": True}
    assert bookings == ["advanced"]  # the bank booked it once
    assert [a for a, outcome in actions if outcome == "ok"] == [
        "paper.register", "receive", "accept", "paper.matched"]
    assert [a for a, outcome in actions if outcome == "refused"] == ["accept", "accept"]
    with ws.nodes["finance"].engine.connect() as conn:
        assert conn.execute(select(ledger_entries.c.account).where(
            ledger_entries.c.voucher_ref == row.ref)).scalars().all() == ["direct_paid"]
    events = [e["event"] for e in fin.history(f"{FIN}-entry", row.id)]
    assert events == ["create", "check", "seal", "send", "fallback", "accept"]
    assert _layer1_breaks(ws, clock) == []
    for node in ws.nodes.values():
        assert audit.verify(node.engine)[1] is None


def test_a_paper_voucher_whose_message_was_lost_is_resent_and_matched(
    ws: Workspace, clock: Clock,
) -> None:
    fin, bank = ws.node_for(f"F{COUNTY}").library, ws.node_for("B-ICBC").library
    ws.network.transport.down.add("bank-icbc")
    row = _send(ws, "PAPER0002")
    ws.network.pump()
    ws.network.transport.queues["bank-icbc"].clear()  # the broker lost the message
    clock.now += timedelta(hours=3)
    switch(fin, FallbackPolicy(), f"{FIN}-seal", row.id, "链路中断")
    bank.register_paper(f"{BANK}-recv", _facts(row))
    ws.network.transport.down.discard("bank-icbc")
    ws.network.pump()
    assert _received(ws) == 0 and _state(ws, row).state == "paper"
    clock.now += timedelta(minutes=11)
    assert fin.sweep() == 1  # a paper voucher is still queried: the receiver never got it
    ws.network.pump()
    assert _state(ws, row).state == "accepted"
    assert _received(ws) == 1
    assert _layer1_breaks(ws, clock) == []


def test_a_paper_that_says_another_amount_is_kept_as_a_mismatch_and_not_accepted(
    ws: Workspace, clock: Clock,
) -> None:
    fin, bank = ws.node_for(f"F{COUNTY}").library, ws.node_for("B-ICBC").library
    ws.network.transport.down.add("bank-icbc")
    row = _send(ws, "PAPER0003", "500.00")
    ws.network.pump()
    clock.now += timedelta(hours=2, minutes=1)
    switch(fin, FallbackPolicy(), f"{FIN}-seal", row.id, "节点中断")
    bank.register_paper(f"{BANK}-recv", _facts(row, amount_fen=5000))
    ws.network.transport.down.discard("bank-icbc")
    ws.network.pump()
    copy = bank.find(f"{BANK}-recv", "5201", row.st_year, row.voucher_no, 1, "in")
    assert copy.state == "received"
    with ws.nodes["bank-icbc"].engine.connect() as conn:
        [record] = registrations(conn)
        assert conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one() == 0
    assert record.status == "mismatch"
    assert "amount" in (record.detail or "")


def test_a_paper_registered_after_the_electronic_copy_arrived_is_matched_at_once(
    ws: Workspace,
) -> None:
    bank = ws.node_for("B-ICBC").library
    row = _send(ws, "PAPER0004")
    ws.network.pump()
    record = bank.register_paper(f"{BANK}-recv", _facts(row))
    assert record.status == "matched"
    ws.network.pump()
    assert _state(ws, row).state == "accepted"


def test_only_a_paper_voucher_is_printed_as_an_emergency_voucher(
    ws: Workspace, tmp_path: Path,
) -> None:
    row = _send(ws, "PAPER0005")
    with pytest.raises(NotOnPaper):
        print_emergency(ws.node_for(f"F{COUNTY}").library, f"{FIN}-recv", row.id,
                        tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_the_policy_reads_durations_per_voucher_type(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text('[fallback]\ndefault = "3h"\n[fallback.types]\n5201 = "1h30m"\n')
    policy = FallbackPolicy.load(config)
    assert policy.wait("5201") == timedelta(hours=1, minutes=30)
    assert policy.wait("5108") == timedelta(hours=3)
    assert FallbackPolicy.load(None).wait("5201") == timedelta(hours=2)
    assert parse_duration("45m") == timedelta(minutes=45)
    with pytest.raises(Exception, match="duration"):
        parse_duration("two hours")
