"""Bytes that are not an envelope: too large, hostile XML, the wrong parts or a bad head.

The size is checked before any parsing, and the shape before any cryptography, so these inputs
cost the receiver almost nothing. ``read_head`` (routing, unauthenticated) refuses the same
inputs as ``open_envelope``: the parametrized ``reader`` runs each case through both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from envelope_net import OTHER, Network, set_text
from lxml import etree

from guoku.transport import envelope
from guoku.transport.envelope import (
    MAX_BATCH,
    MAX_ENVELOPE_BYTES,
    EnvelopeMalformed,
    EnvelopeTooLarge,
    read_head,
)
from guoku.xml.errors import XmlMalformed

Reader = Callable[[bytes], Any]


@pytest.fixture(params=["open_envelope", "read_head"])
def reader(request: pytest.FixtureRequest, net: Network) -> Reader:
    return net.open if request.param == "open_envelope" else read_head


# -- size ----------------------------------------------------------------------------------------


def test_an_input_over_max_envelope_bytes_is_too_large_before_any_parsing(
    reader: Reader, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parse_xml(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an oversize envelope reached the XML parser")

    monkeypatch.setattr(envelope, "parse_xml", parse_xml)
    data = b"<" + b"\x00" * MAX_ENVELOPE_BYTES  # not even XML: only the size is looked at

    with pytest.raises(EnvelopeTooLarge) as refused:
        reader(data)

    assert refused.value.code == "ENVELOPE_TOO_LARGE"
    assert str(MAX_ENVELOPE_BYTES) in refused.value.message


def test_an_input_of_exactly_max_envelope_bytes_reaches_the_parser(
    reader: Reader, monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[int] = []

    def parse_xml(data: bytes, **kwargs: Any) -> None:
        parsed.append(len(data))
        raise XmlMalformed("stand-in parser")

    monkeypatch.setattr(envelope, "parse_xml", parse_xml)

    with pytest.raises(EnvelopeMalformed):
        reader(b"<MOF/>".ljust(MAX_ENVELOPE_BYTES, b" "))

    assert parsed == [MAX_ENVELOPE_BYTES]


# -- hostile XML ---------------------------------------------------------------------------------

XXE = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<!DOCTYPE MOF [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
       b'<MOF Version="1"><Head><SrcNode>&xxe;</SrcNode></Head></MOF>')
PARAMETER_ENTITY = (b'<!DOCTYPE MOF [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
                    b'<MOF Version="1"/>')
BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                  + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1)) * 10
                                                          if i > 1 else b"&lol;" * 10)
                             for i in range(1, 10))
                  + b']>\n<MOF Version="1"><Head><VtCode>&lol9;</VtCode></Head></MOF>')


def with_doctype(net: Network) -> bytes:
    """A genuine sealed envelope with an entity-bearing DOCTYPE slipped in after the prolog."""
    data = net.seal()
    doctype = b'<!DOCTYPE MOF [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    data = data.replace(b"<MOF ", doctype + b"<MOF ", 1)
    return data.replace(b"<VtCode>5201</VtCode>", b"<VtCode>&xxe;</VtCode>", 1)


@pytest.mark.parametrize("hostile", ["xxe", "parameter-entity", "billion-laughs",
                                     "doctype-in-a-sealed-envelope"])
def test_a_doctype_or_entity_is_malformed_and_never_expanded(
    net: Network, reader: Reader, hostile: str,
) -> None:
    data = {"xxe": XXE, "parameter-entity": PARAMETER_ENTITY, "billion-laughs": BILLION_LAUGHS,
            "doctype-in-a-sealed-envelope": with_doctype(net)}[hostile]

    with pytest.raises(EnvelopeMalformed) as refused:
        reader(data)

    assert refused.value.code == "ENVELOPE_MALFORMED"
    assert getattr(refused.value.__cause__, "code", None) == "XML_FORBIDDEN_CONSTRUCT"
    assert "root:" not in refused.value.message and "lollol" not in refused.value.message


@pytest.mark.parametrize("data", [
    b"",
    b"not xml at all",
    b'<MOF Version="1"><Head>',
    b'<?xml-stylesheet href="x"?><MOF Version="1"/>',
    '<MOF Version="1"/>'.encode("utf-16"),
    b'<?xml version="1.0" encoding="GBK"?><MOF Version="1"/>',
], ids=["empty", "text", "unclosed", "processing-instruction", "utf-16", "gbk"])
def test_bytes_that_are_not_acceptable_xml_are_malformed(reader: Reader, data: bytes) -> None:
    with pytest.raises(EnvelopeMalformed) as refused:
        reader(data)

    assert refused.value.code == "ENVELOPE_MALFORMED"
    assert refused.value.message.startswith("envelope is not acceptable XML")


# -- parts ---------------------------------------------------------------------------------------


def rename_root(root: Any) -> None:
    root.tag = "MOX"


def namespaced_root(root: Any) -> None:
    root.tag = "{urn:mof}MOF"


def swap_cert_and_key(root: Any) -> None:
    root.insert(1, root.find("Key"))


def signature_first(root: Any) -> None:
    root.insert(0, root.find("Signature"))


def drop(path: str) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        element = root.find(path)
        element.getparent().remove(element)

    return change


def add(path: str, tag: str, count: int = 1) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        for _ in range(count):
            etree.SubElement(root.find(path) if path else root, tag)

    return change


def nest_deeply(root: Any) -> None:
    element = root.find("Head/VtCode")
    for _ in range(10):
        element = etree.SubElement(element, "Deeper")


def set_version(value: str | None) -> Callable[[Any], None]:
    def change(root: Any) -> None:
        if value is None:
            del root.attrib["Version"]
        else:
            root.set("Version", value)

    return change


@pytest.mark.parametrize("change", [
    rename_root, namespaced_root, set_version("2"), set_version(None),
    drop("Key"), drop("Signature"), drop("Head"),
    add("", "Extra"), add("", "Signature"), swap_cert_and_key, signature_first,
    add("Head", "Filler", count=64), nest_deeply,
], ids=["wrong-root", "namespaced-root", "version-2", "no-version",
        "missing-key", "missing-signature", "missing-head",
        "extra-part", "second-signature", "cert-and-key-swapped", "signature-first",
        "too-many-elements", "too-deep"])
def test_an_envelope_without_exactly_head_cert_key_body_signature_is_malformed(
    net: Network, reader: Reader, change: Callable[[Any], None],
) -> None:
    data = net.tamper(net.seal(), change)

    with pytest.raises(EnvelopeMalformed) as refused:
        reader(data)

    assert refused.value.code == "ENVELOPE_MALFORMED"


# -- head ----------------------------------------------------------------------------------------


def swap_src_and_des(root: Any) -> None:
    head = root.find("Head")
    head.insert(0, head.find("DesNode"))


@pytest.mark.parametrize("change", [
    set_text("Head/VoucherCount", "0"),
    set_text("Head/VoucherCount", str(MAX_BATCH + 1)),
    set_text("Head/VoucherCount", "-1"),
    set_text("Head/VoucherCount", "one"),
    set_text("Head/VoucherCount", ""),
    set_text("Head/MsgKind", "transfer"),
    set_text("Head/MsgKind", "VOUCHER"),
    set_text("Head/MsgKind", ""),
    set_text("Head/SendTime", "2026-03-01 08:59:00"),
    set_text("Head/SendTime", "yesterday"),
    drop("Head/VoucherCount"),
    drop("Head/SendTime"),
    add("Head", "Memo"),
    swap_src_and_des,
], ids=["count-0", "count-over-max-batch", "count-negative", "count-not-a-number",
        "count-empty", "unknown-kind", "kind-in-capitals", "kind-empty", "time-without-zone",
        "time-not-a-time", "no-count", "no-time", "extra-field", "fields-out-of-order"])
def test_a_head_signed_by_its_sender_but_shaped_wrong_is_malformed(
    net: Network, reader: Reader, change: Callable[[Any], None],
) -> None:
    data = net.tamper(net.seal(), change, resign=net.sender)

    with pytest.raises(EnvelopeMalformed) as refused:
        reader(data)

    assert refused.value.code == "ENVELOPE_MALFORMED"


def duplicate_des_node(root: Any) -> None:
    etree.SubElement(root.find("Head"), "DesNode").text = OTHER


def test_a_head_with_a_field_given_twice_is_malformed(net: Network, reader: Reader) -> None:
    data = net.tamper(net.seal(), duplicate_des_node, resign=net.sender)

    with pytest.raises(EnvelopeMalformed):
        reader(data)


def test_read_head_reads_a_well_formed_head_of_any_sender(net: Network) -> None:
    head = net.head(kind="query", vt_code="", admdiv="")

    assert read_head(net.seal(head=head)) == head
