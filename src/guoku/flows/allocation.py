"""5.3 实拨 — allocation: funds from the treasury straight to special accounts or units.

1. F reviews the allocation application, seals → 实拨拨款凭证 (5207) F→P.
2. P pays and returns the sealed voucher → F (its receipt, 9207); if payment fails, P returns
   (退回) the voucher and F voids it.
3. F books.
Refund: P initiates → 实拨退款凭证 (3208) P→F; F registers it and re-enters the allocation flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from guoku.flows.desk import Desk, Province, answer, issue
from guoku.flows.model import DIRECT, Payment, answering_header, payment_header
from guoku.flows.ports import PayingBank
from guoku.store.repository import VoucherRow


@dataclass
class AllocationResult:
    allocation: VoucherRow
    vouchers: dict[str, VoucherRow] = field(default_factory=dict)
    paid: bool = False
    reason: str | None = None


def run(province: Province, payment: Payment, finance: Desk, pboc: Desk,
        treasury: PayingBank) -> AllocationResult:
    allocation = issue(province, finance, "5207", payment_header(payment, "5207", DIRECT), (),
                       receiver=pboc.party)
    province.settle()
    result = AllocationResult(allocation, {"5207": allocation})
    outcome = treasury.pay(allocation.ref, payment.payee.account_no, payment.payee.name,
                           payment.amount)
    if not outcome.paid:
        # the treasury returns the voucher; finance voids it
        answer(province, pboc, allocation, return_reason=outcome.reason)
        province.settle()
        lib = province.library(finance.party)
        lib.void(finance.entry, allocation.id, f"实拨失败: {outcome.reason}")
        result.reason = outcome.reason
        return result
    answer(province, pboc, allocation)
    paid = {"XPayAmt": payment.amount.wire(), "XPayDate": payment.vou_date,
            "XAgentBusinessNo": outcome.business_no}
    result.vouchers["9207"] = issue(
        province, pboc, "9207", answering_header(allocation, payment, "9207",
                                                 payment.vou_date, **paid), (),
        receiver=finance.party)
    province.settle()
    answer(province, finance, result.vouchers["9207"])
    province.settle()
    result.paid = True
    return result


def refund(province: Province, original: AllocationResult, payment: Payment, finance: Desk,
           pboc: Desk, treasury: PayingBank, reason: str) -> tuple[VoucherRow, AllocationResult]:
    """The treasury sends back an allocation (3208); finance registers it and allocates anew."""
    header = payment_header(payment, "3208", DIRECT)
    header["VoucherNo"] = f"3208-{original.allocation.voucher_no}"
    header["Remark"] = reason
    refund_voucher = issue(province, pboc, "3208", header, (), receiver=finance.party)
    province.settle()
    answer(province, finance, refund_voucher)  # registered (登记)
    province.settle()
    again = replace(payment, voucher_no=f"{payment.voucher_no}-R")
    return refund_voucher, run(province, again, finance, pboc, treasury)
