"""What a sealed envelope carries, and what it does not show: the good path of seal and open."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from envelope_net import NOW, OTHER, PAYLOADS, RECEIVER, SENDER, Network, set_text, signed_bytes
from lxml import etree

from guoku.transport.envelope import (
    CLOCK_SKEW,
    KINDS,
    MAX_BATCH,
    MAX_ENVELOPE_BYTES,
    MAX_ITEM_BYTES,
    REPLAY_WINDOW,
    Item,
    read_head,
)


def full_batch() -> list[Item]:
    kinds = sorted(KINDS)
    return [Item(f"VOU-{i:04d}", kinds[i % len(kinds)],
                 PAYLOADS[i % len(PAYLOADS)] + i.to_bytes(2, "big"))
            for i in range(MAX_BATCH)]


def test_one_item_comes_back_with_the_head_and_the_sender_certificate(net: Network) -> None:
    head = net.head()
    item = Item("VOU-0001", "voucher", PAYLOADS[0])

    opened = net.open(net.seal([item], head=head))

    assert opened.items == (item,)
    assert opened.head == head
    assert (opened.head.sender, opened.head.receiver, opened.head.count) == (SENDER, RECEIVER, 1)
    assert opened.head.sent_at == head.sent_at  # microseconds survive the wire
    assert opened.sender_cert == net.sender.cert


def test_a_full_batch_of_max_batch_items_comes_back_in_order(net: Network) -> None:
    items = full_batch()
    head = net.head(count=MAX_BATCH, kind="receipt")

    opened = net.open(net.seal(items, head=head))

    assert opened.items == tuple(items)
    assert opened.head == head
    assert {item.payload[:-2] for item in opened.items} == set(PAYLOADS)


def test_the_wire_shows_neither_payloads_nor_item_ids(net: Network) -> None:
    items = [Item(f"SECRET-ITEM-{i}", "voucher", payload) for i, payload in enumerate(PAYLOADS)]
    data = net.seal(items)

    for item in items:
        assert item.message_id.encode() not in data
        if item.payload:
            assert item.payload[:32] not in data
            assert base64.b64encode(item.payload)[:32] not in data
    assert "云南省昆明市第一中学".encode() not in data
    assert b"VoucherBod" not in data


def test_two_seals_of_the_same_items_share_no_key_and_no_ciphertext(net: Network) -> None:
    head = net.head()
    first, second = (etree.fromstring(net.seal(head=head)) for _ in range(2))

    assert first.find("Key").text != second.find("Key").text
    assert first.find("Body").text != second.find("Body").text
    assert etree.tostring(first.find("Head")) == etree.tostring(second.find("Head"))


def test_the_signature_covers_the_exclusive_c14n_of_mof_without_its_signature(
    net: Network,
) -> None:
    root = etree.fromstring(net.seal())
    signature = base64.b64decode(root.find("Signature").text)

    assert [part.tag for part in root] == ["Head", "Cert", "Key", "Body", "Signature"]
    assert net.sender.cert.public_key.is_valid_signature(signature, signed_bytes(root))


def test_an_envelope_re_signed_unchanged_by_its_sender_still_opens(net: Network) -> None:
    data = net.tamper(net.seal(), lambda root: None, resign=net.sender)

    assert net.open(data).items[0].payload == PAYLOADS[0]


def test_a_node_hosting_several_parties_opens_an_envelope_for_any_of_them(net: Network) -> None:
    opened = net.open(net.seal(), my_parties=frozenset({OTHER, RECEIVER, "PBOC-KM"}))

    assert opened.head.receiver == RECEIVER


@pytest.mark.parametrize("sent_at", [NOW - REPLAY_WINDOW, NOW + CLOCK_SKEW, NOW],
                         ids=["oldest-allowed", "furthest-future-allowed", "now"])
def test_send_times_at_the_edges_of_the_replay_window_are_accepted(
    net: Network, sent_at: datetime,
) -> None:
    opened = net.open(net.seal(head=net.head(sent_at=sent_at)))

    assert opened.head.sent_at == sent_at


def test_read_head_gives_the_routing_facts_without_verifying_anything(net: Network) -> None:
    head = net.head(receiver=OTHER, sent_at=NOW - 10 * REPLAY_WINDOW)
    forged = net.seal(head=head, sender=net.other, sender_cert=net.receiver.cert)
    forged = net.tamper(forged, set_text("Signature", "AAAA"))

    assert read_head(forged) == head


def test_an_item_within_max_item_bytes_in_an_envelope_within_max_envelope_bytes_opens(
    net: Network,
) -> None:
    item = Item("VOU-BIG", "voucher", b"\x01" * MAX_ITEM_BYTES)
    data = net.seal([item])
    assert len(data) < MAX_ENVELOPE_BYTES

    assert net.open(data).items == (item,)
