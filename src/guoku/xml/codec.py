"""The voucher XML format: :class:`VoucherDocument` to UTF-8 bytes and back.

No namespace, header fields in catalogue order, empty optional fields omitted::

    <?xml version='1.0' encoding='UTF-8'?>
    <Voucher Version="1"><AdmDivCode>530000</AdmDivCode>...
      <DetailList><Detail><Id>1</Id>...</Detail></DetailList>
      <Stamps><Stamp No="1">base64...</Stamp></Stamps></Voucher>

Output is compact (no pretty-printing) and deterministic: the same document always gives the same
bytes. Seals never sign these bytes but the canonical form (``guoku.xml.canonical``), so the
layout here could change without breaking a signature.

Input is checked in layers, each refusing with a typed error before the next runs: the hardened
parser (``XmlRejected``), the type's XSD (``SchemaInvalid``), the domain rules (``ValidationError``,
``AmountInvalid``). A stamp's base64 is checked here in Python (``SchemaInvalid`` too), not by
libxml2's ``xs:base64Binary``, which costs about six times as much on a stamp of tens of
kilobytes (docs/decisions/0009-sealing-throughput.md, change E); the check is the one the
exported schema makes: non-empty canonical base64, line breaks allowed.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from lxml import etree

from guoku.domain.document import VoucherDocument, validate
from guoku.domain.errors import SchemaInvalid, ValidationError
from guoku.domain.fields import HEADER, FieldSpec
from guoku.domain.vouchers import VoucherType, voucher_type
from guoku.xml import names
from guoku.xml.parser import parse_xml
from guoku.xml.xsd import schema_for

MAX_REPORTED_ERRORS: Final = 20
"""Schema errors copied into ``SchemaInvalid.details['errors']``; the first few say enough."""
MAX_ERROR_CHARS: Final = 300
"""Characters kept of one schema error line: libxml2 quotes the offending value, which a hostile
peer can make megabytes long."""

_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all, not even escaped."""
_VT_CODE_SPEC: Final = next(f for f in HEADER if f.name == names.VT_CODE)
_HEAD_KEY_CHARS: Final = 64
"""Characters of a stamp's text that find its decoded head (they hold the DER headers)."""
_TAIL_CHARS: Final = 2048
"""Characters at the end of a stamp always decoded: what varies between stamps with the same
seal (time, hash, propertyInfo, certificate, signature) is well inside them."""
MAX_DECODED_HEADS: Final = 64
"""Decoded stamp heads kept (a few per seal: the headers move with the signature's length)."""
_decoded_heads: dict[str, tuple[str, bytes]] = {}
"""First characters -> (a canonical base64 head, its bytes), from a stamp that decoded."""


STORED_DOCUMENTS: Final = 64
"""Bound of :func:`stored_document`'s cache (a sealed voucher with its document is ~150 KB)."""


def to_xml(doc: VoucherDocument) -> bytes:
    """Validate ``doc`` (domain rules, then what XML can carry) and serialise it."""
    check_serialisable(doc)
    data: bytes = etree.tostring(
        voucher_element(doc, with_stamps=True), xml_declaration=True, encoding="UTF-8"
    )
    return data


def from_xml(data: bytes) -> VoucherDocument:
    """Parse, schema-validate and domain-validate one voucher received as XML."""
    return read_xml(data)[0]


@lru_cache(maxsize=STORED_DOCUMENTS)
def stored_document(data: bytes) -> VoucherDocument:
    """:func:`from_xml` of bytes a node stored, for readers that only look (business hooks,
    printing). A voucher's event hooks read the same stored bytes several times in one
    transaction; the result depends on the bytes alone, and only a document that passed every
    check is kept, so the cache can never let bad bytes through. Do not change the document
    handed out: it is shared."""
    return from_xml(data)


