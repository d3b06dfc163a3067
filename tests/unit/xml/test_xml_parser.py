"""The hardened parser refuses hostile XML with a typed error, before any entity is expanded."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from guoku.domain.errors import XmlRejected
from guoku.xml import parser
from guoku.xml.errors import XmlForbiddenConstruct, XmlMalformed, XmlTooDeep, XmlTooLarge
from guoku.xml.parser import MAX_DEPTH, MAX_XML_BYTES, XmlLimits, parse_xml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Voucher Version="1"><Remark>&lol9;</Remark></Voucher>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE Voucher [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Voucher Version="1"><Remark>&xxe;</Remark></Voucher>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Voucher [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<Voucher Version="1"/>"""


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'<!ENTITY x "fetched">')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    """A local HTTP server that counts requests: a hardened parser must make none."""
    _CountingHandler.requests = 0
    server = http.server.HTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"x" + b"</a>" * depth


def test_a_plain_document_parses() -> None:
    root = parse_xml(b"<?xml version='1.0' encoding='UTF-8'?>\n<Voucher><A>b</A></Voucher>")
    assert root.tag == "Voucher"
    assert root.findtext("A") == "b"


def test_billion_laughs_is_refused_before_expansion() -> None:
    start = time.perf_counter()
    with pytest.raises(XmlForbiddenConstruct, match="DTD"):
        parse_xml(BILLION_LAUGHS)
    assert time.perf_counter() - start < 0.5


def test_external_entity_to_a_local_file_is_refused_without_reading_it() -> None:
    with pytest.raises(XmlForbiddenConstruct) as caught:
        parse_xml(XXE_FILE)
    assert "root:" not in str(caught.value.to_dict())


def test_external_entity_over_http_is_refused_without_a_request(http_url: str) -> None:
    data = (
        f'<?xml version="1.0"?><!DOCTYPE Voucher [<!ENTITY e SYSTEM "{http_url}/e">]>'
        '<Voucher Version="1">&e;</Voucher>'
    ).encode()
    with pytest.raises(XmlForbiddenConstruct):
        parse_xml(data)
    assert _CountingHandler.requests == 0


def test_external_dtd_is_refused_without_a_request(http_url: str) -> None:
    data = f'<!DOCTYPE Voucher SYSTEM "{http_url}/voucher.dtd"><Voucher Version="1"/>'.encode()
    with pytest.raises(XmlForbiddenConstruct, match="DTD"):
        parse_xml(data)
    assert _CountingHandler.requests == 0


def test_parameter_entity_is_refused() -> None:
    with pytest.raises(XmlForbiddenConstruct, match="DTD"):
        parse_xml(PARAMETER_ENTITY)


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf<!DOCTYPE a><a/>",  # behind a UTF-8 byte order mark
        b"<!-- innocent --> \n<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",  # behind a comment
        b"<?xml version='1.0' standalone='yes'?><!doctype a><a/>",  # any spelling of <!
    ],
    ids=["bom", "after-comment", "lowercase"],
)
def test_a_doctype_anywhere_in_the_prolog_is_refused(data: bytes) -> None:
    with pytest.raises(XmlForbiddenConstruct):
        parse_xml(data)


def test_parser_options_alone_still_refuse_a_dtd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Second line of defence: with the prolog scan switched off the input is still refused
    (libxml2's amplification guard or our DTD check), and no file content leaks out."""
    monkeypatch.setattr(parser, "_check_prolog", lambda data: None)
    for data in (BILLION_LAUGHS, XXE_FILE):
        with pytest.raises(XmlRejected) as caught:
            parse_xml(data)
        assert "root:" not in str(caught.value.to_dict())


@pytest.mark.parametrize(
    ("data", "construct"),
    [
        ("<a>中</a>".encode("utf-16"), "encoding"),
        ('<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16-le"), "encoding"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>', "encoding"),
        (b'<?xml version="1.0" encoding="GB18030"?><a/>', "encoding"),
    ],
    ids=["utf16-bom", "utf16-no-bom", "latin1", "gb18030"],
)
def test_encodings_other_than_utf8_are_refused(data: bytes, construct: str) -> None:
    with pytest.raises(XmlForbiddenConstruct) as caught:
        parse_xml(data)
    assert caught.value.details["construct"] == construct


def test_utf8_declared_in_any_case_and_a_bom_are_accepted() -> None:
    assert parse_xml(b"\xef\xbb\xbf<?xml version='1.0' encoding='utf8'?><a/>").tag == "a"
    assert parse_xml("<?xml version='1.0' encoding='Utf-8'?><a>云南</a>".encode()).text == "云南"


def test_input_over_the_byte_limit_is_refused_unparsed() -> None:
    data = b"<a>" + b"x" * MAX_XML_BYTES + b"</a>"
    with pytest.raises(XmlTooLarge) as caught:
        parse_xml(data)
    assert caught.value.details["limit"] == MAX_XML_BYTES


def test_too_much_markup_is_refused_unparsed() -> None:
    limits = XmlLimits(max_elements=10)
    with pytest.raises(XmlTooLarge, match="markup"):
        parse_xml(b"<a>" + b"<b/>" * (limits.max_markup + 1) + b"</a>", limits=limits)


def test_too_many_elements_are_refused() -> None:
    with pytest.raises(XmlTooLarge, match="element count"):
        parse_xml(b"<a>" + b"<b/>" * 20 + b"</a>", limits=XmlLimits(max_elements=10))


def test_nesting_at_the_depth_limit_is_accepted() -> None:
    assert parse_xml(nested(MAX_DEPTH)).tag == "a"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 5000], ids=["limit+1", "300", "5000"])
def test_nesting_beyond_the_depth_limit_is_refused(depth: int) -> None:
    with pytest.raises(XmlTooDeep):
        parse_xml(nested(depth))


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0'?><?xml-stylesheet href='x.xsl'?><a/>",
        b"<a><?php system('id'); ?></a>",
        b"<a/><?after the root?>",
        b"  <?xml version='1.0'?><a/>",  # a declaration not at the start is a PI
    ],
    ids=["prolog", "inside", "after-root", "late-declaration"],
)
def test_processing_instructions_are_refused(data: bytes) -> None:
    with pytest.raises(XmlForbiddenConstruct, match="processing instruction"):
        parse_xml(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml",
        b"<a><b></a>",
        b"<a>",
        b"<a>\xff\xfe</a>",
        b"<a>&undefined;</a>",
        b"<a/><b/>",
        b"<?xml version='1.0' encoding=?><a/>",
        b"<!-- never closed <a/>",
    ],
    ids=[
        "empty",
        "text",
        "mismatch",
        "truncated",
        "bad-utf8",
        "undefined-entity",
        "two-roots",
        "bad-declaration",
        "open-comment",
    ],
)
def test_malformed_xml_is_refused(data: bytes) -> None:
    with pytest.raises(XmlMalformed):
        parse_xml(data)


def test_comments_are_dropped_and_cannot_split_a_value() -> None:
    root = parse_xml(b"<a><PayAmt>12<!-- x -->34.00</PayAmt><!-- y --></a>")
    assert root.findtext("PayAmt") == "1234.00"
    assert len(root) == 1


def test_every_refusal_is_an_xml_rejected_with_a_code() -> None:
    for data in (BILLION_LAUGHS, b"<a>", nested(MAX_DEPTH + 1)):
        with pytest.raises(XmlRejected) as caught:
            parse_xml(data)
        assert caught.value.to_dict()["code"].startswith("XML_")


def test_only_bytes_are_accepted() -> None:
    with pytest.raises(TypeError):
        parse_xml("<a/>")  # type: ignore[arg-type]
