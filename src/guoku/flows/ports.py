"""What flows need of the outside world: the bank's core banking system that pays payees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from guoku.domain.money import Amount


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    paid: bool
    business_no: str
    """The bank's transaction number (银行交易流水号) when paid."""
    reason: str | None = None
    """Why not paid, e.g. 收款账户已销户 (closed account)."""


class PayingBank(Protocol):
    def pay(self, payment_id: str, payee_account: str, payee_name: str,
            amount: Amount) -> PaymentOutcome:
        """Pay once per ``payment_id`` — a retry never pays twice."""
        ...
