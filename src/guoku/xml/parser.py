"""The one hardened XML parser: every XML byte string that enters guoku goes through
:func:`parse_xml`.

A voucher is a small, flat, UTF-8 document with no DTD, no entities and no processing
instructions, so anything else is refused rather than configured around. The checks run in order
of cost, cheapest first, and each one bounds the work of the next:

1. size: ``len(data)`` against ``max_bytes`` and the count of ``<`` against the markup limit,
   before libxml2 sees a byte, so memory use is bounded by the input limit;
2. prolog: a byte scan of what precedes the root element refuses a ``<!DOCTYPE`` (and every PI)
   before parsing. This matters: libxml2 reads external *parameter* entities of an internal
   subset even with ``load_dtd=False`` (``<!ENTITY % p SYSTEM "file:///etc/passwd">%p;`` opens
   the file), and parses internal entity values even with ``resolve_entities=False`` (only its
   amplification guard stops a billion laughs), so parser options alone do not close the door.
   The scan is exact because the document is decoded as UTF-8 whatever it declares, and a
   declaration of another encoding (or a UTF-16/32 byte pattern) is refused;
3. parse: libxml2 with entity resolution, DTD loading and network access off and its own
   resource limits on (``huge_tree=False``); comments are dropped here (never signed, never
   meaningful) and CDATA becomes ordinary text;
4. tree: depth, element count, and no entity reference or PI anywhere, DOCTYPE again as a
   second line of defence.

Parsers are per thread: an lxml parser serialises concurrent use behind a lock.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

from lxml import etree

from guoku.xml.errors import XmlForbiddenConstruct, XmlMalformed, XmlTooDeep, XmlTooLarge

MAX_XML_BYTES: Final = 8 * 1024 * 1024
"""Bytes one XML input may have. The largest legal voucher — MAX_DETAILS (5000) detail lines with
every field at its maximum length in three-byte CJK text — serialises to about 4.2 MiB; the rest
is room for stamps. A test builds that voucher and checks it fits."""

MAX_DEPTH: Final = 32
"""Element nesting allowed; a voucher is four deep (Voucher/DetailList/Detail/field)."""

MAX_ELEMENTS: Final = 40_000
"""Elements allowed: the largest legal voucher has 5000 x 7 detail elements plus about a hundred."""

PROLOG_MARKUP_ALLOWANCE: Final = 64
"""``<`` characters tolerated beyond two per element: the XML declaration and a few comments."""

_WHITESPACE: Final = b" \t\r\n"
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_AFTER_XML_NAME: Final = (b"?", b" ", b"\t", b"\r", b"\n")
"""What may follow ``<?xml`` in a declaration; ``<?xml-stylesheet`` is a PI, not a declaration."""
_UTF8_NAMES: Final = frozenset({"utf-8", "utf8"})
_XML_DECL: Final = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(['\"])1\.[0-9]+\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(['\"])([A-Za-z][A-Za-z0-9._-]*)\2)?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(['\"])(?:yes|no)\4)?"
    rb"[ \t\r\n]*\?>"
)
_DTD_REASON: Final = "a voucher never has one; refused before parsing, so no entity is expanded"


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """The limits one call to :func:`parse_xml` enforces; the defaults fit one voucher."""

    max_bytes: int = MAX_XML_BYTES
    max_depth: int = MAX_DEPTH
    max_elements: int = MAX_ELEMENTS

    @property
    def max_markup(self) -> int:
        """``<`` characters allowed: a start and an end tag per element, plus the prolog."""
        return 2 * self.max_elements + PROLOG_MARKUP_ALLOWANCE


VOUCHER_LIMITS: Final = XmlLimits()

_local = threading.local()


def parse_xml(data: bytes, *, limits: XmlLimits = VOUCHER_LIMITS) -> Any:
    """Parse untrusted ``data`` into an lxml element, or raise an :class:`XmlRejected` subclass.

    Returns the root ``lxml.etree._Element``. Only ``bytes`` are accepted: the encoding belongs
    to the document (UTF-8), not to a Python string that may already have been decoded wrongly.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"parse_xml takes bytes, not {type(data).__name__}")
    _check_size(data, limits)
    _check_prolog(data)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise _translate(exc, limits) from None
    _check_tree(root, limits)
    return root


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            encoding="utf-8",
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=False,  # kept so that _check_tree sees them and refuses
            strip_cdata=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def _check_size(data: bytes, limits: XmlLimits) -> None:
    if len(data) > limits.max_bytes:
        raise XmlTooLarge("size in bytes", len(data), limits.max_bytes)
    if len(data) <= limits.max_markup:
        return  # cannot hold more '<' than bytes: the count is not needed
    markup = data.count(b"<")
    if markup > limits.max_markup:
        raise XmlTooLarge("markup count ('<' characters)", markup, limits.max_markup)


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE, a PI or a non-UTF-8 encoding in what precedes the root element."""
    pos = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    if b"\x00" in data[:4] or data[pos : pos + 1] in (b"\xfe", b"\xff"):
        raise XmlForbiddenConstruct("encoding", "vouchers are UTF-8 (UTF-16/32 refused)")
    if not data[pos : pos + 1] or data[pos] not in b"<" + _WHITESPACE:
        raise XmlMalformed("the document does not start with '<'")
    if data.startswith(b"<?xml", pos) and data[pos + 5 : pos + 6] in _AFTER_XML_NAME:
        pos = _check_declaration(data, pos)
    while True:
        while pos < len(data) and data[pos] in _WHITESPACE:
            pos += 1
        if data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                raise XmlMalformed("unterminated comment before the root element")
            pos = end + 3
        elif data.startswith(b"<?", pos):
            raise XmlForbiddenConstruct("processing instruction", "vouchers carry none")
        elif data.startswith(b"<!", pos):
            raise XmlForbiddenConstruct("DTD", _DTD_REASON)
        else:
            return  # the root element (or garbage, which the parser reports)


def _check_declaration(data: bytes, pos: int) -> int:
    match = _XML_DECL.match(data, pos)
    if match is None:
        raise XmlMalformed("the XML declaration is not well-formed")
    encoding = match.group(3)
    if encoding is not None and encoding.decode("ascii").lower() not in _UTF8_NAMES:
        raise XmlForbiddenConstruct(
            "encoding", f"declared {encoding.decode('ascii')!r}, vouchers are UTF-8"
        )
    return match.end()


def _translate(exc: Any, limits: XmlLimits) -> XmlTooDeep | XmlMalformed:
    """libxml2's depth guard (256) fires before ours can on very deep input: same error."""
    message = str(exc.msg)
    if exc.code == etree.ErrorTypes.ERR_RESOURCE_LIMIT and "depth" in message.lower():
        return XmlTooDeep(limits.max_depth)
    return XmlMalformed(message, exc.lineno)


