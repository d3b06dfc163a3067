"""The voucher XML codec: round trips for every type, and each layer's refusal with its error."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from guoku.domain.document import VoucherDocument
from guoku.domain.errors import (
    AmountInvalid,
    SchemaInvalid,
    UnknownVoucherType,
    ValidationError,
    XmlRejected,
)
from guoku.domain.vouchers import VoucherType, all_types, voucher_type
from guoku.xml.codec import MAX_ERROR_CHARS, MAX_REPORTED_ERRORS, from_xml, to_xml
from guoku.xml.samples import sample_document
from guoku.xml.xsd import schema_for

TYPES = all_types()
PAYMENT = voucher_type("direct_payment")


def fake_stamps(vtype: VoucherType) -> dict[str, str]:
    """Deterministic stand-ins for SES signatures at every seal position of the type."""
    return {
        p.no: base64.b64encode(f"SES_Signature {vtype.code} {p.no}".encode()).decode()
        for p in vtype.seal_positions
    }


def mutated(doc: VoucherDocument, change: Callable[[Any], None]) -> bytes:
    """The XML of ``doc`` after ``change`` edits its tree: what a faulty or hostile peer sends."""
    root = etree.fromstring(to_xml(doc))
    change(root)
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result


def set_text(path: str, text: str) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        root.find(path).text = text

    return change


def remove(path: str) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        element = root.find(path)
        element.getparent().remove(element)

    return change


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_every_type_round_trips_with_all_fields_and_stamps(vtype: VoucherType) -> None:
    doc = sample_document(vtype).with_stamps(fake_stamps(vtype))
    data = to_xml(doc)
    assert from_xml(data) == doc
    assert schema_for(vtype).validate(etree.fromstring(data))


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_every_type_round_trips_with_required_fields_only(vtype: VoucherType) -> None:
    doc = sample_document(vtype, optional=False, details=1, version=7)
    assert from_xml(to_xml(doc)) == doc


def test_output_has_the_documented_shape() -> None:
    doc = sample_document(PAYMENT).with_stamps(fake_stamps(PAYMENT))
    data = to_xml(doc)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<Voucher Version=\"1\">")
    root = etree.fromstring(data)
    assert [child.tag for child in root][-2:] == ["DetailList", "Stamps"]
    assert root.find("AdmDivCode") is root[0]
    assert [s.get("No") for s in root.find("Stamps")] == ["1", "2"]


def test_output_is_deterministic_whatever_the_header_order() -> None:
    doc = sample_document(PAYMENT)
    shuffled = VoucherDocument(doc.vtype, dict(reversed(list(doc.header.items()))), doc.details)
    assert to_xml(shuffled) == to_xml(doc)


def test_a_type_without_details_has_no_detail_list() -> None:
    assert b"DetailList" not in to_xml(sample_document("allocation"))


def test_pretty_printed_input_with_comments_and_cdata_reads_the_same() -> None:
    doc = sample_document(PAYMENT)
    pretty = etree.tostring(etree.fromstring(to_xml(doc)), pretty_print=True, encoding="UTF-8")
    pretty = pretty.replace(b"<Remark>", b"<!-- note --><Remark><![CDATA[")
    pretty = pretty.replace(b"</Remark>", b"]]></Remark>")
    assert from_xml(pretty) == doc


def test_a_comment_inside_an_amount_cannot_truncate_it() -> None:
    doc = sample_document(voucher_type("allocation"), amount="1234.00")
    data = to_xml(doc).replace(b"<PayAmt>1234.00", b"<PayAmt>12<!-- -->34.00")
    assert from_xml(data).header["PayAmt"] == "1234.00"


def test_hostile_xml_is_refused_before_validation() -> None:
    with pytest.raises(XmlRejected):
        from_xml(b'<!DOCTYPE Voucher [<!ENTITY e SYSTEM "file:///etc/passwd">]><Voucher/>')


@pytest.mark.parametrize(
    "data",
    [
        b"<Payment Version='1'><VtCode>5201</VtCode></Payment>",
        b"<Voucher xmlns='urn:x' Version='1'><VtCode>5201</VtCode></Voucher>",
    ],
    ids=["other-name", "namespaced"],
)
def test_a_wrong_root_element_is_schema_invalid(data: bytes) -> None:
    with pytest.raises(SchemaInvalid, match="root element"):
        from_xml(data)


def test_an_unknown_voucher_type_code_is_refused() -> None:
    data = mutated(sample_document(PAYMENT), set_text("VtCode", "9999"))
    with pytest.raises(UnknownVoucherType):
        from_xml(data)


@pytest.mark.parametrize("code", ["", "direct_payment", "52011"], ids=["empty", "slug", "long"])
def test_a_missing_or_malformed_voucher_type_code_is_schema_invalid(code: str) -> None:
    data = mutated(sample_document(PAYMENT), set_text("VtCode", code))
    with pytest.raises(SchemaInvalid, match="VtCode"):
        from_xml(data)


@pytest.mark.parametrize(
    "change",
    [
        remove("PayeeAcctName"),
        set_text("PayAmt", "12.5"),
        set_text("PayAmt", "1e3"),
        set_text("PayAmt", "1,234.56"),
        set_text("PayAmt", " 1234.56"),
        set_text("AgencyName", "单" * 61),
        set_text("VouDate", "20251301"),
        set_text("Remark", ""),
        set_text("DetailList/Detail/PayAmt", "617.2"),
        remove("DetailList/Detail/AgencyCode"),
    ],
    ids=[
        "missing-required",
        "amount-one-decimal",
        "amount-exponent",
        "amount-grouping",
        "amount-space",
        "too-long",
        "bad-date",
        "empty-optional",
        "detail-amount",
        "detail-missing",
    ],
)
def test_schema_violations_are_refused_with_lxml_reasons(change: Callable[[Any], None]) -> None:
    with pytest.raises(SchemaInvalid) as caught:
        from_xml(mutated(sample_document(PAYMENT), change))
    errors = caught.value.details["errors"]
    assert errors and all(line.startswith("line ") for line in errors)
    assert caught.value.details["vt_code"] == PAYMENT.code


def _add(tag: str, text: str, index: int | None = None) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        element = etree.Element(tag)
        element.text = text
        root.insert(len(root) if index is None else index, element)

    return change


def _swap_first_two(root: Any) -> None:
    root.insert(0, root[1])


def _set_version(value: str | None) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        if value is None:
            del root.attrib["Version"]
        else:
            root.set("Version", value)

    return change


def _stamp(no: str, value: str) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        stamps = root.find("Stamps")
        if stamps is None:
            stamps = etree.SubElement(root, "Stamps")
        etree.SubElement(stamps, "Stamp", No=no).text = value

    return change


@pytest.mark.parametrize(
    "change",
    [
        _add("Unexpected", "x"),
        _swap_first_two,
        _set_version(None),
        _set_version("0"),
        _set_version("01"),
        _set_version("+1"),
        _stamp("9", "QUJD"),
        _stamp("1", "not base64!"),
        _stamp("1", ""),
    ],
    ids=[
        "unknown-element",
        "wrong-order",
        "no-version",
        "version-zero",
        "version-leading-zero",
        "version-sign",
        "unknown-stamp-position",
        "stamp-not-base64",
        "stamp-empty",
    ],
)
def test_structure_violations_are_schema_invalid(change: Callable[[Any], None]) -> None:
    with pytest.raises(SchemaInvalid):
        from_xml(mutated(sample_document(PAYMENT), change))


def test_two_stamps_at_one_position_are_schema_invalid() -> None:
    doc = sample_document(PAYMENT).with_stamps({"1": "QUJD"})
    with pytest.raises(SchemaInvalid, match=r"OneStampPerPosition|[Dd]uplicate"):
        from_xml(mutated(doc, _stamp("1", "REVG")))


def test_reported_schema_errors_are_capped() -> None:
    def break_everything(root: Any) -> None:
        for detail in root.find("DetailList"):
            detail.find("PayAmt").text = "x"

    doc = sample_document(PAYMENT, details=60)
    with pytest.raises(SchemaInvalid) as caught:
        from_xml(mutated(doc, break_everything))
    assert len(caught.value.details["errors"]) == MAX_REPORTED_ERRORS


def test_a_huge_bad_value_does_not_make_a_huge_error() -> None:
    data = mutated(sample_document(PAYMENT), set_text("AgencyName", "长" * 100_000))
    with pytest.raises(SchemaInvalid) as caught:
        from_xml(data)
    assert all(len(line) <= MAX_ERROR_CHARS for line in caught.value.details["errors"])


def test_details_that_do_not_sum_to_the_header_amount_are_refused() -> None:
    data = mutated(
        sample_document(PAYMENT, amount="100.00"), set_text("DetailList/Detail/PayAmt", "10.00")
    )
    with pytest.raises(AmountInvalid, match="sum"):
        from_xml(data)


@pytest.mark.parametrize("amount", ["0.00", "-5.00"])
def test_a_non_positive_amount_passes_the_schema_but_not_the_domain(amount: str) -> None:
    data = mutated(sample_document("allocation"), set_text("PayAmt", amount))
    with pytest.raises(AmountInvalid):
        from_xml(data)


def test_to_xml_refuses_a_document_the_domain_refuses() -> None:
    doc = sample_document(PAYMENT)
    header = {k: v for k, v in doc.header.items() if k != "PayeeAcctName"}
    with pytest.raises(ValidationError, match="PayeeAcctName"):
        to_xml(VoucherDocument(PAYMENT, header, doc.details))


@pytest.mark.parametrize("text", ["bell\x07", "nul\x00", "\ufffe"], ids=["bell", "nul", "fffe"])
def test_to_xml_refuses_characters_xml_cannot_carry(text: str) -> None:
    with pytest.raises(ValidationError, match="Remark holds a character"):
        to_xml(sample_document(PAYMENT).with_header(Remark=text))


@pytest.mark.parametrize(
    ("stamps", "reason"),
    [
        ({"7": "QUJD"}, "position"),
        ({"1": "not base64"}, "base64"),
        ({"1": "QR=="}, "base64"),  # non-zero padding bits: Python decodes it, XSD does not
        ({"1": ""}, "base64"),
    ],
    ids=["position", "alphabet", "padding-bits", "empty"],
)
def test_to_xml_refuses_stamps_its_schema_would_refuse(stamps: dict[str, str], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        to_xml(sample_document(PAYMENT).with_stamps(stamps))


def test_stamps_with_line_breaks_round_trip() -> None:
    wrapped = base64.encodebytes(b"x" * 120).decode()  # MIME style, a newline every 76
    doc = sample_document(PAYMENT).with_stamps({"1": wrapped})
    assert from_xml(to_xml(doc)) == doc


def test_text_with_markup_characters_and_line_ends_round_trips() -> None:
    doc = sample_document(PAYMENT).with_header(
        Remark="<b>&amp; \"quoted\" 'x'\r\nline\ttab ]]> 𠀀", Hold1=" "
    )
    assert from_xml(to_xml(doc)) == doc
