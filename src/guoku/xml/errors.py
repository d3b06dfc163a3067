"""Why the XML layer refuses an input, as typed errors under :class:`XmlRejected`.

    XmlRejected                     (domain.errors) hostile or malformed XML
    ├── XmlTooLarge                 over the byte, markup or element limit
    ├── XmlTooDeep                  elements nested deeper than the limit
    ├── XmlForbiddenConstruct       DTD, entity, processing instruction, non-UTF-8 encoding
    ├── XmlMalformed                not well-formed XML
    └── SchemaInvalid               (domain.errors) well-formed but not valid against the XSD

They live here rather than in ``domain.errors`` because only the XML boundary can raise them;
callers that do not care why catch :class:`XmlRejected`.
"""

from __future__ import annotations

from guoku.domain.errors import XmlRejected


class XmlTooLarge(XmlRejected):
    """The input exceeds a size limit; it was refused before (or instead of) being parsed."""

    code = "XML_TOO_LARGE"

    def __init__(self, measure: str, actual: int, limit: int) -> None:
        super().__init__(
            f"XML {measure} {actual} exceeds the limit of {limit}",
            measure=measure,
            actual=actual,
            limit=limit,
        )


class XmlTooDeep(XmlRejected):
    """Elements are nested deeper than any voucher needs (a stack-exhaustion attempt)."""

    code = "XML_TOO_DEEP"

    def __init__(self, limit: int) -> None:
        super().__init__(f"XML elements are nested deeper than {limit} levels", limit=limit)


class XmlForbiddenConstruct(XmlRejected):
    """Well-formed XML using a construct vouchers never contain: DTD, entity, PI, foreign encoding.

    Refusing the construct outright, instead of configuring around it, closes entity expansion
    (billion laughs), external entities (XXE) and DTD fetching in one rule.
    """

    code = "XML_FORBIDDEN_CONSTRUCT"

    def __init__(self, construct: str, reason: str) -> None:
        super().__init__(f"XML {construct} is not allowed: {reason}", construct=construct)


class XmlMalformed(XmlRejected):
    """Not well-formed XML; ``details['line']`` says where the parser gave up when it knows."""

    code = "XML_MALFORMED"

    def __init__(self, reason: str, line: int | None = None) -> None:
        where = f" (line {line})" if line else ""
        super().__init__(f"XML is malformed{where}: {reason}", line=line)
