"""The XML boundary: hardened parsing, XSD generated from the catalogue, the voucher codec and
the canonical bytes that seals sign.

    parser      parse_xml — the one hardened parser for every XML input (no DTD, no entities)
    xsd         xsd_text, schema_for, export_xsds — schemas generated from the voucher catalogue
    codec       to_xml, from_xml — VoucherDocument <-> voucher XML, validated both ways
    canonical   canonical_bytes, canonical_bytes_of_xml — exclusive C14N without the stamps
    samples     sample_document — deterministic valid vouchers of any type (tests, demo, bench)
"""

from guoku.xml.canonical import canonical_bytes, canonical_bytes_of_xml
from guoku.xml.codec import from_xml, to_xml
from guoku.xml.errors import XmlForbiddenConstruct, XmlMalformed, XmlTooDeep, XmlTooLarge
from guoku.xml.parser import XmlLimits, parse_xml
from guoku.xml.xsd import export_xsds, schema_for, xsd_text

__all__ = [
    "XmlForbiddenConstruct",
    "XmlLimits",
    "XmlMalformed",
    "XmlTooDeep",
    "XmlTooLarge",
    "canonical_bytes",
    "canonical_bytes_of_xml",
    "export_xsds",
    "from_xml",
    "parse_xml",
    "schema_for",
    "to_xml",
    "xsd_text",
]
