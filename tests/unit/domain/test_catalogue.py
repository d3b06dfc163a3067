"""The voucher catalogue: every voucher of the flows (DOMAIN.md §5) under the codes seen in public
code (DOMAIN.md §8), with its sender, receivers, fields and seal positions."""

from __future__ import annotations

import re

import pytest

from guoku.domain.errors import UnknownVoucherType
from guoku.domain.fields import FieldKind
from guoku.domain.parties import PartyKind
from guoku.domain.seals import SealKind
from guoku.domain.vouchers import BY_SLUG, CATALOGUE, VoucherType, all_types, voucher_type

F, P, B, U = PartyKind.FINANCE, PartyKind.PBOC, PartyKind.BANK, PartyKind.UNIT
TYPES = all_types()
RECEIPTS = [t for t in TYPES if t.receipt_of is not None]
WITH_DETAILS = [t for t in TYPES if t.has_details]


def _ids(t: VoucherType) -> str:
    return f"{t.code}-{t.slug}"


# Every voucher DOMAIN.md §5 names, with who sends it to whom there.
SECTION_5 = [
    ("授权支付额度通知单", F, {B}),
    ("授权支付汇总清算额度通知单", F, {P}),
    ("授权额度到账通知书", B, {F}),
    ("授权支付凭证", U, {B}),
    ("申请划款凭证", B, {P}),
    ("授权支付日报表", B, {F}),
    ("申请退款凭证", B, {P}),
    ("授权支付退款通知书", B, {F}),
    ("授权支付退款日报表", B, {F}),
    ("直接支付凭证", F, {B}),
    ("直接支付汇总清算额度通知单", F, {P}),
    ("直接支付入账通知书", B, {F}),
    ("直接支付退款入账通知书", B, {F}),
    ("拨款凭证", F, {P}),
    ("实拨退款凭证", P, {F}),
]

# DOMAIN.md §8: codes seen in public code and the voucher each one stands for.
SEEN_CODES = {
    "5201": "direct_payment",
    "8202": "authorized_payment",
    "5106": "authorized_clearing_quota_notice",
    "5108": "direct_clearing_quota_notice",
    "5105": "authorized_quota_arrival_notice",
    "2301": "transfer_application",
    "2302": "refund_application",
    "2203": "direct_refund_notice",
    "2204": "authorized_refund_notice",
    "2206": "direct_daily_report",
    "5207": "allocation",
    "3208": "allocation_refund",
}

HEADER = ("AdmDivCode", "StYear", "VtCode", "VoucherNo", "VouDate")

SEALS_OF = {
    F: {SealKind.UNIT_FINANCE, SealKind.LEGAL_REP, SealKind.PERSONAL},
    U: {SealKind.UNIT_FINANCE, SealKind.LEGAL_REP, SealKind.PERSONAL},
    B: {SealKind.BANK_BUSINESS, SealKind.PERSONAL},
    P: {SealKind.TREASURY, SealKind.PERSONAL},
}


def _plain(name: str) -> str:
    """The §5 text drops 财政 and sometimes 支付; compare names without them."""
    return name.replace("财政", "").replace("支付", "")


# --- identity --------------------------------------------------------------------------------


def test_codes_are_unique_and_four_digits() -> None:
    codes = [t.code for t in TYPES]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[0-9]{4}", c) for c in codes)


def test_slugs_are_unique_snake_case_identifiers() -> None:
    slugs = [t.slug for t in TYPES]
    assert len(slugs) == len(set(slugs))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", s) for s in slugs)


def test_chinese_names_are_unique() -> None:
    names = [t.name for t in TYPES]
    assert len(names) == len(set(names))


def test_no_slug_could_be_mistaken_for_a_code() -> None:
    assert set(BY_SLUG).isdisjoint(CATALOGUE)


def test_the_lookup_tables_hold_every_type_once() -> None:
    assert list(CATALOGUE.values()) == list(TYPES)
    assert list(BY_SLUG.values()) == list(TYPES)


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_a_type_is_found_by_its_code_and_by_its_slug(vtype: VoucherType) -> None:
    assert voucher_type(vtype.code) is vtype
    assert voucher_type(vtype.slug) is vtype


@pytest.mark.parametrize("key", ["", "0000", "520", "52010", "Direct_Payment", "直接支付凭证"])
def test_an_unknown_type_is_refused_naming_what_was_asked(key: str) -> None:
    with pytest.raises(UnknownVoucherType) as caught:
        voucher_type(key)
    assert caught.value.details == {"vt_code": key}


def test_the_catalogue_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        CATALOGUE["0001"] = TYPES[0]  # type: ignore[index]


# --- the flows of DOMAIN.md section 5 ----------------------------------------------------------


@pytest.mark.parametrize(("name", "sender", "receivers"), SECTION_5, ids=[n for n, *_ in SECTION_5])
def test_every_voucher_of_the_flows_is_catalogued_with_its_direction(
    name: str, sender: PartyKind, receivers: set[PartyKind]
) -> None:
    matches = [t for t in TYPES if _plain(t.name).endswith(_plain(name))]
    assert len(matches) == 1, f"{name}: {[t.name for t in matches]}"
    (vtype,) = matches
    assert vtype.sender is sender
    assert set(vtype.receivers) == receivers


@pytest.mark.parametrize(("code", "slug"), SEEN_CODES.items())
def test_codes_seen_in_public_code_are_used_for_the_right_vouchers(code: str, slug: str) -> None:
    assert voucher_type(code).slug == slug


