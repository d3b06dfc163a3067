"""Payee account checks (收款人账户信息自动校验) — run on every voucher before it is accepted.

The seed (000) asks that the system "自动判断处理收付款账户信息": the payee's account number,
name and bank on a voucher are compared with a reviewed account directory, and the result is kept
with the voucher and shown to the reviewer before sealing.

Account numbers. Chinese bank account numbers have *no* universal check digit: each bank chooses
its own length and internal structure, and several lengths coexist inside one bank (corporate
accounts, old accounts, debit cards). So the format check here is, in order:

1. generic and blocking: digits only, 10 to 32 of them (``MIN_ACCOUNT_DIGITS`` .. ``MAX_...``);
2. per bank, from :data:`BANK_FORMATS` — a small, illustrative table keyed by the three-digit
   bank category code that opens the twelve-digit CNAPS bank number (行号, e.g. ``102`` ICBC).
   A length outside the bank's known lengths is a *warning* unless the caller passes
   ``strict=True``: a deployment that has confirmed its banks' formats may make it blocking, but
   a wrong table must never stop a real payment by default;
3. the Luhn check digit (ISO/IEC 7812), only for numbers that look like UnionPay cards (``62``
   followed by 14 to 17 digits — personal debit cards, which do carry a Luhn digit). A failure is
   a warning, because a corporate account may happen to start with ``62`` too.

Names are compared by :func:`name_match`: EXACT when identical, PARTIAL when equal after
normalizing width, spaces, brackets and company-form suffixes, or when one contains the other,
NONE otherwise. PARTIAL never blocks; it is flagged for the reviewer.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from guoku.domain.errors import ValidationError

MIN_ACCOUNT_DIGITS: Final = 10
MAX_ACCOUNT_DIGITS: Final = 32
MAX_NAME_CHARS: Final = 60
"""As ``PayeeAcctName`` / ``PayeeAcctBankName`` in fields.py."""
BANK_NO_DIGITS: Final = 12
"""CNAPS bank number (行号): 3 bank category + 4 city + 4 branch + 1 check."""
MIN_CONTAINED_CHARS: Final = 4
"""A name contained in another counts as PARTIAL only when it keeps this many characters after
normalization: "张三" inside "张三丰" is a different person, not a partial match."""

_DIGITS = re.compile(r"[0-9]+")
_UNIONPAY_CARD = re.compile(r"62[0-9]{14,17}")


@dataclass(frozen=True, slots=True)
class BankFormat:
    """What a bank's account numbers look like — illustrative, configurable, not authoritative."""

    code: str
    """Bank category code: the first three digits of its CNAPS bank numbers."""
    name: str
    lengths: frozenset[int]
    keywords: tuple[str, ...]
    """Words that identify the bank in a branch name such as "中国工商银行昆明分行"."""


BANK_FORMATS: Final[Mapping[str, BankFormat]] = {
    f.code: f
    for f in (
        BankFormat("102", "中国工商银行", frozenset({19}), ("工商银行", "工行")),
        BankFormat("103", "中国农业银行", frozenset({15, 17, 19, 20}), ("农业银行", "农行")),
        BankFormat("104", "中国银行", frozenset({12, 17, 18, 19}), ("中国银行", "中行")),
        BankFormat("105", "中国建设银行", frozenset({16, 19, 20}), ("建设银行", "建行")),
        BankFormat("301", "交通银行", frozenset({17, 19, 21}), ("交通银行", "交行")),
        BankFormat("403", "中国邮政储蓄银行", frozenset({18, 19}), ("邮政储蓄", "邮储")),
    )
}
"""Keyword order matters only for "中国银行", which no other bank's full name contains."""


class NameMatch(enum.StrEnum):
    EXACT = "exact"
    """完全一致 — identical (surrounding whitespace aside)."""
    PARTIAL = "partial"
    """部分一致 — same after normalization, or one name contains the other: the reviewer decides."""
    NONE = "none"
    """不一致."""


class Severity(enum.StrEnum):
    BLOCKING = "blocking"
    """The voucher is not accepted while this problem stands."""
    WARNING = "warning"
    """Shown to the reviewer before sealing; does not stop the voucher."""


@dataclass(frozen=True, slots=True)
class AccountProblem:
    code: str
    """Stable English code, e.g. ``ACCOUNT_NOT_FOUND``."""
    message: str
    """Chinese, as shown to the reviewer."""
    severity: Severity = Severity.BLOCKING


