"""Steps several flows share: the bank paying (or returning) payment vouchers, and the
treasury's receipts to both finance and the bank. Each works on a batch; the single forms are
a batch of one."""

from __future__ import annotations

from collections.abc import Sequence

from guoku.flows.desk import Desk, Province, accept_many, answer, issue_many, payee_refusal
from guoku.flows.model import Payment, answering_header
from guoku.flows.ports import PayingBank, PaymentOutcome
from guoku.store.repository import VoucherRow


def bank_pays(province: Province, bank: Desk, voucher: VoucherRow, payment: Payment,
              core: PayingBank) -> PaymentOutcome:
    """The payee check, then the core banking payment; the voucher is accepted when paid and
    returned with the reason otherwise."""
    return bank_pays_many(province, bank, [voucher], [payment], core)[0]


def bank_pays_many(province: Province, bank: Desk, vouchers: Sequence[VoucherRow],
                   payments: Sequence[Payment], core: PayingBank) -> list[PaymentOutcome]:
    """:func:`bank_pays` voucher by voucher against the core system; the paid ones are then
    signed for in one batch, each failed one returned with its own reason."""
    outcomes = []
    for voucher, payment in zip(vouchers, payments, strict=True):
        refusal = payee_refusal(province, bank, voucher)
        outcomes.append(
            core.pay(voucher.ref, payment.payee.account_no, payment.payee.name, payment.amount)
            if refusal is None else PaymentOutcome(False, "", refusal))
    for voucher, outcome in zip(vouchers, outcomes, strict=True):
        if not outcome.paid:
            answer(province, bank, voucher, return_reason=outcome.reason)
    accept_many(province, bank, [v for v, o in zip(vouchers, outcomes, strict=True) if o.paid])
    return outcomes


def receipts(province: Province, sender: Desk, vt_code: str, original: VoucherRow,
             payment: Payment, receivers: Sequence[str]) -> dict[str, VoucherRow]:
    """One sealed receipt of ``original`` to each receiver, keyed ``vt_code:receiver``."""
    return receipts_many(province, sender, vt_code, [original], [payment], receivers)[0]


def receipts_many(province: Province, sender: Desk, vt_code: str,
                  originals: Sequence[VoucherRow], payments: Sequence[Payment],
                  receivers: Sequence[str]) -> list[dict[str, VoucherRow]]:
    """:func:`receipts` for each original, issued in one batch per receiver."""
    sent: list[dict[str, VoucherRow]] = [{} for _ in originals]
    for receiver in receivers:
        entries = []
        for original, payment in zip(originals, payments, strict=True):
            header = answering_header(original, payment, vt_code, payment.vou_date)
            header["VoucherNo"] = f"{vt_code}-{receiver}-{original.voucher_no}"[:42]
            entries.append((header, ()))
        issued = issue_many(province, sender, vt_code, entries, receiver=receiver)
        for one, row in zip(sent, issued, strict=True):
            one[f"{vt_code}:{receiver}"] = row
    return sent
