"""The agent bank (or the treasury) paying through its core banking system, as flows see it."""

from __future__ import annotations

from dataclasses import dataclass

from guoku.bank.core import CoreBanking
from guoku.domain.money import Amount
from guoku.flows.ports import PaymentOutcome


@dataclass
class CorePayer:
    """Pays from ``clearing_account`` (the bank's advance account, or the treasury account).

    A definite refusal comes back as an outcome with the core's Chinese reason; a lost reply
    (``CoreUnavailable``) propagates: the payment is indeterminate and its quota stays held.
    """

    core: CoreBanking
    clearing_account: str

    def pay(self, payment_id: str, payee_account: str, payee_name: str,
            amount: Amount) -> PaymentOutcome:
        result = self.core.pay(payment_id, self.clearing_account, payee_account, payee_name,
                               amount)
        if result.paid:
            return PaymentOutcome(True, result.core_ref or "")
        return PaymentOutcome(False, "", result.reason or str(result.code))