def test_a_code_is_marked_chosen_exactly_when_public_code_did_not_show_it() -> None:
    assert {t.code for t in TYPES if not t.chosen} == set(SEEN_CODES)


@pytest.mark.parametrize(
    "slug",
    [
        "authorized_quota_notice",
        "direct_credit_notice",
        "authorized_daily_report",
        "authorized_refund_daily_report",
    ],
)
def test_vouchers_not_found_in_public_code_carry_a_chosen_code(slug: str) -> None:
    assert voucher_type(slug).chosen


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_every_type_belongs_to_a_flow_and_goes_to_someone_else(vtype: VoucherType) -> None:
    assert vtype.flows
    assert vtype.receivers
    assert vtype.sender not in vtype.receivers


# --- receipts (回单) ---------------------------------------------------------------------------


def test_the_receipts_of_the_flows_are_catalogued() -> None:
    assert {t.receipt_of for t in RECEIPTS} == {"5106", "5108", "5201", "5207", "2301", "2302"}


@pytest.mark.parametrize("receipt", RECEIPTS, ids=_ids)
def test_every_receipt_answers_an_existing_voucher_that_is_not_itself_a_receipt(
    receipt: VoucherType,
) -> None:
    assert receipt.receipt_of in CATALOGUE
    assert CATALOGUE[receipt.receipt_of].receipt_of is None


@pytest.mark.parametrize("receipt", RECEIPTS, ids=_ids)
def test_a_receipt_code_is_nine_thousand_plus_the_original_code_mod_a_thousand(
    receipt: VoucherType,
) -> None:
    assert receipt.receipt_of is not None
    assert receipt.code == str(9000 + int(receipt.receipt_of) % 1000)


@pytest.mark.parametrize("receipt", RECEIPTS, ids=_ids)
def test_a_receipt_goes_from_a_receiver_of_the_original_back_to_its_sender(
    receipt: VoucherType,
) -> None:
    original = voucher_type(receipt.receipt_of or "")
    assert receipt.sender in original.receivers
    assert original.sender in receipt.receivers


@pytest.mark.parametrize("receipt", RECEIPTS, ids=_ids)
def test_a_receipt_points_at_its_original_voucher(receipt: VoucherType) -> None:
    assert receipt.field("OriVtCode").required
    assert receipt.field("OriVoucherNo").required


def test_the_transfer_and_refund_application_receipts_go_to_both_bank_and_finance() -> None:
    for code in ("9301", "9302"):
        assert voucher_type(code).sender is P
        assert set(voucher_type(code).receivers) == {B, F}


# --- fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_every_type_carries_the_required_header_fields(vtype: VoucherType) -> None:
    assert set(vtype.field_names[: len(HEADER)]) == set(HEADER)
    assert all(vtype.field(name).required for name in HEADER)


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_the_vt_code_field_accepts_the_types_own_code(vtype: VoucherType) -> None:
    assert vtype.field("VtCode").problem(vtype.code) is None


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_field_names_are_unique_within_a_type_and_within_its_details(vtype: VoucherType) -> None:
    assert len(vtype.field_names) == len(set(vtype.field_names))
    detail_names = [f.name for f in vtype.detail_fields]
    assert len(detail_names) == len(set(detail_names))


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_the_amount_field_is_a_required_amount_of_the_type(vtype: VoucherType) -> None:
    assert vtype.amount_field in vtype.field_names
    spec = vtype.field(vtype.amount_field)
    assert spec.kind is FieldKind.AMOUNT
    assert spec.required


@pytest.mark.parametrize("vtype", WITH_DETAILS, ids=_ids)
def test_detail_lines_carry_a_required_amount_that_can_be_summed(vtype: VoucherType) -> None:
    name = vtype.detail_amount_field
    assert name is not None
    (spec,) = [f for f in vtype.detail_fields if f.name == name]
    assert spec.kind is FieldKind.AMOUNT
    assert spec.required
    assert "Id" in {f.name for f in vtype.detail_fields}


def test_quota_vouchers_are_measured_in_plan_amount_and_payments_in_pay_amount() -> None:
    for slug in (
        "authorized_quota_notice",
        "authorized_clearing_quota_notice",
        "direct_clearing_quota_notice",
        "authorized_quota_arrival_notice",
    ):
        assert voucher_type(slug).amount_field == "PlanAmt"
        assert voucher_type(slug).field("SetMonth").required
    for slug in ("direct_payment", "authorized_payment", "allocation", "transfer_application"):
        assert voucher_type(slug).amount_field == "PayAmt"


def test_asking_for_a_field_a_type_lacks_raises_key_error() -> None:
    with pytest.raises(KeyError):
        voucher_type("5201").field("NoSuchField")


# --- seals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_every_type_has_numbered_seal_positions_with_an_official_seal(vtype: VoucherType) -> None:
    assert vtype.seal_positions
    assert [p.no for p in vtype.seal_positions] == [
        str(i) for i in range(1, len(vtype.seal_positions) + 1)
    ]
    assert any(not p.kind.is_personal for p in vtype.seal_positions)


@pytest.mark.parametrize("vtype", TYPES, ids=_ids)
def test_the_seals_on_a_voucher_are_those_its_sender_owns(vtype: VoucherType) -> None:
    assert {p.kind for p in vtype.seal_positions} <= SEALS_OF[vtype.sender]


def test_finance_vouchers_carry_the_finance_seal_and_a_personal_seal() -> None:
    kinds = [p.kind for p in voucher_type("5201").seal_positions]
    assert kinds == [SealKind.UNIT_FINANCE, SealKind.PERSONAL]
