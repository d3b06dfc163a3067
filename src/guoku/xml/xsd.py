"""XML Schemas (XSD 1.0) of the voucher types, generated from the catalogue.

The catalogue (``guoku.domain.vouchers``) is the single source of truth: field order, which fields
are required, maximum lengths and the pattern of each field kind all come from it, so the schema
a peer receives and the domain validation can never disagree. Schemas are exported for partners
with ``guoku xsd export DIR`` and compiled once per type and thread for validating input.

Shape of every schema::

    Voucher @Version
      <header fields in catalogue order>       optional ones minOccurs=0
      DetailList?  Detail{1..MAX_DETAILS}      only for types with detail lines
      Stamps?      Stamp{1..positions} @No     No is one of the type's seal positions
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from lxml import etree

from guoku.domain.document import MAX_DETAILS
from guoku.domain.fields import PATTERNS, FieldSpec
from guoku.domain.vouchers import VoucherType, all_types
from guoku.xml import names
from guoku.xml.parser import parse_xml

XS_NAMESPACE: Final = "http://www.w3.org/2001/XMLSchema"
_XS: Final = "{" + XS_NAMESPACE + "}"
_VERSION_TYPE: Final = "VersionNumber"
_STAMP_NO_TYPE: Final = "StampNo"
_STAMP_VALUE_TYPE: Final = "StampValue"
_DECLARATION: Final = "<?xml version='1.0' encoding='UTF-8'?>\n"

_local = threading.local()


def xsd_text(vtype: VoucherType, *, stamps_as_base64: bool = True) -> str:
    """The schema of ``vtype`` as XSD text, with its XML declaration (write it as UTF-8).

    ``stamps_as_base64=False`` types a stamp as a non-empty ``xs:string``: the schema
    :func:`schema_for` compiles, for ``from_xml``, which checks the base64 itself (faster than
    libxml2 on a stamp of tens of kilobytes). Exported schemas keep ``xs:base64Binary``.
    """
    schema = _xs(None, "schema", elementFormDefault="qualified")
    _document(
        schema,
        f"{vtype.code} {vtype.name} ({vtype.slug}). Generated from the guoku voucher catalogue;"
        " do not edit.",
    )
    _simple_types(schema, (*vtype.fields, *vtype.detail_fields))
    _version_type(schema)
    if vtype.seal_positions:
        _stamp_types(schema, vtype, "xs:base64Binary" if stamps_as_base64 else "xs:string")
    root_type = _xs(_xs(schema, "element", name=names.VOUCHER), "complexType")
    sequence = _xs(root_type, "sequence")
    _field_elements(sequence, vtype.fields, fixed={names.VT_CODE: vtype.code})
    if vtype.has_details:
        _detail_list(sequence, vtype.detail_fields)
    if vtype.seal_positions:
        _stamps(sequence, len(vtype.seal_positions))
    _xs(root_type, "attribute", name=names.VERSION, type=_VERSION_TYPE, use="required")
    text: str = etree.tostring(schema, encoding="unicode", pretty_print=True)
    return _DECLARATION + text


def schema_for(vtype: VoucherType) -> Any:
    """The compiled ``lxml.etree.XMLSchema`` of ``vtype``, cached per type code and thread.

    Per thread because a schema object keeps the error log of its last validation: sharing one
    between threads would mix up the reasons reported for two documents.
    """
    cache: dict[str, Any] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    schema = cache.get(vtype.code)
    if schema is None:
        # Our own generated text, but it goes through the one hardened parser all the same.
        text = xsd_text(vtype, stamps_as_base64=False)  # from_xml checks the base64 itself
        schema = etree.XMLSchema(parse_xml(text.encode("utf-8")))
        cache[vtype.code] = schema
    return schema


def xsd_filename(vtype: VoucherType) -> str:
    return f"{vtype.code}_{vtype.slug}.xsd"


def export_xsds(directory: Path) -> list[Path]:
    """Write ``<code>_<slug>.xsd`` for every catalogue type into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for vtype in all_types():
        path = directory / xsd_filename(vtype)
        path.write_bytes(xsd_text(vtype).encode("utf-8"))
        written.append(path)
    return written


