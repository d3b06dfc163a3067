"""5.1 授权支付 — authorized payment: a quota first, then the unit pays within it.

Quota issue (额度下达):
1. F enters, reviews and issues the quota plan → 授权支付额度通知单 (5102) F→B, and
   授权支付汇总清算额度通知单 (5106) F→P.
2. B → 授权额度到账通知书 (5105) B→F; U reads and prints it.
3. P returns the sealed receipt of the clearing quota notice (9106) P→F.

Payment by a unit:
1. U enters 授权支付凭证 (8202), seals, sends → B, within its quota.
2. B pays the payee, then 申请划款凭证 (2301) B→P.
3. P clears, seals the receipt (9301) → B and → F.
4. B → 授权支付日报表 (2205) B→F (at day close).
5. F checks receipt and daily report against its records and books them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guoku.flows.desk import Desk, Province, answer, issue
from guoku.flows.model import (
    AUTHORIZED,
    Payment,
    answering_header,
    payment_details,
    payment_header,
    plan_details,
    plan_header,
    report_details,
)
from guoku.flows.ports import PayingBank
from guoku.flows.steps import bank_pays, receipts
from guoku.store.repository import VoucherRow


@dataclass
class FlowResult:
    first: VoucherRow
    vouchers: dict[str, VoucherRow] = field(default_factory=dict)
    completed: bool = False
    reason: str | None = None


def issue_quota(province: Province, quota: Payment, finance: Desk, bank: Desk,
                pboc: Desk) -> FlowResult:
    """额度下达: ``quota.amount`` for the unit, fund type, classification and month."""
    notice = issue(province, finance, "5102", plan_header(quota, "5102", quota.voucher_no),
                   plan_details(quota), receiver=bank.party)
    clearing = issue(province, finance, "5106",
                     plan_header(quota, "5106", f"5106-{quota.voucher_no}"),
                     plan_details(quota), receiver=pboc.party)
    province.settle()
    result = FlowResult(notice, {"5102": notice, "5106": clearing})
    answer(province, bank, notice)
    plan = {"PlanAmt": quota.amount.wire(), "SetMonth": quota.vou_date[4:6]}
    result.vouchers["5105"] = issue(
        province, bank, "5105", answering_header(notice, quota, "5105", quota.vou_date, **plan),
        (), receiver=finance.party)
    answer(province, pboc, clearing)
    result.vouchers["9106"] = issue(
        province, pboc, "9106", answering_header(clearing, quota, "9106", quota.vou_date), (),
        receiver=finance.party)
    province.settle()
    for key in ("5105", "9106"):
        answer(province, finance, result.vouchers[key])
    province.settle()
    result.completed = True
    return result


def pay(province: Province, payment: Payment, unit: Desk, bank: Desk, pboc: Desk,
        finance: Desk, core: PayingBank) -> FlowResult:
    """The unit pays within its quota; the bank pays and asks the treasury to reimburse."""
    voucher = issue(province, unit, "8202", payment_header(payment, "8202", AUTHORIZED),
                    payment_details(payment), receiver=bank.party)
    province.settle()
    result = FlowResult(voucher, {"8202": voucher})
    outcome = bank_pays(province, bank, voucher, payment, core)
    if not outcome.paid:
        province.settle()
        result.reason = outcome.reason
        return result
    transfer = issue(province, bank, "2301",
                     answering_header(voucher, payment, "2301", payment.vou_date),
                     report_details([voucher], payment.unit_code), receiver=pboc.party)
    result.vouchers["2301"] = transfer
    province.settle()
    answer(province, pboc, transfer)
    result.vouchers.update(receipts(province, pboc, "9301", transfer, payment,
                                    (bank.party, finance.party)))
    province.settle()
    answer(province, bank, result.vouchers[f"9301:{bank.party}"])
    answer(province, finance, result.vouchers[f"9301:{finance.party}"])
    province.settle()
    result.completed = True
    return result
