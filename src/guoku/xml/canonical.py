"""The canonical bytes of a voucher: exactly what every seal signs.

The canonical form is the ``Voucher`` element *without* its ``Stamps`` as exclusive XML
Canonicalization 1.0 without comments. It is always built from the document model, never from
received bytes: a received voucher is parsed and validated into a :class:`VoucherDocument` first,
then re-built. So whitespace between elements, attribute quoting, comments, CDATA, character
references, the XML declaration and pretty-printing of the sender cannot change what is signed,
while a whitespace-only *value* of a text field still does (it is data, not layout). Stripping
"ignorable" whitespace from received bytes instead would have to guess which is which.

Stamps are left out so that the second seal signs the same bytes as the first: sealing appends
to ``Stamps`` and changes nothing else. Every field value and the version are inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from guoku.domain.document import VoucherDocument
from guoku.xml.codec import check_serialisable, read_xml, voucher_element


@dataclass(frozen=True, slots=True)
class ReceivedVoucher:
    """A voucher read from XML: checked once (parser, schema, stamps' base64, domain), with the
    bytes its seals sign and each stamp's bytes."""

    doc: VoucherDocument
    canonical: bytes = field(repr=False)
    stamps: dict[str, bytes] = field(repr=False)


def canonical_bytes(doc: VoucherDocument) -> bytes:
    """The bytes seals sign for ``doc``; the document is validated first (never sign nonsense)."""
    check_serialisable(doc)
    return _c14n(voucher_element(doc, with_stamps=False))


def canonical_and_body(doc: VoucherDocument) -> tuple[bytes, bytes]:
    """:func:`canonical_bytes` of ``doc`` and the XML ``to_xml`` writes for it without stamps,
    from one element (``doc`` validated once): what sealing signs and what it writes."""
    check_serialisable(doc)
    element = voucher_element(doc, with_stamps=False)
    body: bytes = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    return _c14n(element), body


def canonical_bytes_of_xml(data: bytes) -> bytes:
    """The bytes seals sign for a received voucher, after the full ``from_xml`` checks."""
    return read_voucher(data).canonical


def read_voucher(data: bytes) -> ReceivedVoucher:
    """Read a received voucher (every ``from_xml`` check, once) and its canonical bytes: the
    document ``from_xml`` has just validated is not validated a second time."""
    doc, stamps = read_xml(data)
    return ReceivedVoucher(doc, _c14n(voucher_element(doc, with_stamps=False)), stamps)


def _c14n(element: Any) -> bytes:
    data: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return data
