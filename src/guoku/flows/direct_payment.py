"""5.2 直接支付 — direct payment, step by step as the seed describes it.

1. F enters the unit's application, reviews → 财政直接支付凭证 (5201) F→B, and
   财政直接支付汇总清算额度通知单 (5108) F→P.
2. B pays, returns the sealed receipt (9201) → F; then 申请划款凭证 (2301) B→P.
3. P checks and clears; receipts of the clearing notice (9108) and of the transfer application
   (9301) → F; receipt of the transfer application (9301) → B.
4. B → 财政直接支付入账通知书 (2208) B→F; U reads and prints it.
5. F checks and books.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guoku.domain.money import Amount
from guoku.flows.desk import Desk, Province, answer, issue
from guoku.flows.model import (
    DIRECT,
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
class DirectPaymentResult:
    payment: VoucherRow
    vouchers: dict[str, VoucherRow] = field(default_factory=dict)
    paid: bool = False
    reason: str | None = None


def run(province: Province, payment: Payment, finance: Desk, bank: Desk, pboc: Desk,
        core: PayingBank) -> DirectPaymentResult:
    # 1. finance issues the payment voucher to the bank and the clearing quota to the treasury
    voucher = issue(province, finance, "5201", payment_header(payment, "5201", DIRECT),
                    payment_details(payment), receiver=bank.party)
    quota = issue(province, finance, "5108",
                  plan_header(payment, "5108", f"5108-{payment.voucher_no}"),
                  plan_details(payment), receiver=pboc.party)
    province.settle()
    result = DirectPaymentResult(voucher, {"5201": voucher, "5108": quota})
    # 2. the bank pays the payee; a failed payment goes back returned with the bank's reason
    outcome = bank_pays(province, bank, voucher, payment, core)
    if not outcome.paid:
        answer(province, pboc, quota)
        province.settle()
        result.reason = outcome.reason
        return result
    paid = {"XPayAmt": payment.amount.wire(), "XPayDate": payment.vou_date,
            "XAgentBusinessNo": outcome.business_no}
    result.vouchers["9201"] = issue(
        province, bank, "9201", answering_header(voucher, payment, "9201", payment.vou_date,
                                                 **paid), (), receiver=finance.party)
    transfer = issue(province, bank, "2301",
                     answering_header(voucher, payment, "2301", payment.vou_date),
                     report_details([voucher], payment.unit_code), receiver=pboc.party)
    result.vouchers["2301"] = transfer
    province.settle()
    # 3. the treasury checks and clears; receipts to finance and to the bank
    answer(province, pboc, quota)
    answer(province, pboc, transfer)
    result.vouchers["9108"] = issue(
        province, pboc, "9108", answering_header(quota, payment, "9108", payment.vou_date),
        (), receiver=finance.party)
    result.vouchers.update(receipts(province, pboc, "9301", transfer, payment,
                                    (finance.party, bank.party)))
    province.settle()
    # 4. the bank's credit notice to finance (the unit reads and prints it there)
    answer(province, bank, result.vouchers[f"9301:{bank.party}"])
    result.vouchers["2208"] = issue(
        province, bank, "2208", answering_header(voucher, payment, "2208", payment.vou_date,
                                                 **paid), (), receiver=finance.party)
    province.settle()
    # 5. finance checks every receipt and the notice, and books (the books are the ledger)
    for key in ("9201", "9108", f"9301:{finance.party}", "2208"):
        answer(province, finance, result.vouchers[key])
    province.settle()
    result.paid = True
    return result


def amount_of(result: DirectPaymentResult) -> Amount:
    return Amount(result.payment.amount_fen)
