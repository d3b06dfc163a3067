"""The agent bank's core banking system (核心业务系统) behind a small adapter.

The voucher library never moves money itself. When the agent bank pays a payee it asks its core
banking system through :class:`CoreBanking`: look an account up, pay from the bank's clearing
(advance, 垫付) account, read a balance. A real core system plugs in behind this protocol;
:class:`SimulatedCoreBanking` stands in for it in the demo and the tests.

``pay`` is idempotent by ``payment_id``: a payment retried after a lost reply returns the first
answer and never pays twice. Outcomes:

* PAID — the clearing account was debited and the payee credited;
* a *definitive* refusal (ACCOUNT_NOT_FOUND, ACCOUNT_CLOSED, NAME_MISMATCH) — recorded, and every
  retry of that payment id gets the same refusal: the voucher goes back with the reason;
* a *transient* refusal (INSUFFICIENT_FUNDS on the clearing account) — not recorded, so the same
  payment id may be retried once the clearing account has been funded;
* :class:`CoreUnavailable` raised — the outcome is unknown to the caller; retry with the same id.

The simulator is deterministic (no clock, no randomness: references are a sequence) and keeps its
state in memory with a JSON snapshot (:meth:`SimulatedCoreBanking.save` / ``load``).
"""

from __future__ import annotations

import enum
import json
import os
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

from guoku.domain.accounts import NameMatch, name_match
from guoku.domain.errors import AmountInvalid, Conflict, GuokuError, NotFound, ValidationError
from guoku.domain.money import Amount
from guoku.transport.ports import TransientError

MAX_PAYMENT_ID: Final = 64
SNAPSHOT_FORMAT: Final = 1
ZERO: Final = Amount(0)


class AccountStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    """销户 — payments to it are refused."""


class Failure(enum.StrEnum):
    """Why a payment did not go through; the values are the stable English codes."""

    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    NAME_MISMATCH = "NAME_MISMATCH"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    CORE_UNAVAILABLE = "CORE_UNAVAILABLE"
    """Only through ``fail_next``: the core system does not answer; nothing happened."""
    REPLY_LOST = "REPLY_LOST"
    """Only through ``fail_next``: the payment happened but the reply was lost on the way."""


REASONS_ZH: Final[Mapping[Failure, str]] = {
    Failure.ACCOUNT_NOT_FOUND: "收款账户不存在",
    Failure.ACCOUNT_CLOSED: "收款账户已销户",
    Failure.NAME_MISMATCH: "收款人户名与账户名称不符",
    Failure.INSUFFICIENT_FUNDS: "清算（垫付）账户余额不足",
    Failure.CORE_UNAVAILABLE: "核心系统无响应",
    Failure.REPLY_LOST: "核心系统应答丢失",
}

DEFINITIVE: Final = frozenset({Failure.ACCOUNT_NOT_FOUND, Failure.ACCOUNT_CLOSED,
                               Failure.NAME_MISMATCH})
"""Refusals that are kept and replayed for the payment id; the others may be retried."""

_NAME_RANK: Final = {NameMatch.NONE: 0, NameMatch.PARTIAL: 1, NameMatch.EXACT: 2}


# --- errors ----------------------------------------------------------------------------------


class PaymentRefused(GuokuError):
    """The bank refused to pay; ``reason`` is the Chinese text that goes back on the voucher."""

    code = "PAYMENT_REFUSED"
    failure: ClassVar[Failure | None] = None


class PayeeAccountNotFound(PaymentRefused):
    code = "ACCOUNT_NOT_FOUND"
    failure = Failure.ACCOUNT_NOT_FOUND


class AccountClosed(PaymentRefused):
    code = "ACCOUNT_CLOSED"
    failure = Failure.ACCOUNT_CLOSED


class NameMismatch(PaymentRefused):
    code = "NAME_MISMATCH"
    failure = Failure.NAME_MISMATCH


class InsufficientFunds(PaymentRefused):
    code = "INSUFFICIENT_FUNDS"
    failure = Failure.INSUFFICIENT_FUNDS


REFUSAL_ERRORS: Final[Mapping[Failure, type[PaymentRefused]]] = {
    e.failure: e for e in (PayeeAccountNotFound, AccountClosed, NameMismatch, InsufficientFunds)
    if e.failure is not None
}


