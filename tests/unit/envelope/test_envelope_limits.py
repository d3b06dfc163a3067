"""Batch size, kinds and body shape: refused at seal when the sender can know, and at open always.

The body is checked after decryption, so these envelopes are genuine in every other way: the
sender's own certificate and signature, the key wrapped to the receiver, the Head as AAD. A sender
with a bug cannot make the receiver accept a body its Head does not describe.
"""

from __future__ import annotations

import pytest
from envelope_net import PAYLOADS, Network, b64

from guoku.transport.envelope import (
    MAX_BATCH,
    MAX_BATCH_PAYLOAD,
    MAX_ENVELOPE_BYTES,
    MAX_ITEM_BYTES,
    EnvelopeMalformed,
    EnvelopeTooLarge,
    Item,
)


def items(n: int) -> list[Item]:
    return [Item(f"VOU-{i:04d}", "voucher", PAYLOADS[0]) for i in range(n)]


# -- at seal -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "carried"), [(0, 0), (MAX_BATCH + 1, MAX_BATCH + 1), (2, 1),
                                                (1, 2), (0, 1)],
                         ids=["empty", "over-max-batch", "fewer-than-head-says",
                              "more-than-head-says", "head-says-zero"])
def test_sealing_a_batch_outside_1_to_max_batch_or_unlike_its_head_is_malformed(
    net: Network, count: int, carried: int,
) -> None:
    with pytest.raises(EnvelopeMalformed) as refused:
        net.seal(items(carried), head=net.head(count=count))

    assert refused.value.code == "ENVELOPE_MALFORMED"
    assert str(MAX_BATCH) in refused.value.message


def test_sealing_more_than_the_batch_payload_limit_is_too_large(net: Network) -> None:
    per_item = MAX_BATCH_PAYLOAD // 3 + 65536
    assert per_item < MAX_ITEM_BYTES
    big = [Item(f"VOU-{i}", "voucher", bytes(per_item)) for i in range(3)]

    with pytest.raises(EnvelopeTooLarge) as refused:
        net.seal(big)

    assert refused.value.code == "ENVELOPE_TOO_LARGE"
    assert str(MAX_BATCH_PAYLOAD) in refused.value.message


def test_a_full_batch_payload_still_fits_the_envelope_and_libxml2(net: Network) -> None:
    items = [Item(f"VOU-{i}", "voucher", bytes(MAX_BATCH_PAYLOAD // 2)) for i in range(2)]
    data = net.seal(items)
    assert len(data) <= MAX_ENVELOPE_BYTES
    assert net.open(data).items == tuple(items)


def test_sealing_a_head_of_unknown_msg_kind_is_malformed(net: Network) -> None:
    with pytest.raises(EnvelopeMalformed):
        net.seal(head=net.head(kind="transfer"))


@pytest.mark.parametrize("item", [Item("VOU-0001", "transfer", b"x"), Item("", "voucher", b"x")],
                         ids=["unknown-kind", "empty-message-id"])
def test_sealing_an_item_open_would_refuse_is_malformed(net: Network, item: Item) -> None:
    with pytest.raises(EnvelopeMalformed):
        net.seal([item])


def test_sealing_an_item_over_max_item_bytes_is_too_large(net: Network) -> None:
    with pytest.raises(EnvelopeTooLarge):
        net.seal([Item("VOU-BIG", "voucher", bytes(MAX_ITEM_BYTES + 1))])


def test_opening_an_item_over_max_item_bytes_is_too_large(net: Network) -> None:
    big = b64(bytes(MAX_ITEM_BYTES + 1))
    data = net.seal_raw(net.head(count=1), body(
        f'<VoucherBody MsgId="VOU-BIG" Kind="voucher"><Voucher>{big}</Voucher></VoucherBody>'))

    with pytest.raises(EnvelopeTooLarge):
        net.open(data)


# -- at open: the decrypted body -----------------------------------------------------------------


def body(*voucher_bodies: str, root: str = "VoucherBodies") -> bytes:
    return f"<{root}>{''.join(voucher_bodies)}</{root}>".encode()


ONE = f'<VoucherBody MsgId="VOU-1" Kind="voucher"><Voucher>{b64(b"x")}</Voucher></VoucherBody>'
TWO = f'<VoucherBody MsgId="VOU-2" Kind="receipt"><Voucher>{b64(b"y")}</Voucher></VoucherBody>'


def test_a_hand_built_body_of_the_right_shape_opens(net: Network) -> None:
    opened = net.open(net.seal_raw(net.head(count=2), body(ONE, TWO)))

    assert opened.items == (Item("VOU-1", "voucher", b"x"), Item("VOU-2", "receipt", b"y"))


@pytest.mark.parametrize(("count", "plaintext"), [
    (2, body(ONE)),
    (1, body(ONE, TWO)),
    (1, body()),
    (1, body(ONE, root="Vouchers")),
    (1, body(ONE.replace('Kind="voucher"', 'Kind="transfer"'))),
    (1, body(ONE.replace('Kind="voucher"', ""))),
    (1, body(ONE.replace('MsgId="VOU-1"', 'MsgId=""'))),
    (1, body(ONE.replace('MsgId="VOU-1" ', ""))),
    (1, body(ONE.replace("VoucherBody", "Item"))),
    (1, body(ONE.replace("</VoucherBody>", "<Voucher/></VoucherBody>"))),
    (1, body('<VoucherBody MsgId="VOU-1" Kind="voucher"/>')),
    (1, body(ONE.replace(b64(b"x"), "not base64!"))),
    (1, b"not xml"),
    (1, b'<!DOCTYPE VoucherBodies [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + body(ONE)),
], ids=["fewer-than-head", "more-than-head", "none", "wrong-root", "unknown-kind", "no-kind",
        "empty-msg-id", "no-msg-id", "wrong-item-tag", "two-payloads", "no-payload",
        "payload-not-base64", "not-xml", "doctype"])
def test_a_decrypted_body_unlike_its_head_or_the_format_is_malformed(
    net: Network, count: int, plaintext: bytes,
) -> None:
    data = net.seal_raw(net.head(count=count), plaintext)

    with pytest.raises(EnvelopeMalformed) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_MALFORMED"
