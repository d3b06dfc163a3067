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

from lxml import etree

from guoku.domain.document import VoucherDocument
from guoku.xml.codec import check_serialisable, from_xml, voucher_element


def canonical_bytes(doc: VoucherDocument) -> bytes:
    """The bytes seals sign for ``doc``; the document is validated first (never sign nonsense)."""
    check_serialisable(doc)
    return _canonical(doc)


def canonical_bytes_of_xml(data: bytes) -> bytes:
    """The bytes seals sign for a received voucher, after the full ``from_xml`` checks."""
    return _canonical(from_xml(data))


def _canonical(doc: VoucherDocument) -> bytes:
    element = voucher_element(doc, with_stamps=False)
    data: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return data