class CoreUnavailable(TransientError):
    """The core system did not answer: the outcome is unknown; retry with the same payment id."""

    code = "CORE_UNAVAILABLE"


class PaymentIdReused(Conflict):
    """A payment id came back with a different payer, payee or amount."""

    code = "PAYMENT_ID_REUSED"


class ClearingAccountUnknown(NotFound):
    code = "CLEARING_ACCOUNT_UNKNOWN"


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account as the core system knows it (satisfies ``domain.accounts.KnownAccount``)."""

    account_no: str
    name: str
    bank_name: str
    bank_no: str | None = None
    status: AccountStatus = AccountStatus.OPEN
    overdraft_limit: Amount = ZERO
    """How far below zero a clearing account may go (an agreed advance line); 0 = none."""

    @property
    def closed(self) -> bool:
        return self.status is AccountStatus.CLOSED


class PaymentStatus(enum.StrEnum):
    PAID = "paid"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_id: str
    status: PaymentStatus
    payer_account: str
    payee_account_no: str
    payee_name: str
    amount: Amount
    failure: Failure | None = None
    reason: str = ""
    """Chinese reason of a refusal, e.g. 收款账户已销户."""
    core_ref: str | None = None
    """The core system's reference of a paid payment (流水号)."""
    replayed: bool = False
    """True when this is the stored answer to an earlier call with the same payment id."""

    @property
    def paid(self) -> bool:
        return self.status is PaymentStatus.PAID

    @property
    def code(self) -> str | None:
        return None if self.failure is None else self.failure.value

    def raise_for_refusal(self) -> PaymentResult:
        """Return self when paid; raise the typed refusal otherwise."""
        if self.paid:
            return self
        assert self.failure is not None
        error = REFUSAL_ERRORS.get(self.failure, PaymentRefused)
        raise error(self.reason, payment_id=self.payment_id, failure=self.code)

    def same_request(self, payer: str, payee_no: str, payee_name: str, amount: Amount) -> bool:
        return (self.payer_account, self.payee_account_no, self.payee_name, self.amount) == (
            payer, payee_no, payee_name, amount)


class CoreBanking(Protocol):
    """The adapter a real core banking system implements."""

    def lookup(self, account_no: str) -> AccountRecord | None:
        """The account, open or closed, or None when the bank knows no such account."""
        ...

    def pay(
        self, payment_id: str, payer_clearing_account: str, payee_account_no: str,
        payee_name: str, amount: Amount,
    ) -> PaymentResult:
        """Pay once per ``payment_id``; raise :class:`CoreUnavailable` when the outcome is
        unknown."""
        ...

    def balance(self, account_no: str) -> Amount: ...


# --- the simulator ---------------------------------------------------------------------------


