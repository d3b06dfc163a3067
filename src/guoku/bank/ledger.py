"""The agent bank's business ledger of advances (垫付) and reimbursements (清算回款).

Under centralized payment the agent bank pays payees first, from its own clearing account
(垫付, an *advance*), and the treasury repays it afterwards when the central bank clears the
bank's application for transfer (申请划款凭证 → 清算回款, a *reimbursement*). The bank keeps
what the treasury still owes it per unit (预算单位), fund type (资金性质) and day::

    outstanding = advanced - reimbursed            0 <= reimbursed <= advanced

per key at every moment: the treasury never repays more than was advanced for that key.

Every entry carries an explicit idempotency id (the payment id of an advance, the clearing
voucher's reference and line of a reimbursement): the same entry recorded twice is a no-op, the
same id with other values a :class:`LedgerEntryConflict`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final

from guoku.domain.errors import AmountInvalid, Conflict, GuokuError, ValidationError
from guoku.domain.fields import PATTERNS, FieldKind
from guoku.domain.money import Amount

MAX_CODE: Final = 42
MAX_ENTRY_ID: Final = 80
ZERO: Final = Amount(0)

_ADMDIV = re.compile(r"[1-9][0-9]{5}")
_CODE = re.compile(PATTERNS[FieldKind.CODE])


class ReimbursementExceedsOutstanding(GuokuError):
    """The treasury would repay more than the bank advanced (and was not yet repaid) for a key."""

    code = "REIMBURSEMENT_EXCEEDS_OUTSTANDING"


class LedgerEntryConflict(Conflict):
    """An entry id came back with another kind, key, amount or booking day."""

    code = "BANK_LEDGER_ENTRY_CONFLICT"


@dataclass(frozen=True, slots=True, order=True)
class LedgerKey:
    """One line of the ledger: division, unit (基层预算单位编码), fund type and advance day."""

    admdiv: str
    agency_code: str
    fund_type: str
    day: date

    def __post_init__(self) -> None:
        if not isinstance(self.admdiv, str) or not _ADMDIV.fullmatch(self.admdiv):
            raise ValidationError(f"admdiv {self.admdiv!r} is not a six-digit division code")
        for name in ("agency_code", "fund_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_CODE or not _CODE.fullmatch(value):
                raise ValidationError(f"{name} {value!r} is not a code of 1..{MAX_CODE} characters")
        if not isinstance(self.day, date):
            raise ValidationError(f"day {self.day!r} is not a date")

    def __str__(self) -> str:
        return f"{self.admdiv}/{self.agency_code}/{self.fund_type}/{self.day:%Y%m%d}"


class EntryKind(enum.StrEnum):
    ADVANCE = "advance"
    """垫付: the bank paid a payee from its clearing account."""
    REIMBURSEMENT = "reimbursement"
    """清算回款: the treasury repaid the bank through the central bank's clearing."""


SIGN: Final[Mapping[EntryKind, int]] = MappingProxyType(
    {EntryKind.ADVANCE: +1, EntryKind.REIMBURSEMENT: -1}
)
"""How each kind moves the outstanding amount, per fen."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: str
    kind: EntryKind
    key: LedgerKey
    amount: Amount
    booked_on: date
    """The day the entry is booked: the advance's own day; for a reimbursement that day or later."""

    def __post_init__(self) -> None:
        if not isinstance(self.entry_id, str) or not 0 < len(self.entry_id) <= MAX_ENTRY_ID:
            raise ValidationError(f"entry id {self.entry_id!r} must be 1..{MAX_ENTRY_ID} chars")
        if not isinstance(self.amount, Amount) or not self.amount.is_positive():
            raise AmountInvalid(f"{self.kind} {self.entry_id}: the amount must be > 0")
        if self.kind is EntryKind.ADVANCE and self.booked_on != self.key.day:
            raise ValidationError(
                f"advance {self.entry_id} is booked on its own day {self.key.day}")
        if self.booked_on < self.key.day:
            raise ValidationError(
                f"reimbursement {self.entry_id} on {self.booked_on} precedes the advance day "
                f"{self.key.day}")

    @property
    def signed_fen(self) -> int:
        return SIGN[self.kind] * self.amount.fen


