"""额度台账 — the quota ledger: what a budget unit may still spend under authorized payment.

Finance issues quota (额度下达, from a quota notice) per unit, fund type (资金性质), functional
classification (功能分类) and month. A payment that is entered and sent holds (占用) its amount at
once, so two payments can never both count on the same fen; when the payment's outcome is definite
the hold either becomes spent (paid) or goes back to the available quota (returned, failed,
voided). An outcome that is indeterminate — no receipt yet — keeps the hold: the money may have
gone out, so the quota is released only when a definite outcome arrives. A refund (退款) of a paid
payment gives spent quota back; finance may also reduce (额度调减) quota nobody holds or spent.

The balance of one key is three numbers, and every operation moves them by one row of
:data:`EFFECTS`::

    available = issued - held - spent        issued >= held + spent,  all >= 0

Every operation names the voucher it comes from, and the ledger keeps one entry per operation, so
the balance is always the sum of its entries (:func:`replay`). Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from guoku.domain.errors import AmountInvalid, Conflict, GuokuError, ValidationError
from guoku.domain.fields import PATTERNS, FieldKind
from guoku.domain.money import Amount

MAX_CODE: Final = 42
"""Longest agency, fund type or classification code (the voucher fields' limit)."""
MAX_REF: Final = 80
"""Longest voucher reference an entry may carry (same limit as the audit log's)."""
MIN_YEAR: Final = 2000
MAX_YEAR: Final = 9999

ZERO: Final = Amount(0)

_ADMDIV = re.compile(r"[1-9][0-9]{5}")
_CODE = re.compile(PATTERNS[FieldKind.CODE])


# --- errors ----------------------------------------------------------------------------------


class QuotaExceeded(GuokuError):
    """The payment (or reduction) asks for more than the key's available quota."""

    code = "QUOTA_EXCEEDED"


class RefundExceedsSpent(GuokuError):
    """A refund would give back more than was spent (by the key, or by that payment)."""

    code = "REFUND_EXCEEDS_SPENT"


class HoldNotOpen(Conflict):
    """Settle or release of a payment that holds nothing: never held, or already closed the
    other way (a paid payment is not returned — it is refunded)."""

    code = "QUOTA_HOLD_NOT_OPEN"


class QuotaReplayMismatch(Conflict):
    """The same (voucher, operation) arrived again with a different key, amount or payment."""

    code = "QUOTA_REPLAY_MISMATCH"


class LedgerMismatch(GuokuError):
    """The entries do not add up to the balance: the ledger was altered outside these rules."""

    code = "QUOTA_LEDGER_MISMATCH"


# --- key, balance, operations ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class QuotaKey:
    """One quota account: division, budget year, unit (基层预算单位), fund type (资金性质),
    functional classification (功能分类) and month (月份)."""

    admdiv: str
    year: int
    agency_code: str
    fund_type: str
    exp_func: str
    month: int

    def __post_init__(self) -> None:
        if not isinstance(self.admdiv, str) or not _ADMDIV.fullmatch(self.admdiv):
            raise ValidationError(f"admdiv {self.admdiv!r} is not a six-digit division code")
        if isinstance(self.year, bool) or not isinstance(self.year, int):
            raise ValidationError(f"year {self.year!r} is not an integer")
        if not MIN_YEAR <= self.year <= MAX_YEAR:
            raise ValidationError(f"year {self.year} is outside {MIN_YEAR}..{MAX_YEAR}")
        if isinstance(self.month, bool) or not isinstance(self.month, int):
            raise ValidationError(f"month {self.month!r} is not an integer")
        if not 1 <= self.month <= 12:
            raise ValidationError(f"month {self.month} is outside 1..12")
        for name in ("agency_code", "fund_type", "exp_func"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_CODE or not _CODE.fullmatch(value):
                raise ValidationError(f"{name} {value!r} is not a code of 1..{MAX_CODE} characters")

    def __str__(self) -> str:
        return (
            f"{self.admdiv}/{self.year}/{self.agency_code}/{self.fund_type}/"
            f"{self.exp_func}/{self.month:02d}"
        )


class QuotaOp(enum.StrEnum):
    ISSUE = "issue"
    """额度下达: a quota notice adds to the issued quota."""
    REDUCE = "reduce"
    """额度调减: finance takes back quota that nobody holds or spent."""
    HOLD = "hold"
    """A payment entered and sent reserves its amount."""
    SETTLE = "settle"
    """The payment was paid: its hold becomes spent."""
    RELEASE = "release"
    """The payment was returned, failed or voided: its hold goes back to available."""
    REFUND = "refund"
    """退款: money of a paid payment came back; spent quota becomes available again."""


EFFECTS: Final[Mapping[QuotaOp, tuple[int, int, int]]] = MappingProxyType(
    {
        QuotaOp.ISSUE: (+1, 0, 0),
        QuotaOp.REDUCE: (-1, 0, 0),
        QuotaOp.HOLD: (0, +1, 0),
        QuotaOp.SETTLE: (0, -1, +1),
        QuotaOp.RELEASE: (0, -1, 0),
        QuotaOp.REFUND: (0, 0, -1),
    }
)
"""How each operation moves (issued, held, spent), per fen of its amount. The one table."""


@dataclass(frozen=True, slots=True)
class QuotaBalance:
    """Issued, held and spent quota of one key; ``available`` is what a new payment may take."""

    issued: Amount
    held: Amount
    spent: Amount

    def __post_init__(self) -> None:
        if min(self.issued.fen, self.held.fen, self.spent.fen) < 0:
            raise AssertionError(f"quota balance has a negative part: {self}")
        if self.held.fen + self.spent.fen > self.issued.fen:
            raise AssertionError(f"quota balance holds and spends more than issued: {self}")

    @classmethod
    def empty(cls) -> QuotaBalance:
        return cls(ZERO, ZERO, ZERO)

    @classmethod
    def of_fen(cls, issued: int, held: int, spent: int) -> QuotaBalance:
        return cls(Amount(issued), Amount(held), Amount(spent))

    @property
    def available(self) -> Amount:
        return self.issued - self.held - self.spent

    def limit(self, op: QuotaOp) -> Amount | None:
        """The most ``op`` may move now; None when only the amount's own limit applies."""
        return {
            QuotaOp.ISSUE: None,
            QuotaOp.REDUCE: self.available,
            QuotaOp.HOLD: self.available,
            QuotaOp.SETTLE: self.held,
            QuotaOp.RELEASE: self.held,
            QuotaOp.REFUND: self.spent,
        }[op]

    def moved(self, op: QuotaOp, amount: Amount) -> QuotaBalance:
        """The balance after ``op`` of ``amount``; the caller checked :meth:`limit` first."""
        di, dh, ds = EFFECTS[op]
        return QuotaBalance.of_fen(
            self.issued.fen + di * amount.fen,
            self.held.fen + dh * amount.fen,
            self.spent.fen + ds * amount.fen,
        )

    def __str__(self) -> str:
        return (
            f"issued {self.issued} held {self.held} spent {self.spent} available {self.available}"
        )


@dataclass(frozen=True, slots=True)
class QuotaEntry:
    """One change of one key's balance, pointing at the voucher it comes from.

    ``payment_ref`` names the payment a refund gives quota back for (None for other operations).
    """

    key: QuotaKey
    op: QuotaOp
    amount: Amount
    voucher_ref: str
    after: QuotaBalance
    payment_ref: str | None = None

    def same_operation(self, key: QuotaKey, amount: Amount | None, payment_ref: str | None) -> bool:
        """Whether a redelivery of (voucher, op) asks for what this entry already did."""
        return (
            self.key == key
            and (amount is None or self.amount == amount)
            and self.payment_ref == payment_ref
        )


def check_ref(voucher_ref: str, what: str = "voucher_ref") -> str:
    if not isinstance(voucher_ref, str) or not voucher_ref.strip() or len(voucher_ref) > MAX_REF:
        raise ValidationError(f"{what} {voucher_ref!r} must be 1..{MAX_REF} characters")
    return voucher_ref


def check_request(
    op: QuotaOp, amount: Amount, voucher_ref: str, payment_ref: str | None = None
) -> None:
    """Refuse a malformed request before any balance is read or locked."""
    check_ref(voucher_ref)
    if (payment_ref is not None) != (op is QuotaOp.REFUND):
        raise ValidationError(f"a payment_ref goes with refunds only, not with {op}")
    if payment_ref is not None:
        check_ref(payment_ref, "payment_ref")
    if not isinstance(amount, Amount) or not amount.is_positive():
        raise AmountInvalid(f"quota {op} of {amount} by {voucher_ref}: the amount must be > 0")


def apply(
    key: QuotaKey,
    balance: QuotaBalance,
    op: QuotaOp,
    amount: Amount,
    voucher_ref: str,
    *,
    payment_ref: str | None = None,
) -> QuotaEntry:
    """Apply one operation to ``balance``; refused with a typed error, nothing changes then."""
    check_request(op, amount, voucher_ref, payment_ref)
    limit = balance.limit(op)
    if limit is not None and amount > limit:
        raise _refusal(key, balance, op, amount, voucher_ref)
    return QuotaEntry(key, op, amount, voucher_ref, balance.moved(op, amount), payment_ref)


def _refusal(
    key: QuotaKey, balance: QuotaBalance, op: QuotaOp, amount: Amount, voucher_ref: str
) -> GuokuError:
    details = {
        "key": str(key),
        "op": str(op),
        "amount": amount.wire(),
        "voucher_ref": voucher_ref,
        "available": balance.available.wire(),
    }
    if op in (QuotaOp.HOLD, QuotaOp.REDUCE):
        return QuotaExceeded(
            f"{op} of {amount} by {voucher_ref} exceeds the available quota "
            f"{balance.available} of {key}",
            **details,
        )
    if op is QuotaOp.REFUND:
        return RefundExceedsSpent(
            f"refund of {amount} by {voucher_ref} exceeds the spent quota {balance.spent} of {key}",
            spent=balance.spent.wire(),
            **details,
        )
    return HoldNotOpen(
        f"{op} of {amount} by {voucher_ref} exceeds the held quota {balance.held} of {key}",
        held=balance.held.wire(),
        **details,
    )


def replay(entries: Iterable[QuotaEntry], start: QuotaBalance | None = None) -> QuotaBalance:
    """The balance the entries add up to; each entry's recorded ``after`` must match the sum."""
    balance = start or QuotaBalance.empty()
    for number, entry in enumerate(entries, 1):
        try:
            balance = balance.moved(entry.op, entry.amount)
        except AssertionError as exc:
            raise LedgerMismatch(
                f"entry {number} ({entry.op} by {entry.voucher_ref}) "
                f"breaks the balance rules: {exc}"
            ) from None
        if balance != entry.after:
            raise LedgerMismatch(
                f"entry {number} ({entry.op} by {entry.voucher_ref}) records {entry.after}, "
                f"the entries before it add up to {balance}"
            )
    return balance


# --- one payment's hold ----------------------------------------------------------------------


class HoldState(enum.StrEnum):
    HELD = "held"
    PAID = "paid"
    RELEASED = "released"


class Outcome(enum.StrEnum):
    """What became of a payment voucher, as far as its quota is concerned."""

    PAID = "paid"
    RETURNED = "returned"
    """退回: the bank refused it with a reason."""
    FAILED = "failed"
    """错误回执 or a failed payment: nothing was paid."""
    VOIDED = "voided"
    """作废: voided after it came back (or before it left)."""
    INDETERMINATE = "indeterminate"
    """No receipt in time: the money may have gone out, so the hold stays."""


OUTCOME_OPS: Final[Mapping[Outcome, QuotaOp | None]] = MappingProxyType(
    {
        Outcome.PAID: QuotaOp.SETTLE,
        Outcome.RETURNED: QuotaOp.RELEASE,
        Outcome.FAILED: QuotaOp.RELEASE,
        Outcome.VOIDED: QuotaOp.RELEASE,
        Outcome.INDETERMINATE: None,
    }
)
"""Which quota operation an outcome causes; None keeps the hold as it is."""

_CLOSED_BY: Final[Mapping[QuotaOp, HoldState]] = MappingProxyType(
    {QuotaOp.SETTLE: HoldState.PAID, QuotaOp.RELEASE: HoldState.RELEASED}
)


@dataclass(frozen=True, slots=True)
class PaymentHold:
    """The quota one payment voucher holds, and what became of it."""

    key: QuotaKey
    voucher_ref: str
    amount: Amount
    state: HoldState = HoldState.HELD
    refunded: Amount = ZERO

    def __post_init__(self) -> None:
        if not self.amount.is_positive():
            raise AssertionError(f"hold of {self.voucher_ref} has no amount")
        if self.refunded.fen < 0 or self.refunded > self.amount:
            raise AssertionError(f"hold of {self.voucher_ref} refunded {self.refunded}")
        if self.refunded.is_positive() and self.state is not HoldState.PAID:
            raise AssertionError(f"hold of {self.voucher_ref} refunded while {self.state}")

    def close(self, outcome: Outcome) -> tuple[PaymentHold, QuotaOp | None]:
        """The hold after ``outcome`` and the quota operation to book (None: book nothing).

        An indeterminate outcome changes nothing; the same definite outcome twice is booked once;
        a paid payment cannot later be returned (that is a refund), nor a released one paid.
        """
        op = OUTCOME_OPS[outcome]
        if op is None:
            return self, None
        target = _CLOSED_BY[op]
        if self.state is target:
            return self, None
        if self.state is not HoldState.HELD:
            raise HoldNotOpen(
                f"payment {self.voucher_ref} is {self.state} already; it cannot become {outcome}",
                voucher_ref=self.voucher_ref,
                state=str(self.state),
                outcome=str(outcome),
            )
        return replace(self, state=target), op

    @property
    def refundable(self) -> Amount:
        return self.amount - self.refunded if self.state is HoldState.PAID else ZERO

    def refund(self, amount: Amount, refund_ref: str) -> PaymentHold:
        """Record a refund of this payment: at most what it paid and was not refunded yet."""
        if self.state is not HoldState.PAID:
            raise RefundExceedsSpent(
                f"refund {refund_ref} of payment {self.voucher_ref}: the payment is {self.state}, "
                f"not paid",
                voucher_ref=refund_ref,
                payment_ref=self.voucher_ref,
            )
        if not amount.is_positive() or amount > self.refundable:
            raise RefundExceedsSpent(
                f"refund {refund_ref} of {amount} exceeds what payment {self.voucher_ref} may "
                f"still give back ({self.refundable})",
                voucher_ref=refund_ref,
                payment_ref=self.voucher_ref,
                refundable=self.refundable.wire(),
            )
        return replace(self, refunded=self.refunded + amount)


def hold_of(entries: Sequence[QuotaEntry], voucher_ref: str) -> PaymentHold | None:
    """The hold of payment ``voucher_ref`` from its entries (hold, settle or release, refunds)."""
    holds = [e for e in entries if e.op is QuotaOp.HOLD and e.voucher_ref == voucher_ref]
    if not holds:
        return None
    if len(holds) > 1:
        raise LedgerMismatch(f"payment {voucher_ref} holds quota {len(holds)} times")
    hold = PaymentHold(holds[0].key, voucher_ref, holds[0].amount)
    closes = [e for e in entries if e.op in _CLOSED_BY and e.voucher_ref == voucher_ref]
    if len(closes) > 1:
        raise LedgerMismatch(f"payment {voucher_ref} was closed {len(closes)} times")
    if closes:
        hold = replace(hold, state=_CLOSED_BY[closes[0].op])
    refunded = sum(
        e.amount.fen for e in entries if e.op is QuotaOp.REFUND and e.payment_ref == voucher_ref
    )
    try:
        return replace(hold, refunded=Amount(refunded))
    except AssertionError as exc:
        raise LedgerMismatch(f"payment {voucher_ref}: {exc}") from None