def _check_tree(root: Any, limits: XmlLimits) -> None:
    """Walks run in libxml2 (``iter`` with a tag filter, compiled XPath), not in Python."""
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise XmlForbiddenConstruct("DTD", _DTD_REASON)
    for node in chain(
        root.itersiblings(preceding=True), root.itersiblings(), root.iter(etree.PI, etree.Entity)
    ):
        if node.tag is etree.Entity:
            raise XmlForbiddenConstruct("entity reference", "vouchers use no entities")
        raise XmlForbiddenConstruct("processing instruction", "vouchers carry none")
    count_elements, deeper_than_limit = _tree_queries(limits.max_depth)
    count = int(count_elements(root))
    if count > limits.max_elements:
        raise XmlTooLarge("element count", count, limits.max_elements)
    if deeper_than_limit(root):
        raise XmlTooDeep(limits.max_depth)


def _tree_queries(max_depth: int) -> tuple[Any, Any]:
    """Compiled XPath per thread: element count, and whether any element lies below max_depth."""
    cache: dict[int, tuple[Any, Any]] | None = getattr(_local, "queries", None)
    if cache is None:
        cache = _local.queries = {}
    queries = cache.get(max_depth)
    if queries is None:
        below_limit = "boolean(/" + "*/" * max_depth + "*)"
        queries = cache[max_depth] = (etree.XPath("count(//*)"), etree.XPath(below_limit))
    return queries
