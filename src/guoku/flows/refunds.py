"""Refunds (退款) of cleared payments: money the payee's bank sent back.

Direct (5.2): B → 申请退款凭证 (2302) B→P; P confirms, receipt (9302) → F and B;
B → 财政直接支付退款入账通知书 (2203) B→F (U reads it); F checks and books.

Authorized (5.1): B → 2302 B→P; P confirms, 9302 → B and F; B → 财政授权支付退款通知书 (2204)
B→F (U reads it) and the refund daily report (2207, at day close); F books; the unit's quota is
restored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guoku.domain.money import Amount
from guoku.flows.desk import Desk, Province, answer, issue
from guoku.flows.model import Payment, answering_header, report_details
from guoku.flows.steps import receipts
from guoku.store.repository import VoucherRow

NOTICE = {"5201": "2203", "8202": "2204"}
"""The refund notice to finance for a refunded voucher type."""


@dataclass
class RefundResult:
    original: VoucherRow
    vouchers: dict[str, VoucherRow] = field(default_factory=dict)


def run(province: Province, original: VoucherRow, payment: Payment, bank: Desk, pboc: Desk,
        finance: Desk, reason: str) -> RefundResult:
    """``original`` is the bank's received copy of the refunded payment voucher."""
    result = RefundResult(original)
    application = issue(province, bank, "2302",
                        answering_header(original, payment, "2302", payment.vou_date,
                                         XAddWord=reason),
                        report_details([original], payment.unit_code), receiver=pboc.party)
    result.vouchers["2302"] = application
    province.settle()
    answer(province, pboc, application)
    result.vouchers.update(receipts(province, pboc, "9302", application, payment,
                                    (bank.party, finance.party)))
    province.settle()
    answer(province, bank, result.vouchers[f"9302:{bank.party}"])
    notice_type = NOTICE[original.vt_code]
    notice = issue(province, bank, notice_type,
                   answering_header(original, payment, notice_type, payment.vou_date,
                                    XAddWord=reason), (), receiver=finance.party)
    result.vouchers[notice_type] = notice
    province.settle()
    for key in (f"9302:{finance.party}", notice_type):
        answer(province, finance, result.vouchers[key])
    province.settle()
    return result


def refunded(result: RefundResult) -> Amount:
    return Amount(result.original.amount_fen)
