"""The business flows of the demo: every flow, every refund, and one failure of each kind.

In Mangshi (533103): quota issue; a unit's authorized payment and its refund; a payment over
the remaining quota (refused); a direct payment and its refund; payments the bank cannot make —
closed account, name mismatch, insufficient funds on the clearing account — each returned with
the bank's reason; an allocation, one the treasury cannot pay (returned, voided), and an
allocation refund that re-enters the flow. Then day close: the bank's daily reports, checked
by finance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from guoku.bank.core import SimulatedCoreBanking
from guoku.bank.paying import CorePayer
from guoku.domain.errors import GuokuError
from guoku.domain.money import Amount
from guoku.domain.quota import QuotaExceeded
from guoku.flows import (
    allocation,
    authorized_payment,
    day_close,
    direct_payment,
    reconciliation,
    refunds,
)
from guoku.flows.desk import Desk, Province, received
from guoku.flows.model import Funding, Payee, Payment
from guoku.store.accounts import AccountDirectory
from guoku.workspace import EmbeddedProvince, Workspace

COUNTY = "533103"
CLEARING = "1502010019300088888"
TREASURY = "2531030000000000001"
SUPPLIER = Payee("2502010009200012345", "芒市文具有限公司", "中国工商银行芒市支行")
SCHOOL = Payee("2502010009200067890", "芒市第一中学", "中国工商银行芒市支行")
CLOSED = Payee("2502010009200011111", "芒市已注销商贸有限公司", "中国工商银行芒市支行")
RENAMED = Payee("2502010009200022222", "芒市印刷厂", "中国工商银行芒市支行")
SPECIAL = Payee("6228480000000012345", "芒市扶贫专户", "中国农业银行芒市支行")
UNKNOWN = Payee("2502010009200099999", "芒市新开商行", "中国工商银行芒市支行")
"""Not in any account directory: the automatic payee check stops it at the bank."""
DIRECTORY = (SUPPLIER, SCHOOL, CLOSED, RENAMED, SPECIAL)


def register_accounts(province: EmbeddedProvince | Province, county: str = COUNTY) -> None:
    """Finance's and the bank's account directories: each payee entered by one clerk and
    approved by another (账户信息维护审核) before any voucher may use it."""
    for party, prefix in ((f"F{county}", "fin"), ("B-ICBC", "icbc")):
        directory = AccountDirectory(province.library(party).engine)
        for payee in DIRECTORY:
            if directory.lookup(county, payee.account_no) is not None:
                continue
            entry = directory.enter_new(f"{prefix}-{county}-entry", county, payee.account_no,
                                        payee.name, payee.bank_name)
            directory.approve(f"{prefix}-{county}-review", entry.id)


@dataclass
class Parties:
    finance: Desk
    unit: Desk
    bank: Desk
    pboc: Desk


def _core() -> SimulatedCoreBanking:
    core = SimulatedCoreBanking(ref_prefix="ICBC")
    core.open_account(CLEARING, "中国工商银行芒市支行财政清算户", "中国工商银行芒市支行",
                      balance=Amount.parse("100000.00"))
    for payee in (SUPPLIER, SCHOOL, CLOSED):
        core.open_account(payee.account_no, payee.name, payee.bank_name)
    core.close(CLOSED.account_no)
    core.open_account(RENAMED.account_no, "芒市印务有限公司", RENAMED.bank_name)
    return core


def _treasury() -> SimulatedCoreBanking:
    core = SimulatedCoreBanking(ref_prefix="TRE")
    core.open_account(TREASURY, "国家金库芒市支库", "中国人民银行芒市支行",
                      balance=Amount.parse("5000000.00"))
    core.open_account(SPECIAL.account_no, SPECIAL.name, SPECIAL.bank_name)
    return core


def _funding() -> Funding:
    return Funding("533103001", "2533103000", "1", "一般公共预算资金", "2050202", "小学教育",
                   "53310300000000000001", "芒市教育体育局零余额账户", "中国工商银行芒市支行",
                   "B-ICBC", "中国工商银行云南省分行")


def run(ws: Workspace, flows: dict[str, str], notes: list[str]) -> None:
    """Run every flow, recording ``ok``/``failed`` in ``flows`` and one line each in ``notes``."""
    province = EmbeddedProvince(ws)
    day = datetime.now(UTC).strftime("%Y%m%d")
    who = Parties(Desk(f"F{COUNTY}", COUNTY, "fin"), Desk("U533103001", COUNTY, "unit"),
                  Desk("B-ICBC", COUNTY, "icbc"), Desk("P530000", COUNTY, "pboc"))
    bank = CorePayer(_core(), CLEARING)
    treasury = CorePayer(_treasury(), TREASURY)
    base = Payment(COUNTY, "", day, "U533103001", "芒市教育体育局", SUPPLIER,
                   Amount.parse("0.01"), "购买教学用品", _funding())

    def pay(no: str, amount: str, payee: Payee = SUPPLIER) -> Payment:
        return replace(base, voucher_no=no, amount=Amount.parse(amount), payee=payee)

    def step(name: str, work: Callable[[], str]) -> None:
        try:
            notes.append(f"{name}: {work()}")
            flows[name] = "ok"
        except GuokuError as exc:
            flows[name] = "failed"
            notes.append(f"{name}: FAILED {exc}")

    state: dict[str, object] = {}
    register_accounts(province)

    def quota_issue() -> str:
        authorized_payment.issue_quota(province, pay("ED533103001", "50000.00"), who.finance,
                                       who.bank, who.pboc)
        return "quota 50000.00 issued to the unit (5102, 5106, 5105, 9106)"

    def authorized() -> str:
        result = authorized_payment.pay(province, pay("SQ533103001", "12800.00"), who.unit,
                                        who.bank, who.pboc, who.finance, bank)
        state["authorized"] = result
        over = pay("SQ533103099", "60000.00")
        try:
            authorized_payment.pay(province, over, who.unit, who.bank, who.pboc, who.finance,
                                   bank)
        except QuotaExceeded:
            refused = "a payment of 60000.00 over the remaining quota was refused"
        else:
            raise GuokuError("a payment over the remaining quota went through")
        return f"unit paid 12800.00 within its quota (8202, 2301, 9301); {refused}"

    def authorized_refund() -> str:
        result = state["authorized"]
        assert isinstance(result, authorized_payment.FlowResult)
        copy = received(province, who.bank, result.first)
        refunds.run(province, copy, pay("SQ533103001", "12800.00"), who.bank, who.pboc,
                    who.finance, "收款单位退回多付款项")
        return "12800.00 refunded (2302, 9302, 2204); the quota is restored"

    def direct() -> str:
        result = direct_payment.run(province, pay("ZJ533103001", "36500.00", SCHOOL),
                                    who.finance, who.bank, who.pboc, bank)
        state["direct"] = result
        failures = []
        for no, payee, amount in (("ZJ533103091", CLOSED, "100.00"),
                                  ("ZJ533103092", RENAMED, "200.00"),
                                  ("ZJ533103093", SCHOOL, "999999.00"),
                                  ("ZJ533103094", UNKNOWN, "300.00")):
            failed = direct_payment.run(province, pay(no, amount, payee), who.finance,
                                        who.bank, who.pboc, bank)
            if failed.paid:
                raise GuokuError(f"{no} should have failed")
            failures.append(failed.reason or "?")
        return (f"36500.00 paid to 芒市第一中学 (5201, 5108, 9201, 2301, 9108, 9301, 2208); "
                f"returned by the bank: {'; '.join(failures)}")

    def direct_refund() -> str:
        result = state["direct"]
        assert isinstance(result, direct_payment.DirectPaymentResult)
        copy = received(province, who.bank, result.payment)
        refunds.run(province, copy, pay("ZJ533103001", "36500.00", SCHOOL), who.bank,
                    who.pboc, who.finance, "收款人账户冻结退回")
        return "36500.00 refunded (2302, 9302, 2203)"

    def allocate() -> str:
        result = allocation.run(province, pay("SB533103001", "80000.00", SPECIAL), who.finance,
                                who.pboc, treasury)
        state["allocation"] = result
        failed = allocation.run(province, pay("SB533103091", "100.00", CLOSED), who.finance,
                                who.pboc, treasury)
        if failed.paid:
            raise GuokuError("an allocation to an unknown account was paid")
        return (f"80000.00 allocated (5207, 9207); one the treasury could not pay came back "
                f"returned ({failed.reason}) and was voided")

    def allocation_refund() -> str:
        result = state["allocation"]
        assert isinstance(result, allocation.AllocationResult)
        allocation.refund(province, result, pay("SB533103001", "80000.00", SPECIAL),
                          who.finance, who.pboc, treasury, "专户信息变更退回")
        return "3208 registered by finance and allocated again"

    def close() -> str:
        result = day_close.close_day(province, who.bank, who.finance, day)
        if result.returned:
            raise GuokuError(f"finance returned daily reports: {result.returned}")
        return f"{len(result.reports)} daily reports sent and accepted by finance"

    def reconcile() -> str:
        agreed = []
        for ours, theirs in ((who.finance, who.bank), (who.finance, who.pboc),
                             (who.bank, who.pboc)):
            result = reconciliation.exchange(province, ours, theirs, day)
            if not result.agrees:
                raise GuokuError(f"{ours.party} and {theirs.party} differ: "
                                 f"{[r.vt_code for r in result.lines if not r.agrees]}")
            agreed.append(f"{ours.party}↔{theirs.party} {len(result.lines)} lines")
        return "sealed statements exchanged and agreed: " + ", ".join(agreed)

    for name, work in (("quota_issue", quota_issue), ("authorized_payment", authorized),
                       ("authorized_refund", authorized_refund), ("direct_payment", direct),
                       ("direct_refund", direct_refund), ("allocation", allocate),
                       ("allocation_refund", allocation_refund), ("day_close", close),
                       ("reconciliation", reconcile)):
        step(name, work)
