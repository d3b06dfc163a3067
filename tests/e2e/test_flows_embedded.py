"""Every business flow and failure branch end to end on the embedded deployment: sealed,
encrypted vouchers between the four parties' nodes, quotas and ledgers checked at the end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from guoku import demo_flows as world
from guoku.bank.paying import CorePayer
from guoku.books.quota_hooks import payment_key
from guoku.domain.controls import Post
from guoku.domain.errors import PermissionDenied, SeparationOfDuties
from guoku.domain.money import Amount
from guoku.domain.quota import QuotaExceeded, QuotaKey
from guoku.flows import allocation, authorized_payment, day_close, direct_payment, refunds
from guoku.flows.desk import Desk, received, state_of
from guoku.flows.model import DIRECT, Payment, payment_details, payment_header
from guoku.library.admin import Administration
from guoku.store import quota
from guoku.store.tables import ledger_entries, vouchers
from guoku.workspace import EmbeddedProvince, Workspace, create
from guoku.xml.codec import from_xml

C = world.COUNTY
FIN, UNIT = Desk(f"F{C}", C, "fin"), Desk("U533103001", C, "unit")
BANK, PBOC = Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")
DAY = datetime.now(UTC).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = create(tmp_path_factory.mktemp("flows") / "ws", datetime.now(UTC))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def province(ws: Workspace) -> EmbeddedProvince:
    province = EmbeddedProvince(ws)
    world.register_accounts(province)
    return province


@pytest.fixture
def bank() -> CorePayer:
    return CorePayer(world._core(), world.CLEARING)


def payment(no: str, amount: str, payee: world.Payee = world.SUPPLIER) -> Payment:
    return Payment(C, no, DAY, "U533103001", "芒市教育体育局", payee, Amount.parse(amount),
                   "购买教学用品", world._funding())


def _ledger(ws: Workspace, node: str, account: str) -> int:
    with ws.nodes[node].engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(ledger_entries.c.amount_fen), 0))
                                .where(ledger_entries.c.account == account)).scalar_one())


def test_a_quota_is_issued_and_paid_within_then_refunded(
    ws: Workspace, province: EmbeddedProvince, bank: CorePayer,
) -> None:
    issued = authorized_payment.issue_quota(province, payment("E0001", "1000.00"), FIN, BANK,
                                            PBOC)
    assert issued.completed and set(issued.vouchers) == {"5102", "5106", "5105", "9106"}
    paid = authorized_payment.pay(province, payment("A0001", "600.00"), UNIT, BANK, PBOC, FIN,
                                  bank)
    assert paid.completed and state_of(province, UNIT, paid.first) == "accepted"
    key = payment_key(from_xml(paid.first.xml))
    with ws.nodes["finance"].engine.connect() as conn:
        assert quota.balance(conn, key).available == Amount.parse("400.00")
    with pytest.raises(QuotaExceeded):
        authorized_payment.pay(province, payment("A0002", "400.01"), UNIT, BANK, PBOC, FIN,
                               bank)
    refunds.run(province, received(province, BANK, paid.first), payment("A0001", "600.00"),
                BANK, PBOC, FIN, "退回")
    with ws.nodes["finance"].engine.connect() as conn:
        assert quota.balance(conn, key).available == Amount.parse("1000.00")
    assert _ledger(ws, "bank-icbc", "advanced") >= 60000
    assert _ledger(ws, "pboc", "refund_received") >= 60000


def test_a_payment_the_bank_cannot_make_comes_back_and_releases_its_quota(
    ws: Workspace, province: EmbeddedProvince, bank: CorePayer,
) -> None:
    authorized_payment.issue_quota(province, payment("E0002", "500.00"), FIN, BANK, PBOC)
    key = QuotaKey(C, int(DAY[:4]), "U533103001", "1", "2050202", int(DAY[4:6]))
    with ws.nodes["finance"].engine.connect() as conn:
        before = quota.balance(conn, key).available
    failed = authorized_payment.pay(province, payment("A0003", "300.00", world.CLOSED), UNIT,
                                    BANK, PBOC, FIN, bank)
    assert not failed.completed and failed.reason == "收款账户已销户"
    returned = province.library(UNIT.party).get(UNIT.entry, failed.first.id)
    assert (returned.state, returned.return_reason) == ("returned", "收款账户已销户")
    with ws.nodes["finance"].engine.connect() as conn:
        assert quota.balance(conn, key).available == before


@pytest.mark.parametrize(("payee", "amount", "reason"), [
    (world.CLOSED, "10.00", "收款账户已销户"),
    (world.RENAMED, "10.00", "收款人户名与账户名称不符"),
    (world.SCHOOL, "999999.00", "清算（垫付）账户余额不足"),
], ids=["closed-account", "name-mismatch", "insufficient-funds"])
def test_a_direct_payment_that_fails_at_the_bank_is_returned_with_the_reason(
    province: EmbeddedProvince, bank: CorePayer, payee: world.Payee, amount: str,
    reason: str,
) -> None:
    no = f"D-{payee.account_no[-4:]}-{amount.split('.')[0]}"
    result = direct_payment.run(province, payment(no, amount, payee), FIN, BANK, PBOC, bank)
    assert not result.paid and result.reason == reason
    assert state_of(province, FIN, result.payment) == "returned"


def test_a_direct_payment_runs_every_step_and_its_refund_too(
    ws: Workspace, province: EmbeddedProvince, bank: CorePayer,
) -> None:
    result = direct_payment.run(province, payment("D0001", "2500.00", world.SCHOOL), FIN,
                                BANK, PBOC, bank)
    assert result.paid
    assert set(result.vouchers) == {"5201", "5108", "9201", "2301", "9108", "9301:F533103",
                                    "9301:B-ICBC", "2208"}
    for row in result.vouchers.values():
        sender = FIN if row.vt_code in ("5201", "5108") else BANK if row.vt_code in (
            "9201", "2301", "2208") else PBOC
        assert state_of(province, sender, row) == "accepted"
    refund = refunds.run(province, received(province, BANK, result.payment),
                         payment("D0001", "2500.00", world.SCHOOL), BANK, PBOC, FIN, "退回")
    assert "2203" in refund.vouchers
    assert _ledger(ws, "finance", "direct_refunded") >= 250000


def test_an_allocation_is_paid_one_unpayable_is_voided_and_a_refund_reallocates(
    province: EmbeddedProvince,
) -> None:
    treasury = CorePayer(world._treasury(), world.TREASURY)
    paid = allocation.run(province, payment("S0001", "9000.00", world.SPECIAL), FIN, PBOC,
                          treasury)
    assert paid.paid and state_of(province, FIN, paid.allocation) == "accepted"
    failed = allocation.run(province, payment("S0002", "9.00", world.CLOSED), FIN, PBOC,
                            treasury)
    assert not failed.paid and state_of(province, FIN, failed.allocation) == "void"
    refund_voucher, again = allocation.refund(province, paid, payment("S0001", "9000.00",
                                                                      world.SPECIAL),
                                              FIN, PBOC, treasury, "专户信息变更")
    assert refund_voucher.vt_code == "3208" and again.paid


def test_day_close_reports_are_checked_by_finance(
    ws: Workspace, province: EmbeddedProvince, bank: CorePayer,
) -> None:
    direct_payment.run(province, payment("D0100", "100.00", world.SCHOOL), FIN, BANK, PBOC,
                       bank)
    result = day_close.close_day(province, BANK, FIN, DAY)
    assert result.reports and not result.returned
    assert result.accepted == len(result.reports)
    with ws.nodes["finance"].engine.connect() as conn:
        reports = conn.execute(select(vouchers.c.vt_code).where(
            vouchers.c.vt_code.in_(["2205", "2206", "2207"]))).scalars().all()
    assert "2206" in reports


def test_one_user_can_never_carry_a_payment_alone(province: EmbeddedProvince) -> None:
    lib = province.library(FIN.party)
    p = payment("D0200", "10.00", world.SCHOOL)
    row = lib.create(FIN.entry, "5201", payment_header(p, "5201", DIRECT), payment_details(p),
                     receiver=BANK.party)
    for clerk in (FIN.entry, FIN.sealer):
        with pytest.raises(PermissionDenied):
            lib.check(clerk, row.id)
    lib.check(FIN.review, row.id)
    with pytest.raises(PermissionDenied):
        lib.seal(FIN.review, row.id)
    # even given the seal post, the clerk who entered it may not seal it
    Administration(lib.engine).grant("admin-finance", FIN.entry, Post.SEAL)
    with pytest.raises(SeparationOfDuties):
        lib.seal(FIN.entry, row.id)
    assert lib.get(FIN.entry, row.id).state == "checked"


def test_the_reviewer_sees_the_payee_check_and_the_bank_stops_an_unknown_payee(
    province: EmbeddedProvince, bank: CorePayer,
) -> None:
    lib = province.library(FIN.party)
    p = payment("D0300", "30.00", world.UNKNOWN)
    row = lib.create(FIN.entry, "5201", payment_header(p, "5201", DIRECT), payment_details(p),
                     receiver=BANK.party)
    check = lib.payee_check(FIN.review, row.id)
    assert check is not None and not check.account_found and not check.passed
    lib.void(FIN.entry, row.id, "收款账户未登记")
    result = direct_payment.run(province, payment("D0301", "30.00", world.UNKNOWN), FIN, BANK,
                                PBOC, bank)
    assert not result.paid and "账户不存在" in (result.reason or "")
    known = lib.create(FIN.entry, "5201", payment_header(payment("D0302", "1.00",
                                                                 world.SCHOOL), "5201", DIRECT),
                       payment_details(payment("D0302", "1.00", world.SCHOOL)),
                       receiver=BANK.party)
    assert (check := lib.payee_check(FIN.review, known.id)) is not None and check.passed


def test_a_payment_without_an_answer_keeps_its_quota_until_a_definite_outcome(
    ws: Workspace, province: EmbeddedProvince,
) -> None:
    from datetime import timedelta

    from guoku.flows.desk import issue

    authorized_payment.issue_quota(province, payment("E0009", "100.00"), FIN, BANK, PBOC)
    key = QuotaKey(C, int(DAY[:4]), "U533103001", "1", "2050202", int(DAY[4:6]))
    p = payment("A0900", "70.00")
    sent = issue(province, UNIT, "8202", payment_header(p, "8202", "12"), payment_details(p),
                 receiver=BANK.party)
    finance = ws.network.messengers["finance"]
    for envelope in finance.pending():  # published, then lost on the way
        finance.mark_published(envelope)
    with ws.nodes["finance"].engine.connect() as conn:
        held = quota.balance(conn, key)
    ws.nodes["finance"].library.inbound.sweep(datetime.now(UTC) + timedelta(minutes=11))
    assert state_of(province, UNIT, sent) == "indeterminate"
    with ws.nodes["finance"].engine.connect() as conn:
        assert quota.balance(conn, key) == held  # still held: the money may have gone out
    province.settle()  # the status query finds it never arrived: sent again, delivered
    assert state_of(province, UNIT, sent) == "delivered"
    province.library(BANK.party).return_(BANK.receiver, received(province, BANK, sent).id,
                                         "收款人信息不全")
    province.settle()
    with ws.nodes["finance"].engine.connect() as conn:
        assert quota.balance(conn, key).held == held.held - Amount.parse("70.00")


def test_a_returned_payment_voided_and_restored_is_corrected_as_a_new_version(
    ws: Workspace, province: EmbeddedProvince, bank: CorePayer,
) -> None:
    authorized_payment.issue_quota(province, payment("E0010", "50.00"), FIN, BANK, PBOC)
    failed = authorized_payment.pay(province, payment("A1000", "40.00", world.CLOSED), UNIT,
                                    BANK, PBOC, FIN, bank)
    lib = province.library(UNIT.party)
    lib.void(UNIT.entry, failed.first.id, "收款账户已销户")
    restored = lib.restore(UNIT.entry, failed.first.id)
    assert restored.state == "returned"  # the bank saw this version: corrected as a new one
    v2 = lib.revise(UNIT.entry, restored.id, {"PayeeAcctNo": world.SUPPLIER.account_no,
                                              "PayeeAcctName": world.SUPPLIER.name})
    lib.check(UNIT.review, v2.id)
    lib.seal(UNIT.sealer, v2.id)
    assert lib.send(UNIT.sealer, v2.id).state == "sent"  # a new hold under the new version
    province.settle()


def test_statements_agree_and_a_dropped_message_makes_them_differ(
    ws: Workspace, province: EmbeddedProvince,
) -> None:
    from guoku.flows import reconciliation
    from guoku.flows.desk import issue

    province.settle()  # nothing in flight from earlier tests
    first = reconciliation.exchange(province, FIN, BANK, DAY)
    assert first.agrees, [line for line in first.lines if not line.agrees]
    p = payment("D0900", "9.00", world.SCHOOL)
    issue(province, FIN, "5201", payment_header(p, "5201", DIRECT), payment_details(p),
          receiver=BANK.party)
    finance = ws.network.messengers["finance"]
    for envelope in finance.pending():  # the message is lost on the way
        finance.mark_published(envelope)
    result = reconciliation.exchange(province, FIN, BANK, DAY)
    assert not result.agrees
    (differs,) = [line for line in result.lines if not line.agrees]
    assert (differs.vt_code, differs.direction) == ("5201", "sent")
    assert differs.ours is not None
    assert differs.ours.count == (differs.theirs.count if differs.theirs else 0) + 1


def test_a_batch_of_direct_payments_pays_each_and_returns_the_unpayable_alone(
    ws: Workspace, province: EmbeddedProvince, bank: CorePayer,
) -> None:
    batch = [payment(f"DB{i:03d}", f"{100 + i}.00", world.SCHOOL) for i in range(6)]
    batch[2] = payment("DB902", "7.00", world.CLOSED)
    booked = _ledger(ws, "finance", "direct_paid")
    results = direct_payment.run_many(province, batch, FIN, BANK, PBOC, bank)
    assert [r.paid for r in results] == [True, True, False, True, True, True]
    assert results[2].reason == "收款账户已销户" and set(results[2].vouchers) == {"5201", "5108"}
    assert state_of(province, FIN, results[2].payment) == "returned"
    for result in (r for r in results if r.paid):
        assert len(result.vouchers) == 8
        assert {state_of(province, FIN if row.vt_code in ("5201", "5108") else
                         BANK if row.vt_code in ("9201", "2301", "2208") else PBOC, row)
                for row in result.vouchers.values()} == {"accepted"}
    paid = sum(p.amount.fen for p, r in zip(batch, results, strict=True)
               if r.paid)
    assert _ledger(ws, "finance", "direct_paid") - booked == paid
