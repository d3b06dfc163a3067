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

from collections.abc import Sequence
from dataclasses import dataclass, field

from guoku.domain.money import Amount
from guoku.flows.desk import Desk, Province, accept_many, issue_many
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
from guoku.flows.steps import bank_pays_many, receipts_many
from guoku.store.repository import VoucherRow


@dataclass
class DirectPaymentResult:
    payment: VoucherRow
    vouchers: dict[str, VoucherRow] = field(default_factory=dict)
    paid: bool = False
    reason: str | None = None


def run(province: Province, payment: Payment, finance: Desk, bank: Desk, pboc: Desk,
        core: PayingBank) -> DirectPaymentResult:
    """One direct payment: :func:`run_many` of one."""
    return run_many(province, [payment], finance, bank, pboc, core)[0]


def run_many(province: Province, payments: Sequence[Payment], finance: Desk, bank: Desk,
             pboc: Desk, core: PayingBank) -> list[DirectPaymentResult]:
    """Direct payments of one finance bureau through one bank, the steps above each done for
    the whole batch (批量): every voucher is still entered, reviewed, sealed, sent, verified,
    signed for and booked on its own, by the same clerks; a step's vouchers share its
    transactions, its signing-server batch and its envelopes. A payment the bank cannot make
    comes back returned while the others go on."""
    # 1. finance issues the payment vouchers to the bank and the clearing quotas to the treasury
    vouchers = issue_many(province, finance, "5201", [
        (payment_header(p, "5201", DIRECT), payment_details(p)) for p in payments],
        receiver=bank.party)
    quotas = issue_many(province, finance, "5108", [
        (plan_header(p, "5108", f"5108-{p.voucher_no}"), plan_details(p)) for p in payments],
        receiver=pboc.party)
    province.settle()
    results = [DirectPaymentResult(v, {"5201": v, "5108": q}) for v, q in zip(vouchers, quotas,
                                                                             strict=True)]
    # 2. the bank pays the payees; a failed payment goes back returned with the bank's reason
    outcomes = bank_pays_many(province, bank, vouchers, payments, core)
    for result, outcome in zip(results, outcomes, strict=True):
        result.paid, result.reason = outcome.paid, outcome.reason if not outcome.paid else None
    paid = [(r, p, {"XPayAmt": p.amount.wire(), "XPayDate": p.vou_date,
                    "XAgentBusinessNo": o.business_no})
            for r, p, o in zip(results, payments, outcomes, strict=True) if o.paid]
    _issued(paid, "9201", issue_many(province, bank, "9201", [
        (answering_header(r.payment, p, "9201", p.vou_date, **x), ()) for r, p, x in paid],
        receiver=finance.party))
    _issued(paid, "2301", issue_many(province, bank, "2301", [
        (answering_header(r.payment, p, "2301", p.vou_date),
         report_details([r.payment], p.unit_code)) for r, p, _ in paid], receiver=pboc.party))
    province.settle()
    # 3. the treasury checks and clears; receipts to finance and to the bank
    accept_many(province, pboc, quotas)
    transfers = [r.vouchers["2301"] for r, _, _ in paid]
    accept_many(province, pboc, transfers)
    _issued(paid, "9108", issue_many(province, pboc, "9108", [
        (answering_header(r.vouchers["5108"], p, "9108", p.vou_date), ()) for r, p, _ in paid],
        receiver=finance.party))
    for (result, _, _), sent in zip(paid, receipts_many(
            province, pboc, "9301", transfers, [p for _, p, _ in paid],
            (finance.party, bank.party)), strict=True):
        result.vouchers.update(sent)
    province.settle()
    # 4. the bank's credit notices to finance (the unit reads and prints them there)
    accept_many(province, bank, [r.vouchers[f"9301:{bank.party}"] for r, _, _ in paid])
    _issued(paid, "2208", issue_many(province, bank, "2208", [
        (answering_header(r.payment, p, "2208", p.vou_date, **x), ()) for r, p, x in paid],
        receiver=finance.party))
    province.settle()
    # 5. finance checks every receipt and notice, and books (the books are the ledger)
    for key in ("9201", "9108", f"9301:{finance.party}", "2208"):
        accept_many(province, finance, [r.vouchers[key] for r, _, _ in paid])
    province.settle()
    return results


def _issued(paid: Sequence[tuple[DirectPaymentResult, Payment, object]], key: str,
            rows: Sequence[VoucherRow]) -> None:
    for (result, _, _), row in zip(paid, rows, strict=True):
        result.vouchers[key] = row


def amount_of(result: DirectPaymentResult) -> Amount:
    return Amount(result.payment.amount_fen)
