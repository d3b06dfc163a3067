"""Payee account checks: number formats, name and bank matching, the check of a voucher."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.domain.accounts import (
    BANK_FORMATS,
    MAX_ACCOUNT_DIGITS,
    MIN_ACCOUNT_DIGITS,
    AccountCheck,
    AccountLookup,
    KnownAccount,
    NameMatch,
    Severity,
    account_no_problems,
    bank_by_name,
    bank_by_no,
    bank_match,
    check_payee,
    luhn_valid,
    name_match,
    validate_account_no,
)
from guoku.domain.errors import ValidationError
from guoku.xml.samples import sample_document

ICBC = BANK_FORMATS["102"]


@dataclass(frozen=True)
class Known:
    account_no: str
    name: str
    bank_name: str
    bank_no: str | None = None
    closed: bool = False


PAYEE = Known("2502010009200012345", "昆明市文具有限公司", "中国工商银行昆明分行", "102731000019")


def _lookup(*known: Known) -> AccountLookup:
    table = {k.account_no: k for k in known}

    def find(account_no: str) -> KnownAccount | None:
        return table.get(account_no)

    return find


def _header(**changes: str) -> dict[str, str | None]:
    header: dict[str, str | None] = {
        "PayeeAcctNo": PAYEE.account_no,
        "PayeeAcctName": PAYEE.name,
        "PayeeAcctBankName": PAYEE.bank_name,
        "PayeeAcctBankNo": PAYEE.bank_no,
    }
    header.update(changes)
    return header


def _codes(check: AccountCheck) -> list[str]:
    return [p.code for p in check.problems]


# --- account numbers -------------------------------------------------------------------------


def test_an_account_number_of_10_to_32_digits_is_well_formed() -> None:
    assert account_no_problems("1" * MIN_ACCOUNT_DIGITS) == []
    assert account_no_problems("1" * MAX_ACCOUNT_DIGITS) == []


@pytest.mark.parametrize("bad", ["123456789", "1" * 33, "25020100092000123A5", "2502 0100 0920",
                                 "２５０２０１０００９２０００１２３４５"])
def test_short_long_or_non_digit_account_numbers_are_blocking_problems(bad: str) -> None:
    problems = account_no_problems(bad)
    assert [p.code for p in problems] == ["ACCOUNT_NO_FORMAT"]
    assert problems[0].severity is Severity.BLOCKING


def test_an_empty_account_number_is_missing() -> None:
    assert [p.code for p in account_no_problems("")] == ["ACCOUNT_NO_MISSING"]


def test_a_length_the_bank_does_not_use_is_a_warning_unless_strict() -> None:
    (loose,) = account_no_problems("25020100092000123", ICBC)
    assert (loose.code, loose.severity) == ("ACCOUNT_NO_LENGTH", Severity.WARNING)
    (strict,) = account_no_problems("25020100092000123", ICBC, strict=True)
    assert strict.severity is Severity.BLOCKING


def test_luhn_check_digit_follows_iso_7812() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert not luhn_valid("7992x398713")


def test_a_unionpay_card_number_with_a_wrong_check_digit_is_a_warning() -> None:
    good = "6222021234567890128"
    assert luhn_valid(good)
    assert account_no_problems(good, ICBC) == []
    bad = good[:-1] + "9"
    (problem,) = account_no_problems(bad, ICBC)
    assert (problem.code, problem.severity) == ("ACCOUNT_NO_CHECK_DIGIT", Severity.WARNING)


def test_a_bank_is_known_by_its_cnaps_category_code_or_its_name() -> None:
    assert bank_by_no("102731000019") is ICBC
    assert bank_by_name("中国工商银行昆明分行") is ICBC
    assert bank_by_name("中国银行昆明分行") is BANK_FORMATS["104"]
    assert bank_by_name("中国农业银行芒市支行") is BANK_FORMATS["103"]
    assert bank_by_name("富滇银行") is None
    assert bank_by_no("999731000019") is None


def test_directory_maintenance_refuses_a_malformed_number_or_bank_number() -> None:
    validate_account_no("2502010009200012345", "102731000019", "中国工商银行昆明分行")
    with pytest.raises(ValidationError):
        validate_account_no("2502-0100", None, "中国工商银行昆明分行")
    with pytest.raises(ValidationError):
        validate_account_no("2502010009200012345", "10273", "中国工商银行昆明分行")


# --- names -----------------------------------------------------------------------------------


def test_identical_names_match_exactly() -> None:
    assert name_match("昆明市文具有限公司", " 昆明市文具有限公司 ") is NameMatch.EXACT


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("云南某某科技（集团）有限公司", "云南某某科技(集团)有限公司"),
        ("云南某某科技（集团）有限公司", "云南某某科技集团有限公司"),
        ("昆明市文具有限公司", "昆明市文具有限责任公司"),
        ("昆明市文具有限公司", "昆明市文具 有限公司"),
        ("昆明市文具有限公司", "云南省昆明市文具有限公司"),
        ("ABC Trading Co", "ＡＢＣ Ｔｒａｄｉｎｇ Ｃｏ"),
        ("买买提·艾力", "买买提艾力"),
        ("张三", "张 三"),
    ],
)
def test_width_space_bracket_and_company_form_differences_are_partial(
    expected: str, actual: str
) -> None:
    assert name_match(expected, actual) is NameMatch.PARTIAL


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("昆明市文具有限公司", "大理市文具有限公司"),
        ("张三", "张三丰"),
        ("张三", "李四"),
        ("昆明市文具有限公司", ""),
        ("", "昆明市文具有限公司"),
        ("（）", "()"),
    ],
)
def test_different_names_do_not_match(expected: str, actual: str) -> None:
    assert name_match(expected, actual) is NameMatch.NONE


@given(st.text(max_size=30), st.text(max_size=30))
def test_name_match_is_symmetric(a: str, b: str) -> None:
    assert name_match(a, b) is name_match(b, a)


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip()))
def test_a_name_matches_itself_exactly(a: str) -> None:
    assert name_match(a, a) is NameMatch.EXACT


def test_banks_match_by_number_first_then_by_name() -> None:
    assert bank_match("工行昆明分行", "102731000019", "随便", "102731000019") is NameMatch.EXACT
    assert bank_match("x", "102731000019", "x", "102731000027") is NameMatch.PARTIAL
    assert bank_match("x", "102731000019", "x", "103731000010") is NameMatch.NONE
    km = "中国工商银行昆明分行"
    assert bank_match(km, None, "中国工商银行昆明分行", None) is NameMatch.EXACT
    assert bank_match(km, None, "中国工商银行盘龙支行", None) is NameMatch.PARTIAL
    assert bank_match(km, None, "中国农业银行昆明分行", None) is NameMatch.NONE
    assert bank_match("富滇银行", None, "华夏银行", None) is NameMatch.NONE


# --- the check of a voucher ------------------------------------------------------------------


def test_a_payee_found_with_the_same_name_and_bank_passes_cleanly() -> None:
    check = check_payee(_header(), _lookup(PAYEE))
    assert check == AccountCheck(PAYEE.account_no, True, NameMatch.EXACT, NameMatch.EXACT, ())
    assert check.passed and not check.needs_attention
    assert check.summary() == "账户存在；户名一致；开户行一致"


def test_the_sample_voucher_header_is_checked_by_its_spec_field_names() -> None:
    header = sample_document("5201").header
    check = check_payee(header, _lookup(PAYEE))
    assert check.passed and check.account_found


def test_an_unknown_account_is_not_found_and_blocks() -> None:
    check = check_payee(_header(), _lookup())
    assert not check.account_found and not check.passed
    assert _codes(check) == ["ACCOUNT_NOT_FOUND"]
    assert (check.name_match, check.bank_match) == (NameMatch.NONE, NameMatch.NONE)


def test_a_malformed_number_is_refused_without_asking_the_directory() -> None:
    asked: list[str] = []

    def spy(account_no: str) -> KnownAccount | None:
        asked.append(account_no)
        return None

    check = check_payee(_header(PayeeAcctNo="12AB"), spy)
    assert _codes(check) == ["ACCOUNT_NO_FORMAT"] and asked == []


def test_a_different_payee_name_blocks_and_says_both_names() -> None:
    check = check_payee(_header(PayeeAcctName="大理市文具有限公司"), _lookup(PAYEE))
    assert check.name_match is NameMatch.NONE and not check.passed
    assert _codes(check) == ["NAME_MISMATCH"]
    assert "大理市文具有限公司" in check.problems[0].message
    assert "昆明市文具有限公司" in check.problems[0].message


def test_a_partial_name_passes_but_is_flagged_for_the_reviewer() -> None:
    check = check_payee(_header(PayeeAcctName="昆明市文具有限责任公司"), _lookup(PAYEE))
    assert check.name_match is NameMatch.PARTIAL
    assert check.passed and check.needs_attention
    assert _codes(check) == ["NAME_PARTIAL"]
    assert "户名部分一致" in check.summary()


def test_another_bank_blocks_and_another_branch_of_the_same_bank_is_flagged() -> None:
    other = check_payee(_header(PayeeAcctBankName="中国农业银行昆明分行",
                                PayeeAcctBankNo="103731000010"), _lookup(PAYEE))
    assert other.bank_match is NameMatch.NONE and _codes(other) == ["BANK_MISMATCH"]
    branch = check_payee(_header(PayeeAcctBankName="中国工商银行盘龙支行",
                                 PayeeAcctBankNo=""), _lookup(PAYEE))
    assert branch.bank_match is NameMatch.PARTIAL and branch.passed
    assert _codes(branch) == ["BANK_PARTIAL"]


def test_a_closed_account_blocks() -> None:
    closed = Known(PAYEE.account_no, PAYEE.name, PAYEE.bank_name, PAYEE.bank_no, closed=True)
    check = check_payee(_header(), _lookup(closed))
    assert check.account_found and not check.passed
    assert _codes(check) == ["ACCOUNT_CLOSED"]


def test_a_malformed_bank_number_blocks() -> None:
    check = check_payee(_header(PayeeAcctBankNo="10273100001X"), _lookup(PAYEE))
    assert "BANK_NO_FORMAT" in _codes(check) and not check.passed


def test_a_check_survives_its_stored_form() -> None:
    check = check_payee(_header(PayeeAcctName="昆明市文具有限责任公司",
                                PayeeAcctBankName="中国工商银行盘龙支行", PayeeAcctBankNo=""),
                        _lookup(PAYEE))
    data = check.to_dict()
    assert data["passed"] is True
    assert AccountCheck.from_dict(data) == check