class SimulatedCoreBanking:
    """A deterministic core banking system with configurable failures, for the demo and tests.

    Failures are configured the way they happen: close an account (``close``), open a payee under
    another name than the voucher's (name mismatch), leave the clearing account short
    (insufficient funds) — or force the next call's outcome with :meth:`fail_next`.
    ``min_name_match`` is the bank's name rule: EXACT (default) refuses any difference, PARTIAL
    accepts width, bracket and company-form differences.
    """

    def __init__(self, *, min_name_match: NameMatch = NameMatch.EXACT,
                 ref_prefix: str = "CB") -> None:
        self.min_name_match = min_name_match
        self.ref_prefix = ref_prefix
        self._lock = threading.RLock()
        self._accounts: dict[str, AccountRecord] = {}
        self._balances: dict[str, int] = {}
        self._payments: dict[str, PaymentResult] = {}
        self._credits: dict[str, tuple[str, int]] = {}
        self._seq = 0
        self._faults: deque[Failure] = deque()

    # configuration ---------------------------------------------------------------------------

    def open_account(
        self, account_no: str, name: str, bank_name: str, bank_no: str | None = None, *,
        balance: Amount = ZERO, overdraft_limit: Amount = ZERO,
        status: AccountStatus = AccountStatus.OPEN,
    ) -> AccountRecord:
        if not account_no or not name:
            raise ValidationError("an account needs a number and a name")
        if overdraft_limit.fen < 0:
            raise AmountInvalid("an overdraft limit is never negative")
        record = AccountRecord(account_no, name, bank_name, bank_no, status, overdraft_limit)
        with self._lock:
            if account_no in self._accounts:
                raise Conflict(f"account {account_no} exists already", account_no=account_no)
            self._accounts[account_no] = record
            self._balances[account_no] = balance.fen
        return record

    def close(self, account_no: str) -> None:
        self._set(account_no, status=AccountStatus.CLOSED)

    def reopen(self, account_no: str) -> None:
        self._set(account_no, status=AccountStatus.OPEN)

    def rename(self, account_no: str, name: str) -> None:
        self._set(account_no, name=name)

    def _set(self, account_no: str, **changes: Any) -> None:
        with self._lock:
            self._accounts[account_no] = replace(self._record(account_no), **changes)

    def fail_next(self, kind: Failure) -> None:
        """Force the outcome of the next ``pay`` call (one-shot; several calls queue up)."""
        with self._lock:
            self._faults.append(Failure(kind))

    def credit(self, credit_id: str, account_no: str, amount: Amount) -> None:
        """Book money arriving on an account — e.g. the treasury's reimbursement (清算回款) of
        the clearing account. Idempotent by ``credit_id``."""
        if not amount.is_positive():
            raise AmountInvalid(f"a credit must be positive, got {amount}")
        with self._lock:
            self._record(account_no)
            earlier = self._credits.get(credit_id)
            if earlier is not None:
                if earlier != (account_no, amount.fen):
                    raise PaymentIdReused(f"credit {credit_id} was booked with other values",
                                          credit_id=credit_id)
                return
            self._credits[credit_id] = (account_no, amount.fen)
            self._balances[account_no] += amount.fen

    # the protocol ----------------------------------------------------------------------------

    def lookup(self, account_no: str) -> AccountRecord | None:
        with self._lock:
            return self._accounts.get(account_no)

    def balance(self, account_no: str) -> Amount:
        with self._lock:
            self._record(account_no)
            return Amount(self._balances[account_no])

    def payments(self) -> list[PaymentResult]:
        """Every recorded outcome (paid and definitive refusals), in the order they happened."""
        with self._lock:
            return list(self._payments.values())

    def pay(
        self, payment_id: str, payer_clearing_account: str, payee_account_no: str,
        payee_name: str, amount: Amount,
    ) -> PaymentResult:
        if not payment_id or len(payment_id) > MAX_PAYMENT_ID:
            raise ValidationError(f"payment id must have 1..{MAX_PAYMENT_ID} characters")
        if not amount.is_positive():
            raise AmountInvalid(f"a payment must be positive, got {amount}")
        if payee_account_no == payer_clearing_account:
            raise ValidationError("a payment never goes from the clearing account to itself")
        with self._lock:
            earlier = self._payments.get(payment_id)
            if earlier is not None:
                if not earlier.same_request(payer_clearing_account, payee_account_no,
                                            payee_name, amount):
                    raise PaymentIdReused(
                        f"payment {payment_id} was made with another payer, payee or amount",
                        payment_id=payment_id)
                return replace(earlier, replayed=True)
            fault = self._faults.popleft() if self._faults else None
            if fault is Failure.CORE_UNAVAILABLE:
                raise CoreUnavailable(REASONS_ZH[fault], payment_id=payment_id)
            clearing = self._accounts.get(payer_clearing_account)
            if clearing is None:
                raise ClearingAccountUnknown(
                    f"no clearing account {payer_clearing_account}",
                    account_no=payer_clearing_account)
            base = PaymentResult(payment_id, PaymentStatus.REFUSED, payer_clearing_account,
                                 payee_account_no, payee_name, amount)
            failure = fault if fault in REFUSAL_ERRORS else self._refusal(
                clearing, payee_account_no, payee_name, amount)
            if failure is not None:
                result = replace(base, failure=failure, reason=self._reason(failure, clearing))
                if failure in DEFINITIVE:
                    self._payments[payment_id] = result
                if fault is Failure.REPLY_LOST:
                    raise CoreUnavailable(REASONS_ZH[fault], payment_id=payment_id)
                return result
            self._seq += 1
            self._balances[payer_clearing_account] -= amount.fen
            self._balances[payee_account_no] += amount.fen
            result = replace(base, status=PaymentStatus.PAID,
                             core_ref=f"{self.ref_prefix}{self._seq:012d}")
            self._payments[payment_id] = result
            if fault is Failure.REPLY_LOST:
                raise CoreUnavailable(REASONS_ZH[fault], payment_id=payment_id)
            return result

    def _refusal(self, clearing: AccountRecord, payee_no: str, payee_name: str,
                 amount: Amount) -> Failure | None:
        if clearing.closed:
            return Failure.ACCOUNT_CLOSED
        payee = self._accounts.get(payee_no)
        if payee is None:
            return Failure.ACCOUNT_NOT_FOUND
        if payee.closed:
            return Failure.ACCOUNT_CLOSED
        if _NAME_RANK[name_match(payee.name, payee_name)] < _NAME_RANK[self.min_name_match]:
            return Failure.NAME_MISMATCH
        if self._balances[clearing.account_no] + clearing.overdraft_limit.fen < amount.fen:
            return Failure.INSUFFICIENT_FUNDS
        return None

    @staticmethod
    def _reason(failure: Failure, clearing: AccountRecord) -> str:
        if failure is Failure.ACCOUNT_CLOSED and clearing.closed:
            return f"清算（垫付）账户{clearing.account_no}已销户"
        return REASONS_ZH[failure]

    def _record(self, account_no: str) -> AccountRecord:
        record = self._accounts.get(account_no)
        if record is None:
            raise NotFound(f"no account {account_no}", account_no=account_no)
        return record

    # snapshot --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON data (pending ``fail_next`` faults are not kept)."""
        with self._lock:
            return {
                "format": SNAPSHOT_FORMAT,
                "min_name_match": self.min_name_match.value,
                "ref_prefix": self.ref_prefix,
                "seq": self._seq,
                "accounts": [_account_json(r, self._balances[r.account_no])
                             for r in self._accounts.values()],
                "payments": [_payment_json(p) for p in self._payments.values()],
                "credits": {k: [a, fen] for k, (a, fen) in self._credits.items()},
            }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> SimulatedCoreBanking:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValidationError(f"unknown core banking snapshot format {data.get('format')!r}")
        core = cls(min_name_match=NameMatch(data["min_name_match"]),
                   ref_prefix=str(data["ref_prefix"]))
        core._seq = int(data["seq"])
        for a in data["accounts"]:
            core.open_account(
                a["account_no"], a["name"], a["bank_name"], a["bank_no"],
                balance=Amount(int(a["balance_fen"])),
                overdraft_limit=Amount(int(a["overdraft_limit_fen"])),
                status=AccountStatus(a["status"]),
            )
        for p in _payments_from_json(data["payments"]):
            core._payments[p.payment_id] = p
        core._credits = {k: (str(v[0]), int(v[1])) for k, v in data["credits"].items()}
        return core

    def save(self, path: Path) -> None:
        """Write the snapshot atomically (temporary file, fsync, rename)."""
        text = json.dumps(self.snapshot(), ensure_ascii=False, indent=1, sort_keys=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> SimulatedCoreBanking:
        return cls.restore(json.loads(path.read_text(encoding="utf-8")))


def _account_json(r: AccountRecord, balance_fen: int) -> dict[str, Any]:
    return {"account_no": r.account_no, "name": r.name, "bank_name": r.bank_name,
            "bank_no": r.bank_no, "status": r.status.value, "balance_fen": balance_fen,
            "overdraft_limit_fen": r.overdraft_limit.fen}


def _payment_json(p: PaymentResult) -> dict[str, Any]:
    return {"payment_id": p.payment_id, "status": p.status.value, "payer": p.payer_account,
            "payee_account_no": p.payee_account_no, "payee_name": p.payee_name,
            "amount_fen": p.amount.fen, "failure": p.code, "reason": p.reason,
            "core_ref": p.core_ref}


def _payments_from_json(items: Iterable[Mapping[str, Any]]) -> Iterable[PaymentResult]:
    for p in items:
        yield PaymentResult(
            payment_id=p["payment_id"], status=PaymentStatus(p["status"]), payer_account=p["payer"],
            payee_account_no=p["payee_account_no"], payee_name=p["payee_name"],
            amount=Amount(int(p["amount_fen"])),
            failure=None if p["failure"] is None else Failure(p["failure"]),
            reason=p["reason"], core_ref=p["core_ref"],
        )
