"""Field specifications and voucher document validation: shape first, then the arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.domain.document import MAX_DETAILS, VoucherDocument, validate
from guoku.domain.errors import AmountInvalid, ValidationError
from guoku.domain.fields import FieldKind, FieldSpec
from guoku.domain.money import MAX_FEN, Amount
from guoku.domain.parties import AdmDiv
from guoku.domain.vouchers import VoucherType, all_types, voucher_type

DIRECT_PAYMENT = voucher_type("direct_payment")


def spec(kind: FieldKind, *, required: bool = True, max_length: int = 42) -> FieldSpec:
    return FieldSpec("Field", kind, required, max_length, "字段")


def direct_payment(
    pay_amt: str = "1500.00", details: tuple[str, ...] = ("1000.00", "500.00"), **header: str
) -> VoucherDocument:
    """A 财政直接支付凭证 (5201) as finance would enter it, written out by hand."""
    base = {
        "AdmDivCode": "530000",
        "StYear": "2024",
        "VtCode": "5201",
        "VouDate": "20240315",
        "VoucherNo": "ZJ2024000001",
        "AgencyCode": "101001",
        "AgencyName": "云南省教育厅",
        "FundTypeCode": "1",
        "PayTypeCode": "11",
        "ExpFuncCode": "2050201",
        "PayeeAcctNo": "6222020200001234567",
        "PayeeAcctName": "昆明某某印务有限公司",
        "PayeeAcctBankName": "中国工商银行昆明分行",
        "PayAcctNo": "2502010009000000001",
        "PayAcctName": "云南省财政厅零余额账户",
        "PayAcctBankName": "中国工商银行昆明分行",
        "PayBankCode": "102",
        "PaySummaryName": "教材印刷费",
        "PayAmt": pay_amt,
    }
    lines = tuple(
        {"Id": str(i), "AgencyCode": "101001", "ExpFuncCode": "2050201", "PayAmt": amt}
        for i, amt in enumerate(details, start=1)
    )
    return VoucherDocument(DIRECT_PAYMENT, {**base, **header}, lines)


def problems_of(doc: VoucherDocument) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        validate(doc)
    problems = caught.value.details["problems"]
    assert isinstance(problems, list)
    return problems


_FILL_DIGITS = {"AdmDivCode": "530000", "PayTypeCode": "11", "OriVtCode": "5201", "Id": "1",
                "VoucherCount": "1"}
_FILL_KIND = {
    FieldKind.TEXT: "说明",
    FieldKind.CODE: "C-001",
    FieldKind.AMOUNT: "100.00",
    FieldKind.DATE: "20240315",
    FieldKind.YEAR: "2024",
    FieldKind.MONTH: "03",
}


def _fill(specs: tuple[FieldSpec, ...], vt_code: str) -> dict[str, str]:
    values = {}
    for f in specs:
        if f.required:
            value = _FILL_DIGITS.get(f.name) or _FILL_KIND.get(f.kind, "")
            values[f.name] = vt_code if f.name == "VtCode" else value
    return values


def minimal(vtype: VoucherType) -> VoucherDocument:
    details = (_fill(vtype.detail_fields, vtype.code),) if vtype.has_details else ()
    return VoucherDocument(vtype, _fill(vtype.fields, vtype.code), details)


# --- FieldSpec.problem -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FieldKind))
@pytest.mark.parametrize("empty", [None, ""])
def test_a_required_field_left_empty_names_the_field_and_its_label(
    kind: FieldKind, empty: str | None
) -> None:
    problem = spec(kind).problem(empty)
    assert problem is not None
    assert "Field" in problem and "字段" in problem and "required" in problem


@pytest.mark.parametrize("kind", list(FieldKind))
@pytest.mark.parametrize("empty", [None, ""])
def test_an_optional_field_may_be_left_empty(kind: FieldKind, empty: str | None) -> None:
    assert spec(kind, required=False).problem(empty) is None


def test_a_value_up_to_the_maximum_length_fits_and_one_more_character_does_not() -> None:
    text = spec(FieldKind.TEXT, max_length=5)
    assert text.problem("云南省财政") is None
    assert "longer than 5" in (text.problem("云南省财政厅") or "")


def test_the_length_limit_applies_to_optional_fields_too() -> None:
    assert spec(FieldKind.CODE, required=False, max_length=3).problem("ABCD") is not None


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (FieldKind.TEXT, "教材印刷费 (2024) — 第1批"),
        (FieldKind.CODE, "A-1_b.2"),
        (FieldKind.DIGITS, "0123"),
        (FieldKind.AMOUNT, "1234.50"),
        (FieldKind.AMOUNT, "0.01"),
        (FieldKind.AMOUNT, "-1.00"),
        (FieldKind.DATE, "20240229"),
        (FieldKind.DATE, "20241231"),
        (FieldKind.YEAR, "2024"),
        (FieldKind.MONTH, "01"),
        (FieldKind.MONTH, "12"),
    ],
)
def test_a_well_formed_value_has_no_problem(kind: FieldKind, value: str) -> None:
    assert spec(kind).problem(value) is None


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (FieldKind.CODE, "A 1"),
        (FieldKind.CODE, "编码"),
        (FieldKind.CODE, "A/1"),
        (FieldKind.DIGITS, "12a"),
        (FieldKind.DIGITS, "-12"),
        (FieldKind.DIGITS, "１２"),
        (FieldKind.AMOUNT, "1234.5"),
        (FieldKind.AMOUNT, "1234"),
        (FieldKind.AMOUNT, "1,234.50"),
        (FieldKind.AMOUNT, "1e3"),
        (FieldKind.AMOUNT, "+1.00"),
        (FieldKind.AMOUNT, "01.00"),
        (FieldKind.AMOUNT, "1234.50\n"),
        (FieldKind.DATE, "2024-03-15"),
        (FieldKind.DATE, "2024315"),
        (FieldKind.DATE, "20241301"),
        (FieldKind.DATE, "20240001"),
        (FieldKind.DATE, "20240100"),
        (FieldKind.DATE, "20240132"),
        (FieldKind.DATE, "15032024"),
        (FieldKind.YEAR, "24"),
        (FieldKind.YEAR, "20245"),
        (FieldKind.YEAR, "20a4"),
        (FieldKind.YEAR, "２０２４"),
        (FieldKind.MONTH, "00"),
        (FieldKind.MONTH, "13"),
        (FieldKind.MONTH, "1"),
        (FieldKind.MONTH, "1a"),
    ],
)
def test_a_malformed_value_is_named_as_not_valid_for_its_kind(kind: FieldKind, value: str) -> None:
    assert spec(kind).problem(value) is not None


@pytest.mark.parametrize("value", ["20230229", "20240230", "20240431"])
def test_a_date_that_is_not_on_the_calendar_is_refused(value: str) -> None:
    assert spec(FieldKind.DATE).problem(value) is not None


@given(st.dates(min_value=dt.date(1000, 1, 1)))
def test_every_calendar_date_written_yyyymmdd_is_a_valid_date(day: dt.date) -> None:
    assert spec(FieldKind.DATE).problem(day.strftime("%Y%m%d")) is None


@given(st.integers(min_value=1, max_value=12))
def test_every_month_written_with_two_digits_is_a_valid_month(month: int) -> None:
    assert spec(FieldKind.MONTH).problem(f"{month:02d}") is None


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_every_wire_amount_fits_an_amount_field(fen: int) -> None:
    assert DIRECT_PAYMENT.field("PayAmt").problem(Amount(fen).wire()) is None


def test_optional_and_mandatory_change_only_whether_a_value_is_required() -> None:
    original = spec(FieldKind.CODE, max_length=7)
    assert original.optional() == FieldSpec("Field", FieldKind.CODE, False, 7, "字段")
    assert original.optional().mandatory() == original


# --- a valid document passes -----------------------------------------------------------------


def test_a_direct_payment_whose_details_add_up_is_valid() -> None:
    assert validate(direct_payment()) is None


def test_a_direct_payment_without_details_is_valid() -> None:
    assert validate(direct_payment(details=())) is None


def test_a_clearing_quota_notice_whose_plan_lines_add_up_is_valid() -> None:
    vtype = voucher_type("5106")
    header = {
        "AdmDivCode": "533100",
        "StYear": "2024",
        "VtCode": "5106",
        "VouDate": "20240102",
        "VoucherNo": "QS2024000007",
        "FundTypeCode": "1",
        "PayTypeCode": "12",
        "PayBankCode": "102",
        "PlanAmt": "30000.00",
        "SetMonth": "01",
    }
    plan = [("101001", "20000.00"), ("101002", "10000.00")]
    details = tuple(
        {
            "Id": str(i),
            "AgencyCode": agency,
            "FundTypeCode": "1",
            "ExpFuncCode": "2050201",
            "PlanAmt": amount,
        }
        for i, (agency, amount) in enumerate(plan, start=1)
    )
    assert validate(VoucherDocument(vtype, header, details)) is None


@pytest.mark.parametrize("vtype", all_types(), ids=lambda t: f"{t.code}-{t.slug}")
def test_every_type_accepts_a_document_holding_just_its_required_fields(vtype: VoucherType) -> None:
    assert validate(minimal(vtype)) is None


def test_the_document_reads_its_key_amount_division_and_year_from_the_header() -> None:
    doc = direct_payment(pay_amt="1500.00")
    assert doc.amount == Amount(150000)
    assert doc.admdiv == AdmDiv("530000")
    assert doc.year == 2024
    assert doc.vt_code == "5201"
    assert doc.key == ("530000", 2024, "5201", "ZJ2024000001", 1)


def test_stamps_are_added_and_removed_without_touching_the_content() -> None:
    doc = direct_payment()
    stamped = doc.with_stamps({"1": "MEUCIQ=="})
    assert stamped.stamps == {"1": "MEUCIQ=="}
    assert stamped.header == doc.header
    assert stamped.without_stamps() == doc


def test_changing_a_header_value_makes_a_new_document() -> None:
    doc = direct_payment()
    changed = doc.with_header(Remark="加急")
    assert changed.header["Remark"] == "加急"
    assert "Remark" not in doc.header


# --- shape problems --------------------------------------------------------------------------


def test_an_unknown_header_field_is_refused() -> None:
    assert "unknown field PayAmount" in problems_of(direct_payment(PayAmount="1.00"))


def test_an_unknown_detail_field_is_refused_with_its_line_number() -> None:
    doc = direct_payment()
    lines = (doc.details[0], {**doc.details[1], "Memo": "x"})
    problems = problems_of(VoucherDocument(DIRECT_PAYMENT, doc.header, lines))
    assert "detail 2: unknown field Memo" in problems


@pytest.mark.parametrize("name", [f.name for f in DIRECT_PAYMENT.fields if f.required])
def test_every_required_header_field_must_be_present(name: str) -> None:
    doc = direct_payment()
    header = {k: v for k, v in doc.header.items() if k != name}
    problems = problems_of(VoucherDocument(DIRECT_PAYMENT, header, doc.details))
    assert any(p.startswith(f"{name} (") and "required" in p for p in problems)


@pytest.mark.parametrize("name", [f.name for f in DIRECT_PAYMENT.detail_fields if f.required])
def test_every_required_detail_field_must_be_present(name: str) -> None:
    doc = direct_payment()
    first = {k: v for k, v in doc.details[0].items() if k != name}
    problems = problems_of(VoucherDocument(DIRECT_PAYMENT, doc.header, (first, doc.details[1])))
    assert any(p.startswith(f"detail 1: {name} (") for p in problems)


def test_a_vt_code_that_does_not_match_the_type_is_refused() -> None:
    problems = problems_of(direct_payment(VtCode="8202"))
    assert "VtCode 8202 does not match type 5201" in problems


def test_a_malformed_amount_is_a_field_problem_not_a_crash() -> None:
    problems = problems_of(direct_payment(pay_amt="1500.0"))
    assert any(p.startswith("PayAmt value '1500.0'") for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(direct_payment(VtCode="8202", VouDate="20241301", Extra="x"))
    assert len(problems) == 3


def test_the_error_names_the_voucher_and_its_type() -> None:
    with pytest.raises(ValidationError, match=r"voucher ZJ2024000001 \(5201\) is invalid"):
        validate(direct_payment(VtCode="8202"))


def test_detail_lines_on_a_type_without_details_are_refused() -> None:
    allocation = minimal(voucher_type("allocation"))
    doc = VoucherDocument(allocation.vtype, allocation.header, ({"Id": "1"},))
    assert problems_of(doc) == ["voucher type 5207 has no detail lines"]


def test_more_detail_lines_than_the_limit_are_refused() -> None:
    too_many = MAX_DETAILS + 1
    doc = direct_payment(pay_amt=Amount(too_many).wire(), details=("0.01",) * too_many)
    assert problems_of(doc) == [f"{MAX_DETAILS + 1} detail lines exceed the limit of {MAX_DETAILS}"]


def test_exactly_the_limit_of_detail_lines_is_accepted() -> None:
    doc = direct_payment(pay_amt=Amount(MAX_DETAILS).wire(), details=("0.01",) * MAX_DETAILS)
    assert validate(doc) is None


@pytest.mark.parametrize("version", [0, -1, 1000])
def test_a_version_outside_one_to_999_is_refused(version: int) -> None:
    doc = VoucherDocument(DIRECT_PAYMENT, direct_payment().header, version=version)
    assert f"version {version} out of range 1..999" in problems_of(doc)


@pytest.mark.parametrize("version", [1, 2, 999])
def test_a_version_from_one_to_999_is_accepted(version: int) -> None:
    doc = VoucherDocument(DIRECT_PAYMENT, direct_payment().header, version=version)
    assert validate(doc) is None


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pay_amt", ["1500.01", "1499.99", "3000.00"])
def test_details_that_do_not_add_up_to_the_header_amount_are_refused(pay_amt: str) -> None:
    with pytest.raises(AmountInvalid, match=r"details sum to 1500\.00") as caught:
        validate(direct_payment(pay_amt=pay_amt))
    assert caught.value.details == {"voucher_no": "ZJ2024000001"}


@pytest.mark.parametrize("pay_amt", ["0.00", "-1500.00", "-0.01"])
def test_a_header_amount_that_is_zero_or_negative_is_refused(pay_amt: str) -> None:
    with pytest.raises(AmountInvalid, match="must be positive"):
        validate(direct_payment(pay_amt=pay_amt, details=()))


@pytest.mark.parametrize("details", [("1500.00", "0.00"), ("2000.00", "-500.00")])
def test_a_detail_line_that_is_zero_or_negative_is_refused_even_when_the_sum_agrees(
    details: tuple[str, ...],
) -> None:
    with pytest.raises(AmountInvalid, match="every detail amount must be positive"):
        validate(direct_payment(details=details))


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=20))
def test_details_are_accepted_exactly_when_they_sum_to_the_header_to_the_fen(
    fens: list[int],
) -> None:
    details = tuple(Amount(f).wire() for f in fens)
    total = sum(fens)
    assert validate(direct_payment(pay_amt=Amount(total).wire(), details=details)) is None
    for off_by in (-1, 1):
        if total + off_by > 0:
            with pytest.raises(AmountInvalid):
                validate(direct_payment(pay_amt=Amount(total + off_by).wire(), details=details))
