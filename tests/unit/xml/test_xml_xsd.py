"""Schemas generated from the catalogue: valid XSD, faithful to the field specs, exported."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from guoku.domain.document import MAX_DETAILS
from guoku.domain.fields import PATTERNS
from guoku.domain.vouchers import VoucherType, all_types
from guoku.xml.xsd import XS_NAMESPACE, export_xsds, schema_for, simple_type_name, xsd_text

TYPES = all_types()
XS = {"xs": XS_NAMESPACE}


def schema_tree(vtype: VoucherType) -> etree._Element:
    return etree.fromstring(xsd_text(vtype).encode("utf-8"))


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_every_generated_schema_is_a_valid_xsd(vtype: VoucherType) -> None:
    assert isinstance(etree.XMLSchema(schema_tree(vtype)), etree.XMLSchema)


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_header_elements_follow_the_catalogue(vtype: VoucherType) -> None:
    sequence = schema_tree(vtype).find("xs:element/xs:complexType/xs:sequence", XS)
    elements = sequence.findall("xs:element", XS)
    fields = [e for e in elements if e.get("name") not in ("DetailList", "Stamps")]
    assert [e.get("name") for e in fields] == list(vtype.field_names)
    for element, spec in zip(fields, vtype.fields, strict=True):
        assert element.get("type") == simple_type_name(spec)
        assert (element.get("minOccurs") == "0") is (not spec.required)
    assert (sequence.find("xs:element[@name='DetailList']", XS) is not None) is vtype.has_details


@pytest.mark.parametrize("vtype", TYPES, ids=lambda t: f"{t.code}-{t.slug}")
def test_simple_types_carry_length_and_pattern_of_their_kind(vtype: VoucherType) -> None:
    tree = schema_tree(vtype)
    for spec in (*vtype.fields, *vtype.detail_fields):
        restriction = tree.find(
            f"xs:simpleType[@name='{simple_type_name(spec)}']/xs:restriction", XS
        )
        assert restriction.find("xs:minLength", XS).get("value") == "1"
        assert restriction.find("xs:maxLength", XS).get("value") == str(spec.max_length)
        pattern = restriction.find("xs:pattern", XS)
        assert (None if pattern is None else pattern.get("value")) == PATTERNS.get(spec.kind)


def test_details_are_bounded_and_stamp_positions_enumerated() -> None:
    vtype = next(t for t in TYPES if t.has_details and len(t.seal_positions) == 2)
    tree = schema_tree(vtype)
    detail = tree.find(".//xs:element[@name='Detail']", XS)
    assert detail.get("maxOccurs") == str(MAX_DETAILS)
    numbers = tree.findall("xs:simpleType[@name='StampNo']/xs:restriction/xs:enumeration", XS)
    assert [n.get("value") for n in numbers] == [p.no for p in vtype.seal_positions]
    assert tree.find(".//xs:element[@name='VtCode']", XS).get("fixed") == vtype.code


def test_compiled_schemas_are_cached_per_type() -> None:
    assert schema_for(TYPES[0]) is schema_for(TYPES[0])
    assert schema_for(TYPES[0]) is not schema_for(TYPES[1])


def test_export_writes_one_file_per_type(tmp_path: Path) -> None:
    paths = export_xsds(tmp_path / "new" / "dir")
    assert [p.name for p in paths] == [f"{t.code}_{t.slug}.xsd" for t in TYPES]
    for path, vtype in zip(paths, TYPES, strict=True):
        assert path.read_bytes() == xsd_text(vtype).encode("utf-8")