def simple_type_name(spec: FieldSpec) -> str:
    """Named simple type shared by every field of the same kind and length, e.g. ``Code42``."""
    return f"{spec.kind.value.capitalize()}{spec.max_length}"


def _xs(parent: Any, tag: str, **attributes: str) -> Any:
    if parent is None:
        return etree.Element(_XS + tag, attributes, nsmap={"xs": XS_NAMESPACE})
    return etree.SubElement(parent, _XS + tag, attributes)


def _document(parent: Any, text: str) -> None:
    _xs(_xs(parent, "annotation"), "documentation").text = text


def _simple_types(schema: Any, specs: Iterable[FieldSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        name = simple_type_name(spec)
        if name in seen:
            continue
        seen.add(name)
        restriction = _xs(_xs(schema, "simpleType", name=name), "restriction", base="xs:string")
        _xs(restriction, "minLength", value="1")
        _xs(restriction, "maxLength", value=str(spec.max_length))
        pattern = PATTERNS.get(spec.kind)
        if pattern is not None:
            _xs(restriction, "pattern", value=pattern)


def _version_type(schema: Any) -> None:
    """positiveInteger in its one canonical spelling: no sign, no leading zero."""
    simple = _xs(schema, "simpleType", name=_VERSION_TYPE)
    restriction = _xs(simple, "restriction", base="xs:positiveInteger")
    _xs(restriction, "pattern", value="[1-9][0-9]*")


def _stamp_types(schema: Any, vtype: VoucherType, value_base: str) -> None:
    numbers = _xs(_xs(schema, "simpleType", name=_STAMP_NO_TYPE), "restriction", base="xs:string")
    for position in vtype.seal_positions:
        _document(_xs(numbers, "enumeration", value=position.no), position.kind.chinese)
    value = _xs(
        _xs(schema, "simpleType", name=_STAMP_VALUE_TYPE), "restriction", base=value_base
    )
    if value_base != "xs:string":  # a facet on a string makes libxml2 count its characters
        _xs(value, "minLength", value="1")


def _field_elements(
    sequence: Any, specs: Iterable[FieldSpec], fixed: dict[str, str] | None = None
) -> None:
    for spec in specs:
        attributes = {"name": spec.name, "type": simple_type_name(spec)}
        if not spec.required:
            attributes["minOccurs"] = "0"
        if fixed and spec.name in fixed:
            attributes["fixed"] = fixed[spec.name]
        _document(_xs(sequence, "element", **attributes), spec.label)


def _detail_list(sequence: Any, specs: tuple[FieldSpec, ...]) -> None:
    detail_list = _xs(sequence, "element", name=names.DETAIL_LIST, minOccurs="0")
    details = _xs(_xs(detail_list, "complexType"), "sequence")
    detail = _xs(details, "element", name=names.DETAIL, maxOccurs=str(MAX_DETAILS))
    _field_elements(_xs(_xs(detail, "complexType"), "sequence"), specs)


def _stamps(sequence: Any, positions: int) -> None:
    stamps = _xs(sequence, "element", name=names.STAMPS, minOccurs="0")
    stamp = _xs(
        _xs(_xs(stamps, "complexType"), "sequence"),
        "element",
        name=names.STAMP,
        maxOccurs=str(positions),
    )
    content = _xs(_xs(stamp, "complexType"), "simpleContent")
    extension = _xs(content, "extension", base=_STAMP_VALUE_TYPE)
    _xs(extension, "attribute", name=names.STAMP_NO, type=_STAMP_NO_TYPE, use="required")
    unique = _xs(stamps, "unique", name="OneStampPerPosition")
    _xs(unique, "selector", xpath=names.STAMP)
    _xs(unique, "field", xpath="@" + names.STAMP_NO)
