"""Sample vouchers are valid for every type and deterministic; the largest legal voucher fits the
parser's limits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from guoku.domain.document import MAX_DETAILS, VoucherDocument
from guoku.domain.errors import AmountInvalid, ValidationError
from guoku.domain.fields import FieldKind, FieldSpec
from guoku.domain.money import Amount
from guoku.domain.vouchers import VoucherType, all_types
from guoku.xml.codec import from_xml, to_xml
from guoku.xml.parser import MAX_ELEMENTS, MAX_XML_BYTES, VOUCHER_LIMITS, parse_xml
from guoku.xml.samples import sample_document, split_amount

TYPES = all_types()


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_a_sample_of_every_type_is_valid_and_fills_every_field(vtype: VoucherType) -> None:
    doc = sample_document(vtype)
    assert set(doc.header) == set(vtype.field_names)
    assert doc.header["VtCode"] == vtype.code
    assert len(doc.details) == (2 if vtype.has_details else 0)


def test_samples_are_deterministic_and_accept_code_slug_or_type() -> None:
    vtype = TYPES[0]
    docs = [sample_document(v, "N1", "9.99") for v in (vtype, vtype.code, vtype.slug)]
    assert docs[0] == docs[1] == docs[2]
    assert to_xml(docs[0]) == to_xml(sample_document(vtype, "N1", "9.99"))


def test_details_split_the_amount_exactly() -> None:
    vtype = next(t for t in TYPES if t.has_details)
    doc = sample_document(vtype, amount="100.00", details=3)
    field = vtype.detail_amount_field
    assert field is not None
    assert [d[field] for d in doc.details] == ["33.33", "33.33", "33.34"]
    assert [d["Id"] for d in doc.details] == ["1", "2", "3"]


def test_an_amount_smaller_than_the_line_count_gets_fewer_lines() -> None:
    assert split_amount("0.02", 5) == ("0.01", "0.01")
    assert split_amount("5.00", 0) == ()


def test_required_only_samples_leave_optional_fields_out() -> None:
    vtype = TYPES[0]
    doc = sample_document(vtype, optional=False)
    assert set(doc.header) == {f.name for f in vtype.fields if f.required}


def test_bad_sample_arguments_are_refused() -> None:
    with pytest.raises(ValidationError):
        sample_document(TYPES[0], details=MAX_DETAILS + 1)
    with pytest.raises(AmountInvalid):
        sample_document(TYPES[0], amount="12.5")
    with pytest.raises(ValidationError):
        sample_document(TYPES[0], voucher_no="has space")


def _longest(spec: FieldSpec, amount: str) -> str:
    """The value of ``spec`` that takes the most bytes: CJK text is three bytes a character."""
    by_kind = {
        FieldKind.TEXT: "国" * spec.max_length,
        FieldKind.CODE: "X" * spec.max_length,
        FieldKind.DIGITS: "9" * spec.max_length,
        FieldKind.AMOUNT: amount,
        FieldKind.DATE: "20251231",
        FieldKind.YEAR: "2025",
        FieldKind.MONTH: "12",
    }
    return by_kind[spec.kind]


def largest_legal_voucher() -> VoucherDocument:
    """MAX_DETAILS detail lines with every field at full length, amounts near the maximum."""
    vtype = max(
        TYPES,
        key=lambda t: (
            sum(f.max_length for f in t.detail_fields),
            sum(f.max_length for f in t.fields),
        ),
    )
    line_amount = Amount.parse("100000000000.00")
    total = Amount(line_amount.fen * MAX_DETAILS).wire()
    base = sample_document(vtype, amount=total, details=0)
    header = {f.name: _longest(f, total) for f in vtype.fields}
    header["VtCode"] = vtype.code
    line = {f.name: _longest(f, line_amount.wire()) for f in vtype.detail_fields}
    details = tuple({**line, "Id": str(i)} for i in range(1, MAX_DETAILS + 1))
    return replace(base, header=header, details=details)


def test_the_largest_legal_voucher_fits_the_parser_limits() -> None:
    doc = largest_legal_voucher()
    data = to_xml(doc)
    assert MAX_XML_BYTES // 2 < len(data) < MAX_XML_BYTES, "the byte limit should stay tight"
    assert data.count(b"<") < VOUCHER_LIMITS.max_markup
    assert len(list(parse_xml(data).iter())) < MAX_ELEMENTS
    assert from_xml(data) == doc
