"""Canonical bytes: what seals sign. Stable under layout and stamps, changed by any value."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from guoku.domain.document import VoucherDocument
from guoku.domain.errors import ValidationError
from guoku.domain.fields import PATTERNS, FieldKind, FieldSpec
from guoku.domain.money import Amount
from guoku.domain.vouchers import VoucherType, all_types, voucher_type
from guoku.xml.canonical import canonical_bytes, canonical_bytes_of_xml
from guoku.xml.codec import from_xml, to_xml
from guoku.xml.samples import sample_document

TYPES = all_types()
PAYMENT = voucher_type("direct_payment")

XML_CHARACTERS = st.characters(
    exclude_categories=("Cs", "Cc"),
    exclude_characters="\ufffe\uffff",
    include_characters="\t\n\r",
)
"""Every character XML 1.0 can carry, line ends and tabs included."""

PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def stamps_of(vtype: VoucherType) -> dict[str, str]:
    return {p.no: base64.b64encode(b"seal " + p.no.encode()).decode() for p in vtype.seal_positions}


def values(spec: FieldSpec) -> st.SearchStrategy[str]:
    """Valid values of one field, straight from its kind's pattern and its length limit."""
    if spec.kind is FieldKind.TEXT:
        return st.text(XML_CHARACTERS, min_size=1, max_size=spec.max_length)
    if spec.kind is FieldKind.DATE:  # the pattern allows 20250231; the calendar does not
        return st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}")
    pattern = st.from_regex(PATTERNS[spec.kind], fullmatch=True)
    return pattern.filter(lambda v: len(v) <= spec.max_length)


def free_fields(vtype: VoucherType) -> list[FieldSpec]:
    """Fields a random document may set freely: not the type code, not the summed amount."""
    return [f for f in vtype.fields if f.name not in ("VtCode", vtype.amount_field)]


@st.composite
def documents(draw: st.DrawFn) -> VoucherDocument:
    vtype = draw(st.sampled_from(TYPES))
    amount = draw(st.integers(min_value=1, max_value=10**14))
    base = sample_document(
        vtype,
        amount=Amount(amount).wire(),
        details=draw(st.integers(0, 3)),
        version=draw(st.integers(1, 999)),
    )
    header = dict(base.header)
    for spec in free_fields(vtype):
        if draw(st.booleans()):
            header[spec.name] = draw(values(spec))
        elif not spec.required and draw(st.booleans()):
            header.pop(spec.name, None)
    stamps = stamps_of(vtype) if draw(st.booleans()) else {}
    return replace(base, header=header, stamps=stamps)


@PROPERTY_SETTINGS
@given(documents())
def test_random_documents_round_trip_with_stable_canonical_bytes(doc: VoucherDocument) -> None:
    data = to_xml(doc)
    back = from_xml(data)
    assert back == doc
    expected = canonical_bytes(doc)
    assert canonical_bytes(back) == expected
    assert canonical_bytes_of_xml(data) == expected
    assert canonical_bytes_of_xml(to_xml(back)) == expected
    pretty = etree.tostring(etree.fromstring(data), pretty_print=True, encoding="UTF-8")
    assert canonical_bytes_of_xml(pretty) == expected


@PROPERTY_SETTINGS
@given(documents(), st.data())
def test_changing_any_one_field_changes_the_canonical_bytes(
    doc: VoucherDocument, data: st.DataObject
) -> None:
    spec = data.draw(st.sampled_from(free_fields(doc.vtype)))
    value = data.draw(values(spec).filter(lambda v: v != doc.header.get(spec.name)))
    assert canonical_bytes(doc.with_header(**{spec.name: value})) != canonical_bytes(doc)


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_stamps_do_not_change_the_canonical_bytes(vtype: VoucherType) -> None:
    doc = sample_document(vtype)
    stamped = doc.with_stamps(stamps_of(vtype))
    assert canonical_bytes(stamped) == canonical_bytes(doc)
    assert canonical_bytes_of_xml(to_xml(stamped)) == canonical_bytes(doc)
    assert b"Stamp" not in canonical_bytes(stamped)


def test_the_canonical_form_is_exclusive_c14n_of_the_voucher_without_stamps() -> None:
    doc = sample_document(PAYMENT).with_stamps(stamps_of(PAYMENT))
    root = etree.fromstring(to_xml(doc))
    root.remove(root.find("Stamps"))
    expected = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    assert canonical_bytes(doc) == expected
    assert canonical_bytes(doc).startswith(b'<Voucher Version="1"><AdmDivCode>')


def test_sender_layout_does_not_change_the_canonical_bytes() -> None:
    doc = sample_document(PAYMENT)
    plain = to_xml(doc)
    variants = [
        b"\xef\xbb\xbf" + plain,
        plain.replace(b"<?xml version='1.0' encoding='UTF-8'?>\n", b""),
        plain.replace(b'Version="1"', b"Version='1'  "),
        plain.replace(b"><", b">\n  <"),
        plain.replace(b"<Remark>", b"<!-- c --><Remark><![CDATA[").replace(
            b"</Remark>", b"]]></Remark>"
        ),
        plain.replace("样例".encode(), b"&#26679;&#x4F8B;"),
    ]
    for variant in variants:
        assert canonical_bytes_of_xml(variant) == canonical_bytes(doc)


def test_a_whitespace_only_value_is_data_and_is_signed() -> None:
    doc = sample_document(PAYMENT)
    assert canonical_bytes(doc.with_header(Hold1=" ")) != canonical_bytes(
        doc.with_header(Hold1="  ")
    )


def test_amount_version_and_detail_changes_change_the_canonical_bytes() -> None:
    doc = sample_document(PAYMENT, amount="100.00")
    other_detail = dict(doc.details[0], ExpEcoCode="30202")
    changed = [
        sample_document(PAYMENT, amount="100.01"),
        replace(doc, version=2),
        replace(doc, details=(other_detail, *doc.details[1:])),
        replace(doc, details=tuple(reversed(doc.details))),
    ]
    assert len({canonical_bytes(d) for d in [doc, *changed]}) == len(changed) + 1


def test_an_invalid_document_has_no_canonical_bytes() -> None:
    with pytest.raises(ValidationError):
        canonical_bytes(sample_document(PAYMENT).with_header(VouDate="2025-01-15"))