class KnownAccount(Protocol):
    """What a directory (the reviewed account directory, or a core banking system) knows."""

    @property
    def account_no(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def bank_name(self) -> str: ...

    @property
    def bank_no(self) -> str | None: ...

    @property
    def closed(self) -> bool: ...


AccountLookup = Callable[[str], KnownAccount | None]
"""Account number -> the directory's record, or None when the directory has no such account."""


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """The result of checking a voucher's payee against the directory, kept with the voucher."""

    account_no: str
    account_found: bool
    name_match: NameMatch
    bank_match: NameMatch
    problems: tuple[AccountProblem, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """No blocking problem: the voucher may be accepted."""
        return not any(p.severity is Severity.BLOCKING for p in self.problems)

    @property
    def needs_attention(self) -> bool:
        """Something (a warning at least) that the reviewer should look at before sealing."""
        return bool(self.problems)

    def summary(self) -> str:
        """One line for the reviewer's screen."""
        found = "账户存在" if self.account_found else "账户不存在"
        head = f"{found}；户名{_MATCH_ZH[self.name_match]}；开户行{_MATCH_ZH[self.bank_match]}"
        if not self.problems:
            return head
        return head + "；" + "；".join(p.message for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_no": self.account_no,
            "account_found": self.account_found,
            "name_match": self.name_match.value,
            "bank_match": self.bank_match.value,
            "passed": self.passed,
            "problems": [
                {"code": p.code, "message": p.message, "severity": p.severity.value}
                for p in self.problems
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountCheck:
        return cls(
            account_no=str(data["account_no"]),
            account_found=bool(data["account_found"]),
            name_match=NameMatch(data["name_match"]),
            bank_match=NameMatch(data["bank_match"]),
            problems=tuple(
                AccountProblem(str(p["code"]), str(p["message"]), Severity(p["severity"]))
                for p in data["problems"]
            ),
        )


_MATCH_ZH: Final = {NameMatch.EXACT: "一致", NameMatch.PARTIAL: "部分一致",
                    NameMatch.NONE: "不一致"}


# --- account numbers and banks ---------------------------------------------------------------


def bank_by_no(bank_no: str | None, formats: Mapping[str, BankFormat] = BANK_FORMATS,
               ) -> BankFormat | None:
    """The bank whose category code opens the CNAPS number ``bank_no``."""
    if not bank_no or len(bank_no) < 3:
        return None
    return formats.get(bank_no[:3])


def bank_by_name(bank_name: str | None, formats: Mapping[str, BankFormat] = BANK_FORMATS,
                 ) -> BankFormat | None:
    """The bank a branch name such as "中国工商银行昆明分行" belongs to, if the table knows it."""
    if not bank_name:
        return None
    text = _normalize(bank_name)
    for fmt in formats.values():
        if any(keyword in text for keyword in fmt.keywords):
            return fmt
    return None


def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812 check digit: double every second digit from the right, sum mod 10 == 0."""
    if not _DIGITS.fullmatch(digits):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def bank_no_problem(bank_no: str | None) -> AccountProblem | None:
    if bank_no and not (len(bank_no) == BANK_NO_DIGITS and _DIGITS.fullmatch(bank_no)):
        return AccountProblem("BANK_NO_FORMAT", f"收款行行号{bank_no}应为12位数字")
    return None


def account_no_problems(
    account_no: str, bank: BankFormat | None = None, *, strict: bool = False
) -> list[AccountProblem]:
    """Format problems of ``account_no``; ``bank`` (when known) adds its length rule."""
    if not account_no:
        return [AccountProblem("ACCOUNT_NO_MISSING", "收款人账号为空")]
    if not _DIGITS.fullmatch(account_no):
        return [AccountProblem("ACCOUNT_NO_FORMAT", f"收款人账号{account_no}只能由数字组成")]
    if not MIN_ACCOUNT_DIGITS <= len(account_no) <= MAX_ACCOUNT_DIGITS:
        return [AccountProblem(
            "ACCOUNT_NO_FORMAT",
            f"收款人账号{account_no}长度{len(account_no)}位，应为"
            f"{MIN_ACCOUNT_DIGITS}至{MAX_ACCOUNT_DIGITS}位",
        )]
    problems = []
    if bank is not None and len(account_no) not in bank.lengths:
        known = "、".join(str(n) for n in sorted(bank.lengths))
        problems.append(AccountProblem(
            "ACCOUNT_NO_LENGTH",
            f"{bank.name}账号通常为{known}位，此账号为{len(account_no)}位",
            Severity.BLOCKING if strict else Severity.WARNING,
        ))
    if _UNIONPAY_CARD.fullmatch(account_no) and not luhn_valid(account_no):
        problems.append(AccountProblem(
            "ACCOUNT_NO_CHECK_DIGIT", f"账号{account_no}形似银联卡号但校验位不符",
            Severity.WARNING,
        ))
    return problems


def validate_account_no(account_no: str, bank_no: str | None = None,
                        bank_name: str | None = None) -> None:
    """Raise :class:`ValidationError` on a blocking format problem (directory maintenance)."""
    bank = bank_by_no(bank_no) or bank_by_name(bank_name)
    found = account_no_problems(account_no, bank)
    no_problem = bank_no_problem(bank_no)
    if no_problem is not None:
        found.append(no_problem)
    blocking = [p for p in found if p.severity is Severity.BLOCKING]
    if blocking:
        raise ValidationError(blocking[0].message, problem=blocking[0].code,
                              account_no=account_no)


# --- names -----------------------------------------------------------------------------------

_DROP: Final = frozenset(" \t\r\n\u3000()（）[]【】〔〕「」『』《》<>·•・.")
"""Spaces, brackets and middle dots ("买买提·艾力") carry no meaning in a name comparison."""

_COMPANY_FORMS: Final = ("股份有限公司", "有限责任公司", "有限公司", "责任公司")
"""Longest first; all become "公司", so 有限公司 and 有限责任公司 compare as PARTIAL."""


def _normalize(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    return "".join(ch for ch in text if ch not in _DROP)


def _core(name: str) -> str:
    text = _normalize(name)
    for form in _COMPANY_FORMS:
        text = text.replace(form, "公司")
    return text


def name_match(expected: str | None, actual: str | None) -> NameMatch:
    """Compare the directory's name (``expected``) with the voucher's (``actual``)."""
    if not expected or not actual:
        return NameMatch.NONE
    if expected.strip() == actual.strip():
        return NameMatch.EXACT
    a, b = _core(expected), _core(actual)
    if not a or not b:
        return NameMatch.NONE
    if a == b:
        return NameMatch.PARTIAL
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= MIN_CONTAINED_CHARS and shorter in longer:
        return NameMatch.PARTIAL
    return NameMatch.NONE


def bank_match(
    expected_name: str | None, expected_no: str | None,
    actual_name: str | None, actual_no: str | None,
) -> NameMatch:
    """Compare the directory's bank (expected) with the voucher's (actual).

    Bank numbers decide when both sides have one: equal is EXACT, the same bank's other branch
    PARTIAL, another bank NONE. Otherwise the branch names are compared, and two different
    branch names of one bank are PARTIAL.
    """
    if expected_no and actual_no:
        if expected_no == actual_no:
            return NameMatch.EXACT
        return NameMatch.PARTIAL if expected_no[:3] == actual_no[:3] else NameMatch.NONE
    by_name = name_match(expected_name, actual_name)
    if by_name is not NameMatch.NONE:
        return by_name
    mine = bank_by_name(expected_name) or bank_by_no(expected_no)
    theirs = bank_by_name(actual_name) or bank_by_no(actual_no)
    if mine is not None and theirs is not None and mine.code == theirs.code:
        return NameMatch.PARTIAL
    return NameMatch.NONE


# --- the check -------------------------------------------------------------------------------


def check_payee(
    header: Mapping[str, str | None], lookup: AccountLookup, *, strict: bool = False
) -> AccountCheck:
    """Check ``PayeeAcctNo/PayeeAcctName/PayeeAcctBankName/PayeeAcctBankNo`` of a voucher."""
    account_no = (header.get("PayeeAcctNo") or "").strip()
    name = header.get("PayeeAcctName") or ""
    bank_name = header.get("PayeeAcctBankName") or ""
    bank_no = (header.get("PayeeAcctBankNo") or "").strip() or None

    problems = account_no_problems(account_no, bank_by_no(bank_no) or bank_by_name(bank_name),
                                   strict=strict)
    no_problem = bank_no_problem(bank_no)
    if no_problem is not None:
        problems.append(no_problem)
    if any(p.severity is Severity.BLOCKING for p in problems):
        return AccountCheck(account_no, False, NameMatch.NONE, NameMatch.NONE, tuple(problems))

    record = lookup(account_no)
    if record is None:
        problems.append(AccountProblem("ACCOUNT_NOT_FOUND", f"账户信息库中没有账号{account_no}"))
        return AccountCheck(account_no, False, NameMatch.NONE, NameMatch.NONE, tuple(problems))
    if record.closed:
        problems.append(AccountProblem("ACCOUNT_CLOSED", f"账号{account_no}已销户"))

    names = name_match(record.name, name)
    if names is NameMatch.NONE:
        problems.append(AccountProblem(
            "NAME_MISMATCH", f"收款人全称“{name}”与账户户名“{record.name}”不一致"))
    elif names is NameMatch.PARTIAL:
        problems.append(AccountProblem(
            "NAME_PARTIAL", f"收款人全称“{name}”与账户户名“{record.name}”部分一致，请核对",
            Severity.WARNING))

    banks = bank_match(record.bank_name, record.bank_no, bank_name, bank_no)
    if banks is NameMatch.NONE:
        problems.append(AccountProblem(
            "BANK_MISMATCH", f"收款人开户银行“{bank_name}”与账户开户行“{record.bank_name}”不符"))
    elif banks is NameMatch.PARTIAL:
        problems.append(AccountProblem(
            "BANK_PARTIAL",
            f"收款人开户银行“{bank_name}”与账户开户行“{record.bank_name}”部分一致，请核对",
            Severity.WARNING))
    return AccountCheck(account_no, True, names, banks, tuple(problems))
