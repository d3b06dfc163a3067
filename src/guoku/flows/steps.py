"""Steps several flows share: the bank paying (or returning) a payment voucher, and the
treasury's receipts to both finance and the bank."""

from __future__ import annotations

from collections.abc import Sequence

from guoku.flows.desk import Desk, Province, answer, issue, payee_refusal
from guoku.flows.model import Payment, answering_header
from guoku.flows.ports import PayingBank, PaymentOutcome
from guoku.store.repository import VoucherRow


def bank_pays(province: Province, bank: Desk, voucher: VoucherRow, payment: Payment,
              core: PayingBank) -> PaymentOutcome:
    """The payee check, then the core banking payment; the voucher is accepted when paid and
    returned with the reason otherwise."""
    refusal = payee_refusal(province, bank, voucher)
    outcome = core.pay(voucher.ref, payment.payee.account_no, payment.payee.name,
                       payment.amount) if refusal is None else PaymentOutcome(False, "", refusal)
    answer(province, bank, voucher, return_reason=None if outcome.paid else outcome.reason)
    return outcome


def receipts(province: Province, sender: Desk, vt_code: str, original: VoucherRow,
             payment: Payment, receivers: Sequence[str]) -> dict[str, VoucherRow]:
    """One sealed receipt of ``original`` to each receiver, keyed ``vt_code:receiver``."""
    sent = {}
    for receiver in receivers:
        header = answering_header(original, payment, vt_code, payment.vou_date)
        header["VoucherNo"] = f"{vt_code}-{receiver}-{original.voucher_no}"[:42]
        sent[f"{vt_code}:{receiver}"] = issue(province, sender, vt_code, header, (),
                                              receiver=receiver)
    return sent