def read_xml(data: bytes) -> tuple[VoucherDocument, dict[str, bytes]]:
    """:func:`from_xml`, and each stamp's bytes (decoded once, by the check of its base64)."""
    root = parse_xml(data)
    vtype = _voucher_type_of(root)
    schema = schema_for(vtype)
    if not schema.validate(root):
        errors = [
            f"line {e.line}: {e.message}"[:MAX_ERROR_CHARS]
            for e in schema.error_log[:MAX_REPORTED_ERRORS]
        ] or ["no reason given by the validator"]
        raise SchemaInvalid(
            f"voucher XML is not valid against the {vtype.code} schema: {errors[0]}",
            vt_code=vtype.code,
            errors=errors,
        )
    doc = _document(root, vtype)
    stamps = _decoded_stamps(doc, vtype)
    validate(doc)
    return doc, stamps


def decode_stamp(text: str) -> bytes | None:
    """The bytes of a stamp's text if it is non-empty canonical base64 (line breaks aside, as
    XSD ``base64Binary`` allows), else None.

    Strict decoding refuses every non-canonical spelling but one: non-zero padding bits in the
    last quantum (``"QR=="``), which the re-encoded last quantum catches.

    Every stamp made with one seal starts with the same tens of kilobytes of base64 (the seal),
    so the bytes of a head already decoded (canonical base64, a multiple of four characters,
    no padding: it decodes on its own, to the same bytes) are reused for a text that starts
    with exactly those characters, and only the rest is decoded. Kept: successes only, at most
    :data:`MAX_DECODED_HEADS`.
    """
    known = _decoded_heads.get(text[:_HEAD_KEY_CHARS])
    if known is not None and len(text) > len(known[0]) and text.startswith(known[0]):
        rest = _decode_canonical(text[len(known[0]) :])
        return None if rest is None else known[1] + rest
    raw = _decode_canonical(text)
    if (  # remembered for a stamp without line breaks: character i is byte 3i/4
        raw is not None
        and len(text) > _TAIL_CHARS + _HEAD_KEY_CHARS
        and len(text) == (len(raw) + 2) // 3 * 4
    ):
        cut = (len(text) - _TAIL_CHARS) // 4 * 4
        if len(_decoded_heads) >= MAX_DECODED_HEADS:
            _decoded_heads.clear()
        _decoded_heads[text[:_HEAD_KEY_CHARS]] = (text[:cut], raw[: cut // 4 * 3])
    return raw


def _decode_canonical(text: str) -> bytes | None:
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        compact = "".join(text.split())
        if compact == text:
            return None
        try:
            raw = binascii.a2b_base64(compact, strict_mode=True)
        except (binascii.Error, ValueError):
            return None
        text = compact
    if not raw:
        return None
    last = binascii.b2a_base64(raw[-(len(raw) % 3 or 3) :], newline=False)
    return raw if text.endswith(last.decode("ascii")) else None


def check_serialisable(doc: VoucherDocument) -> None:
    """Domain validation plus the two things only XML cares about: characters and stamps.

    A value holding a character XML cannot carry (NUL, most C0 controls) would make lxml fail
    mid-build; a stamp at a position the type does not have would make our own output fail its
    schema. Both are refused up front, naming every problem.
    """
    validate(doc)
    problems = [
        f"{where}{name} holds a character XML cannot carry"
        for where, values in _all_values(doc)
        for name, value in values.items()
        if _NOT_XML_CHAR.search(value)
    ]
    positions = {p.no for p in doc.vtype.seal_positions}
    for no, stamp in doc.stamps.items():
        if no not in positions:
            problems.append(f"stamp position {no!r} is not one of {sorted(positions)}")
        if decode_stamp(stamp) is None:
            problems.append(f"stamp {no!r} is not canonical base64")
    if problems:
        raise ValidationError(
            f"voucher {doc.voucher_no} ({doc.vt_code}) cannot be written as XML: "
            + "; ".join(problems),
            problems=problems,
        )


def voucher_element(doc: VoucherDocument, *, with_stamps: bool) -> Any:
    """Build the ``Voucher`` element of a document already checked by :func:`check_serialisable`.

    Fields are written in catalogue order whatever the order of ``doc.header``; empty values are
    omitted (the schema's ``minLength`` 1 refuses empty elements), so they come back absent.
    """
    root = etree.Element(names.VOUCHER, {names.VERSION: str(doc.version)})
    _append_fields(root, doc.vtype.fields, doc.header)
    if doc.details and doc.vtype.has_details:
        detail_list = etree.SubElement(root, names.DETAIL_LIST)
        for line in doc.details:
            _append_fields(
                etree.SubElement(detail_list, names.DETAIL), doc.vtype.detail_fields, line
            )
    if with_stamps and doc.stamps:
        stamps = etree.SubElement(root, names.STAMPS)
        for no in sorted(doc.stamps, key=_position_order):
            etree.SubElement(stamps, names.STAMP, {names.STAMP_NO: no}).text = doc.stamps[no]
    return root


def _decoded_stamps(doc: VoucherDocument, vtype: VoucherType) -> dict[str, bytes]:
    """Each stamp decoded, or SchemaInvalid as the exported schema's base64Binary would refuse."""
    stamps: dict[str, bytes] = {}
    for no, text in doc.stamps.items():
        raw = decode_stamp(text or "")
        if raw is None:
            raise SchemaInvalid(
                f"voucher XML is not valid against the {vtype.code} schema: stamp {no!r} is "
                "not canonical base64 (xs:base64Binary)",
                vt_code=vtype.code,
                errors=[f"stamp {no!r}: not canonical base64"],
            )
        stamps[no] = raw
    return stamps


def _append_fields(parent: Any, specs: tuple[FieldSpec, ...], values: Mapping[str, str]) -> None:
    for spec in specs:
        value = values.get(spec.name)
        if value:
            etree.SubElement(parent, spec.name).text = value


def _position_order(no: str) -> tuple[int, str]:
    """Stamps in numeric position order ("2" before "10"), then by text for anything else."""
    return (int(no), no) if no.isdigit() else (1 << 31, no)


def _all_values(doc: VoucherDocument) -> list[tuple[str, Mapping[str, str]]]:
    lines = [(f"detail {i}: ", line) for i, line in enumerate(doc.details, start=1)]
    return [("", doc.header), *lines]


def _voucher_type_of(root: Any) -> VoucherType:
    """Read ``VtCode`` before validation: it chooses the schema to validate against."""
    if root.tag != names.VOUCHER:
        raise SchemaInvalid(
            f"root element is {str(root.tag)[:64]!r}, expected {names.VOUCHER!r}",
            errors=[f"root element {str(root.tag)[:64]!r}"],
        )
    code = root.findtext(names.VT_CODE) or ""
    if _VT_CODE_SPEC.problem(code) is not None:
        raise SchemaInvalid(
            f"{names.VT_CODE} {code[:16]!r} is missing or not a voucher type code",
            errors=[f"{names.VT_CODE} {code[:16]!r}"],
        )
    return voucher_type(code)


def _document(root: Any, vtype: VoucherType) -> VoucherDocument:
    """The document of a schema-valid tree: whitespace between elements is simply not read."""
    header: dict[str, str] = {}
    details: list[dict[str, str]] = []
    stamps: dict[str, str] = {}
    for child in root:
        if child.tag == names.DETAIL_LIST:
            details = [{f.tag: f.text for f in detail} for detail in child]
        elif child.tag == names.STAMPS:
            stamps = {s.get(names.STAMP_NO): s.text for s in child}
        else:
            header[child.tag] = child.text
    return VoucherDocument(
        vtype=vtype,
        header=header,
        details=tuple(details),
        version=int(root.get(names.VERSION)),
        stamps=stamps,
    )
