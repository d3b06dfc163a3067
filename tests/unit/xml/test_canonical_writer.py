"""The canonical bytes are written directly, not through libxml2's C14N; they must be, byte for
byte, exclusive C14N of the voucher element — checked on every type and on random values made of
every character XML can carry, the ones C14N escapes (& < > CR) weighted in."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from guoku.domain.document import VoucherDocument
from guoku.domain.fields import FieldKind
from guoku.domain.vouchers import VoucherType, all_types
from guoku.xml.canonical import canonical_and_body, canonical_bytes, read_voucher
from guoku.xml.codec import to_xml, voucher_element
from guoku.xml.samples import sample_document

TYPES = all_types()
XML_TEXT = st.text(
    st.one_of(
        st.sampled_from("&<>\r\n\t\"' ]]>"),
        st.characters(
            exclude_categories=("Cs", "Cc"),
            exclude_characters="\ufffe\uffff",
            include_characters="\t\n\r",
        ),
    ),
    min_size=1,
    max_size=60,
)


def lxml_c14n(doc: VoucherDocument) -> bytes:
    """The definition: exclusive C14N 1.0, no comments, of the element without stamps."""
    element = voucher_element(doc, with_stamps=False)
    data: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return data


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
@pytest.mark.parametrize("details", [0, 1, 3])
def test_every_type_is_written_as_libxml2_canonicalizes_it(
    vtype: VoucherType, details: int
) -> None:
    doc = sample_document(vtype, details=details, version=7)
    expected = lxml_c14n(doc)
    assert canonical_bytes(doc) == expected
    assert canonical_and_body(doc)[0] == expected
    assert read_voucher(to_xml(doc)).canonical == expected


@st.composite
def text_documents(draw: st.DrawFn) -> VoucherDocument:
    vtype = draw(st.sampled_from([t for t in TYPES if any(
        f.kind is FieldKind.TEXT for f in (*t.fields, *t.detail_fields)
    )]))  # fmt: skip
    base = sample_document(
        vtype, details=draw(st.integers(0, 2)), version=draw(st.integers(1, 999))
    )
    header = dict(base.header)
    for spec in vtype.fields:
        if spec.kind is FieldKind.TEXT and draw(st.booleans()):
            header[spec.name] = draw(XML_TEXT)[: spec.max_length]
    details = []
    for line in base.details:
        line = dict(line)
        for spec in vtype.detail_fields:
            if spec.kind is FieldKind.TEXT and draw(st.booleans()):
                line[spec.name] = draw(XML_TEXT)[: spec.max_length]
        details.append(line)
    return replace(base, header=header, details=tuple(details))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_documents())
def test_random_text_is_escaped_as_c14n_escapes_it(doc: VoucherDocument) -> None:
    expected = lxml_c14n(doc)
    assert canonical_bytes(doc) == expected
    assert read_voucher(to_xml(doc)).canonical == expected


def test_the_escapes_are_the_c14n_ones() -> None:
    vtype = next(t for t in TYPES if any(f.name == "Remark" for f in t.fields))
    doc = sample_document(vtype).with_header(Remark="a&b<c>d\re\"f'g\th\ni ]]>")
    data = canonical_bytes(doc)
    assert b"<Remark>a&amp;b&lt;c&gt;d&#xD;e\"f'g\th\ni ]]&gt;</Remark>" in data
    assert data == lxml_c14n(doc)
