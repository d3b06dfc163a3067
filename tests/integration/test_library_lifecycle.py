"""The voucher library end to end on both engines: lifecycle, controls, tenants, refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from guoku.domain.errors import (
    IllegalTransition,
    NotFound,
    PermissionDenied,
    SeparationOfDuties,
    ValidationError,
)
from guoku.store import audit
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.store.tables import audit_log, vouchers
from guoku.workspace import Workspace
from guoku.xml.codec import from_xml
from guoku.xml.samples import sample_document

MANGSHI, RUILI = "533103", "533102"


def _draft(ws: Workspace, county: str, no: str, amount: str = "1500.00") -> VoucherRow:
    doc = sample_document("5201", voucher_no=no, amount=amount, admdiv=county)
    fin = ws.node_for(f"F{county}").library
    return fin.create(f"fin-{county}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")


def _send(ws: Workspace, county: str, row: VoucherRow) -> VoucherRow:
    fin = ws.node_for(f"F{county}").library
    fin.check(f"fin-{county}-review", row.id)
    fin.seal(f"fin-{county}-seal", row.id)
    sent = fin.send(f"fin-{county}-seal", row.id)
    ws.network.pump()
    return sent


def _bank_row(ws: Workspace, county: str, no: str, version: int = 1) -> VoucherRow:
    page = ws.node_for("B-ICBC").library.query(f"icbc-{county}-recv", VoucherQuery(vt_code="5201"))
    return next(r for r in page.items if r.voucher_no == no and r.version == version)


def _audit_count(ws: Workspace, node: str, outcome: str) -> int:
    with ws.nodes[node].engine.connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(audit_log).where(audit_log.c.outcome == outcome)
        ).scalar_one())


def test_a_direct_payment_voucher_travels_from_entry_to_accepted(province: Workspace) -> None:
    row = _draft(province, MANGSHI, "T0001")
    sent = _send(province, MANGSHI, row)
    assert sent.state == "sent"
    received = _bank_row(province, MANGSHI, "T0001")
    assert received.state == "received"
    assert set(from_xml(received.xml).stamps) == {"1", "2"}
    province.node_for("B-ICBC").library.accept(f"icbc-{MANGSHI}-recv", received.id)
    province.network.pump()
    fin = province.node_for(f"F{MANGSHI}").library
    assert fin.get(f"fin-{MANGSHI}-entry", row.id).state == "accepted"
    events = [e["event"] for e in fin.history(f"fin-{MANGSHI}-entry", row.id)]
    assert events == ["create", "check", "seal", "send", "deliver", "accept"]
    for node in province.nodes.values():
        assert audit.verify(node.engine)[1] is None


def test_one_person_can_never_enter_review_and_seal_the_same_voucher(
    province: Workspace,
) -> None:
    fin = province.node_for(f"F{MANGSHI}").library
    admin = province.nodes["finance"]
    from guoku.domain.controls import Post
    from guoku.library.admin import Administration

    clerk = f"fin-{MANGSHI}-entry"
    Administration(admin.engine).grant("admin-finance", clerk, Post.REVIEW)
    Administration(admin.engine).grant("admin-finance", clerk, Post.SEAL)
    row = _draft(province, MANGSHI, "T0002")
    refused_before = _audit_count(province, "finance", "refused")
    with pytest.raises(SeparationOfDuties):
        fin.check(clerk, row.id)
    fin.check(f"fin-{MANGSHI}-review", row.id)
    with pytest.raises(SeparationOfDuties):
        fin.seal(clerk, row.id)
    assert fin.get(clerk, row.id).state == "checked"
    assert _audit_count(province, "finance", "refused") == refused_before + 2


def test_a_clerk_of_one_county_never_sees_another_countys_vouchers(province: Workspace) -> None:
    row = _draft(province, MANGSHI, "T0003")
    fin = province.node_for(f"F{RUILI}").library
    with pytest.raises(NotFound):
        fin.get(f"fin-{RUILI}-entry", row.id)
    assert fin.query(f"fin-{RUILI}-entry").total == 0
    with pytest.raises(PermissionDenied):
        fin.query(f"fin-{RUILI}-entry", all_tenants=True)
    everything = fin.query("admin-finance", all_tenants=True)
    assert any(r.id == row.id for r in everything.items)


def test_an_illegal_move_raises_and_changes_nothing(province: Workspace) -> None:
    row = _draft(province, MANGSHI, "T0004")
    fin = province.node_for(f"F{MANGSHI}").library
    with pytest.raises(IllegalTransition):
        fin.send(f"fin-{MANGSHI}-seal", row.id)
    after = fin.get(f"fin-{MANGSHI}-entry", row.id)
    assert (after.state, after.updated_at, after.xml) == (row.state, row.updated_at, row.xml)


def test_a_returned_voucher_is_revised_as_a_new_version_with_history(
    province: Workspace,
) -> None:
    row = _draft(province, MANGSHI, "T0005")
    _send(province, MANGSHI, row)
    bank = province.node_for("B-ICBC").library
    bank.return_(f"icbc-{MANGSHI}-recv", _bank_row(province, MANGSHI, "T0005").id, "户名不符")
    province.network.pump()
    fin = province.node_for(f"F{MANGSHI}").library
    returned = fin.get(f"fin-{MANGSHI}-entry", row.id)
    assert (returned.state, returned.return_reason) == ("returned", "户名不符")
    v2 = fin.revise(f"fin-{MANGSHI}-entry", row.id, {"PayeeAcctName": "正确户名"})
    assert (v2.version, v2.state, v2.voucher_no) == (2, "draft", "T0005")
    assert fin.get(f"fin-{MANGSHI}-entry", row.id).state == "superseded"
    _send(province, MANGSHI, v2)
    bank.accept(f"icbc-{MANGSHI}-recv", _bank_row(province, MANGSHI, "T0005", 2).id)
    province.network.pump()
    history = fin.history(f"fin-{MANGSHI}-entry", v2.id)
    assert {h["version"] for h in history} == {1, 2}
    assert history[0]["event"] == "create" and history[-1]["to"] == "accepted"


def test_void_and_restore_drops_the_stamps_so_the_voucher_is_sealed_again(
    province: Workspace,
) -> None:
    fin = province.node_for(f"F{MANGSHI}").library
    row = _draft(province, MANGSHI, "T0006")
    fin.check(f"fin-{MANGSHI}-review", row.id)
    sealed = fin.seal(f"fin-{MANGSHI}-seal", row.id)
    assert from_xml(sealed.xml).stamps
    fin.void(f"fin-{MANGSHI}-entry", row.id, "重复录入")
    restored = fin.restore(f"fin-{MANGSHI}-entry", row.id)
    assert restored.state == "draft" and not from_xml(restored.xml).stamps
    assert restored.checked_by is None and restored.sealed_by is None


def test_redelivery_of_the_same_message_is_absorbed(province: Workspace) -> None:
    row = _draft(province, RUILI, "T0007")
    _send(province, RUILI, row)
    bank = province.node_for("B-ICBC")
    from guoku.store.tables import outbox

    with province.node_for(f"F{RUILI}").engine.connect() as conn:
        msg = conn.execute(select(outbox).where(outbox.c.voucher_id == row.id)).one()
    outcome = bank.library.receive(msg.sender_party, msg.receiver_party, msg.message_id,
                                   msg.kind, msg.payload)
    assert outcome == "duplicate"
    with bank.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(vouchers)
                         .where(vouchers.c.voucher_no == "T0007")).scalar_one()
    assert n == 1


def test_a_wrong_amount_is_refused_before_anything_is_written(province: Workspace) -> None:
    doc = sample_document("5201", voucher_no="T0008", amount="100.00", admdiv=MANGSHI)
    header = {**doc.header, "PayAmt": "100.01"}
    fin = province.node_for(f"F{MANGSHI}").library
    with pytest.raises(ValidationError):
        fin.create(f"fin-{MANGSHI}-entry", "5201", header, doc.details, receiver="B-ICBC")
    assert fin.query(f"fin-{MANGSHI}-entry").total == 0


def test_printing_is_counted_and_audited(province: Workspace) -> None:
    row = _draft(province, MANGSHI, "T0009")
    _send(province, MANGSHI, row)
    bank = province.node_for("B-ICBC").library
    received = _bank_row(province, MANGSHI, "T0009")
    assert bank.print_(f"icbc-{MANGSHI}-recv", received.id) == 1
    assert bank.print_(f"icbc-{MANGSHI}-recv", received.id) == 2
    with pytest.raises(PermissionDenied):
        bank.print_(f"icbc-{MANGSHI}-entry", received.id)


def test_a_batch_is_entered_reviewed_sealed_and_sent_by_three_clerks(province: Workspace) -> None:
    fin = province.node_for(f"F{MANGSHI}").library
    entries = []
    for i in range(30):
        doc = sample_document("5201", voucher_no=f"B{i:04d}", amount=f"{10 + i}.00",
                              admdiv=MANGSHI)
        entries.append((doc.header, doc.details))
    rows = fin.create_many(f"fin-{MANGSHI}-entry", "5201", entries, receiver="B-ICBC")
    ids = [r.id for r in rows]
    with pytest.raises(PermissionDenied):  # the entry clerk may not review
        fin.check_many(f"fin-{MANGSHI}-entry", ids)
    fin.check_many(f"fin-{MANGSHI}-review", ids)
    sealed = fin.seal_many(f"fin-{MANGSHI}-seal", ids)
    assert all(set(from_xml(r.xml).stamps) == {"1", "2"} for r in sealed)
    fin.send_many(f"fin-{MANGSHI}-seal", ids)
    province.network.pump()
    bank = province.node_for("B-ICBC").library
    assert bank.query(f"icbc-{MANGSHI}-recv", VoucherQuery(state="received")).total == 30


def test_a_batch_with_one_refused_voucher_changes_nothing(province: Workspace) -> None:
    fin = province.node_for(f"F{MANGSHI}").library
    first = _draft(province, MANGSHI, "C0001")
    second = _draft(province, MANGSHI, "C0002")
    fin.check(f"fin-{MANGSHI}-review", first.id)
    with pytest.raises(IllegalTransition):
        fin.check_many(f"fin-{MANGSHI}-review", [second.id, first.id])
    assert fin.get(f"fin-{MANGSHI}-entry", second.id).state == "draft"


def test_a_batch_is_signed_for_by_the_receiving_clerk_alone_all_or_nothing(
    province: Workspace,
) -> None:
    fin = province.node_for(f"F{MANGSHI}").library
    sent = [_send(province, MANGSHI, _draft(province, MANGSHI, f"A{i:04d}")) for i in range(3)]
    bank = province.node_for("B-ICBC").library
    keys = [(s.vt_code, s.st_year, s.voucher_no, s.version) for s in sent]
    copies = bank.find_many(f"icbc-{MANGSHI}-recv", keys, "in")
    assert [c.voucher_no for c in copies] == [s.voucher_no for s in sent]
    with pytest.raises(NotFound):  # another county's clerk finds none of them
        bank.find_many(f"icbc-{RUILI}-recv", keys, "in")
    with pytest.raises(PermissionDenied):  # the sender may not sign for its own vouchers
        fin.accept_many(f"fin-{MANGSHI}-seal", [s.id for s in sent])
    bank.accept(f"icbc-{MANGSHI}-recv", copies[0].id)
    with pytest.raises(IllegalTransition):  # one already signed for: the batch changes nothing
        bank.accept_many(f"icbc-{MANGSHI}-recv", [c.id for c in copies])
    assert [bank.get(f"icbc-{MANGSHI}-recv", c.id).state for c in copies] == [
        "accepted", "received", "received"]
    accepted = bank.accept_many(f"icbc-{MANGSHI}-recv", [c.id for c in copies[1:]])
    assert [a.state for a in accepted] == ["accepted", "accepted"]
    province.network.pump()
    assert {fin.get(f"fin-{MANGSHI}-entry", s.id).state for s in sent} == {"accepted"}
    for node in province.nodes.values():
        assert audit.verify(node.engine)[1] is None