@dataclass(frozen=True, slots=True)
class KeyBalance:
    advanced: Amount
    reimbursed: Amount

    @property
    def outstanding(self) -> Amount:
        """What the treasury still owes the bank for this key (应收清算款)."""
        return self.advanced - self.reimbursed


@dataclass(frozen=True, slots=True)
class DayStatement:
    """One day of the ledger over all keys, by booking day (日报)."""

    day: date
    opening: Amount
    advanced: Amount
    reimbursed: Amount

    @property
    def closing(self) -> Amount:
        return self.opening + self.advanced - self.reimbursed


class BankLedger:
    """The entries, and the balances they add up to; every balance is derived from entries."""

    def __init__(self, entries: Iterable[LedgerEntry] = ()) -> None:
        self._entries: dict[str, LedgerEntry] = {}
        self._advanced: dict[LedgerKey, int] = {}
        self._reimbursed: dict[LedgerKey, int] = {}
        for entry in entries:
            self.record(entry)

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        return tuple(self._entries.values())

    def record(self, entry: LedgerEntry) -> bool:
        """Book ``entry``; False when the very same entry was booked already."""
        earlier = self._entries.get(entry.entry_id)
        if earlier is not None:
            if earlier != entry:
                raise LedgerEntryConflict(
                    f"entry {entry.entry_id} was booked as {earlier.kind} of {earlier.amount} "
                    f"for {earlier.key}", entry_id=entry.entry_id)
            return False
        if entry.kind is EntryKind.REIMBURSEMENT:
            outstanding = self.balance(entry.key).outstanding
            if entry.amount > outstanding:
                raise ReimbursementExceedsOutstanding(
                    f"reimbursement {entry.entry_id} of {entry.amount} exceeds the outstanding "
                    f"{outstanding} of {entry.key}",
                    key=str(entry.key), amount=entry.amount.wire(),
                    outstanding=outstanding.wire())
            self._reimbursed[entry.key] = self._reimbursed.get(entry.key, 0) + entry.amount.fen
        else:
            self._advanced[entry.key] = self._advanced.get(entry.key, 0) + entry.amount.fen
        self._entries[entry.entry_id] = entry
        return True

    def advance(self, entry_id: str, key: LedgerKey, amount: Amount) -> LedgerEntry:
        """垫付 of ``amount`` on ``key.day``."""
        entry = LedgerEntry(entry_id, EntryKind.ADVANCE, key, amount, key.day)
        self.record(entry)
        return entry

    def reimburse(self, entry_id: str, key: LedgerKey, amount: Amount,
                  booked_on: date | None = None) -> LedgerEntry:
        """清算回款 of ``amount`` for the advances of ``key``, booked on ``booked_on``."""
        entry = LedgerEntry(entry_id, EntryKind.REIMBURSEMENT, key, amount,
                            booked_on or key.day)
        self.record(entry)
        return entry

    def balance(self, key: LedgerKey) -> KeyBalance:
        return KeyBalance(Amount(self._advanced.get(key, 0)), Amount(self._reimbursed.get(key, 0)))

    def balances(
        self, *, day: date | None = None, admdiv: str | None = None, open_only: bool = False
    ) -> dict[LedgerKey, KeyBalance]:
        """Balances of every key (sorted), optionally of one advance day, division, or only
        those with something outstanding."""
        result = {}
        for key in sorted(self._advanced):
            if (day is not None and key.day != day) or (admdiv is not None
                                                        and key.admdiv != admdiv):
                continue
            bal = self.balance(key)
            if open_only and not bal.outstanding.is_positive():
                continue
            result[key] = bal
        return result

    def outstanding(self) -> Amount:
        """Everything the treasury owes the bank now."""
        return Amount(sum(self._advanced.values()) - sum(self._reimbursed.values()))

    def statement(self, day: date) -> DayStatement:
        """Opening, advances, reimbursements and closing of ``day`` by booking day."""
        opening = advanced = reimbursed = 0
        for e in self._entries.values():
            if e.booked_on < day:
                opening += e.signed_fen
            elif e.booked_on == day:
                if e.kind is EntryKind.ADVANCE:
                    advanced += e.amount.fen
                else:
                    reimbursed += e.amount.fen
        return DayStatement(day, Amount(opening), Amount(advanced), Amount(reimbursed))
