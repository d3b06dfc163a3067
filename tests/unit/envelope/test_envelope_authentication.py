"""Who may send, to whom, when, and whether a byte changed on the way: every check has a refusal.

open_envelope checks receiver, sender certificate, signature, replay window and decryption in
that order, so a tampering is refused by the first check it breaks; these tests pin the order.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from envelope_net import (
    CA_NAME,
    ISSUED,
    NOW,
    OTHER,
    PASSPHRASE,
    RECEIVER,
    SENDER,
    Network,
    Party,
    b64,
    institution,
    set_text,
)
from lxml import etree

from guoku.domain.errors import GuokuError
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import RevocationReason, TrustStore
from guoku.security.crypto import SM2PrivateKey
from guoku.security.x509 import CertificateRevoked
from guoku.transport.envelope import (
    CLOCK_SKEW,
    REPLAY_WINDOW,
    EnvelopeMalformed,
    EnvelopeRejected,
    EnvelopeReplayed,
    EnvelopeSignatureInvalid,
    EnvelopeTooLarge,
    EnvelopeUndecryptable,
    SenderUntrusted,
    WrongReceiver,
    read_head,
)

ENVELOPE_ID = "ENV-20260301-0001"


def flip_a_body_byte(root: Any) -> None:
    body = bytearray(base64.b64decode(root.find("Body").text))
    body[len(body) // 2] ^= 0x01
    root.find("Body").text = b64(bytes(body))


def test_every_refusal_is_an_envelope_rejected_with_its_own_stable_code() -> None:
    errors = (EnvelopeMalformed, EnvelopeTooLarge, WrongReceiver, SenderUntrusted,
              EnvelopeSignatureInvalid, EnvelopeReplayed, EnvelopeUndecryptable)

    assert all(issubclass(error, EnvelopeRejected) for error in errors)
    assert issubclass(EnvelopeRejected, GuokuError)
    assert [error.code for error in errors] == [
        "ENVELOPE_MALFORMED", "ENVELOPE_TOO_LARGE", "ENVELOPE_WRONG_RECEIVER",
        "ENVELOPE_SENDER_UNTRUSTED", "ENVELOPE_SIGNATURE_INVALID", "ENVELOPE_REPLAYED",
        "ENVELOPE_UNDECRYPTABLE"]


# -- receiver ------------------------------------------------------------------------------------


def test_an_envelope_for_another_party_is_refused_as_wrong_receiver(net: Network) -> None:
    with pytest.raises(WrongReceiver) as refused:
        net.open(net.seal(), my_parties=frozenset({OTHER, "PBOC-KM"}))

    assert refused.value.code == "ENVELOPE_WRONG_RECEIVER"
    assert refused.value.details == {"envelope_id": ENVELOPE_ID}


def test_a_des_node_redirected_to_a_party_this_node_lacks_is_refused_as_wrong_receiver(
    net: Network,
) -> None:
    data = net.tamper(net.seal(), set_text("Head/DesNode", OTHER))

    with pytest.raises(WrongReceiver) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_WRONG_RECEIVER"


def test_a_des_node_redirected_to_another_party_of_this_node_fails_the_signature(
    net: Network,
) -> None:
    data = net.tamper(net.seal(), set_text("Head/DesNode", OTHER))

    with pytest.raises(EnvelopeSignatureInvalid) as refused:
        net.open(data, my_parties=frozenset({RECEIVER, OTHER}))

    assert refused.value.code == "ENVELOPE_SIGNATURE_INVALID"


# -- signature -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("VoucherCount", "2"),
    ("AdmDivCode", "530100"),
    ("VtCode", "8202"),
    ("MsgId", "ENV-20260301-0002"),
    ("MsgKind", "receipt"),
    ("SendTime", "2026-03-01T08:30:00.000000Z"),
    ("SendTime", "2026-02-01T08:30:00.000000Z"),  # also outside the window: signature first
])
def test_a_head_field_changed_after_sealing_fails_the_signature(
    net: Network, field: str, value: str,
) -> None:
    data = net.tamper(net.seal(), set_text(f"Head/{field}", value))

    with pytest.raises(EnvelopeSignatureInvalid) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SIGNATURE_INVALID"
    assert refused.value.details == {"envelope_id": read_head(data).envelope_id}


def test_a_src_node_changed_after_sealing_is_refused_before_the_signature(net: Network) -> None:
    data = net.tamper(net.seal(), set_text("Head/SrcNode", OTHER))

    with pytest.raises(SenderUntrusted) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SENDER_UNTRUSTED"
    assert "cause" not in refused.value.details


def test_a_byte_of_the_body_changed_fails_the_signature(net: Network) -> None:
    data = net.tamper(net.seal(), flip_a_body_byte)

    with pytest.raises(EnvelopeSignatureInvalid) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SIGNATURE_INVALID"


@pytest.mark.parametrize("signer", ["other", "receiver"])
def test_a_valid_signature_by_another_key_fails_the_signature(net: Network, signer: str) -> None:
    data = net.tamper(net.seal(), lambda root: None, resign=getattr(net, signer))

    with pytest.raises(EnvelopeSignatureInvalid) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SIGNATURE_INVALID"


def test_a_tampered_head_re_signed_with_the_attackers_own_key_fails_the_signature(
    net: Network,
) -> None:
    data = net.tamper(net.seal(), set_text("Head/AdmDivCode", "530100"), resign=net.other)

    with pytest.raises(EnvelopeSignatureInvalid):
        net.open(data)


@pytest.mark.parametrize("signature", ["", "AAAA", b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")],
                         ids=["empty", "junk", "r=s=1"])
def test_a_signature_that_is_not_a_signature_fails_the_signature(
    net: Network, signature: str,
) -> None:
    data = net.tamper(net.seal(), set_text("Signature", signature))

    with pytest.raises(EnvelopeSignatureInvalid):
        net.open(data)


def test_a_signature_that_is_not_base64_is_malformed(net: Network) -> None:
    data = net.tamper(net.seal(), set_text("Signature", "not base64!"))

    with pytest.raises(EnvelopeMalformed) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_MALFORMED"


# -- sender certificate --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Party:
    """A CA of the same name as the real one, certifying an attacker's key as F533103."""
    ca = CertificateAuthority.create(tmp_path_factory.mktemp("rogue") / "ca", CA_NAME,
                                     PASSPHRASE, ISSUED, kdf_iterations=MIN_KDF_ITERATIONS)
    return institution(ca, SENDER, "云南省财政厅国库处")


@pytest.fixture(scope="module")
def revoked(net: Network, tmp_path_factory: pytest.TempPathFactory) -> tuple[Party, TrustStore]:
    """A second F533103 certificate, revoked an hour ago, and a trust store with the new CRL."""
    party = institution(net.ca, SENDER, "云南省财政厅国库处")
    net.ca.revoke(party.cert.serial, NOW - timedelta(hours=1), RevocationReason.KEY_COMPROMISE)
    directory: Path = net.ca.export_trust(tmp_path_factory.mktemp("trust-revoked"), NOW)
    return party, TrustStore.from_directory(directory)


def test_a_sender_certificate_from_a_rogue_ca_is_untrusted(net: Network, rogue: Party) -> None:
    data = net.seal(sender=rogue)

    with pytest.raises(SenderUntrusted) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SENDER_UNTRUSTED"
    assert refused.value.details == {"envelope_id": ENVELOPE_ID, "cause": "UNKNOWN_CA"}


def test_a_sender_certificate_revoked_before_now_is_untrusted(
    net: Network, revoked: tuple[Party, TrustStore],
) -> None:
    party, trust = revoked
    data = net.seal(sender=party)
    assert net.open(data).sender_cert == party.cert  # the old CRL does not know yet

    with pytest.raises(SenderUntrusted) as refused:
        net.open(data, trust=trust)

    assert refused.value.code == "ENVELOPE_SENDER_UNTRUSTED"
    assert refused.value.details["cause"] == "CERTIFICATE_REVOKED"
    assert isinstance(refused.value.__cause__, CertificateRevoked)


def test_the_revocation_of_one_certificate_leaves_the_senders_others_trusted(
    net: Network, revoked: tuple[Party, TrustStore],
) -> None:
    _, trust = revoked

    assert net.open(net.seal(), trust=trust).head.sender == SENDER


def test_an_expired_sender_certificate_is_untrusted(net: Network) -> None:
    expired = institution(net.ca, SENDER, "云南省财政厅国库处", days=1)

    with pytest.raises(SenderUntrusted) as refused:
        net.open(net.seal(sender=expired))

    assert refused.value.details["cause"] == "CERTIFICATE_EXPIRED"


def test_another_partys_certificate_cannot_send_in_the_senders_name(net: Network) -> None:
    data = net.seal(sender=net.other)  # B-ABC signs with its own valid certificate

    with pytest.raises(SenderUntrusted) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SENDER_UNTRUSTED"
    assert refused.value.details == {"envelope_id": ENVELOPE_ID}
    assert SENDER in refused.value.message


def test_another_partys_certificate_swapped_into_a_sealed_envelope_is_untrusted(
    net: Network,
) -> None:
    data = net.tamper(net.seal(), set_text("Cert", b64(net.other.cert.der)), resign=net.other)

    with pytest.raises(SenderUntrusted) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_SENDER_UNTRUSTED"


def test_a_clerks_personal_certificate_cannot_send_for_the_institution(net: Network) -> None:
    key = SM2PrivateKey.generate()
    personal = net.ca.issue_personal("zhangsan", SENDER, "张三", key.public_key(), ISSUED)
    clerk = Party(SENDER, key, personal)
    assert personal.holder is not None and personal.holder.party_code == SENDER

    with pytest.raises(SenderUntrusted) as refused:
        net.open(net.seal(sender=clerk))

    assert refused.value.code == "ENVELOPE_SENDER_UNTRUSTED"
    assert "cause" not in refused.value.details


def test_a_ca_certificate_cannot_send_envelopes(net: Network) -> None:
    with pytest.raises(SenderUntrusted) as refused:
        net.open(net.seal(sender_cert=net.ca.issuing))

    assert refused.value.details["cause"] == "KEY_USAGE_INVALID"


def test_a_cert_that_is_not_a_certificate_is_untrusted(net: Network) -> None:
    data = net.tamper(net.seal(), set_text("Cert", b64(b"\x30\x03\x02\x01\x01")))

    with pytest.raises(SenderUntrusted) as refused:
        net.open(data)

    assert refused.value.details["cause"] == "CERTIFICATE_INVALID"


def test_a_cert_that_is_not_base64_is_malformed(net: Network) -> None:
    with pytest.raises(EnvelopeMalformed):
        net.open(net.tamper(net.seal(), set_text("Cert", "%%%")))


# -- replay window -------------------------------------------------------------------------------


@pytest.mark.parametrize("sent_at", [
    NOW - REPLAY_WINDOW - timedelta(microseconds=1),
    NOW - 2 * REPLAY_WINDOW,
    NOW + CLOCK_SKEW + timedelta(microseconds=1),
    NOW + timedelta(days=1),
], ids=["just-older-than-window", "long-ago", "just-beyond-skew", "tomorrow"])
def test_a_send_time_outside_the_replay_window_is_refused_as_replayed(
    net: Network, sent_at: Any,
) -> None:
    data = net.seal(head=net.head(sent_at=sent_at))

    with pytest.raises(EnvelopeReplayed) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_REPLAYED"
    assert refused.value.details == {"envelope_id": ENVELOPE_ID}


# -- decryption ----------------------------------------------------------------------------------


def test_a_key_wrapped_for_a_third_partys_certificate_is_undecryptable(net: Network) -> None:
    data = net.seal(receiver_cert=net.other.cert)

    with pytest.raises(EnvelopeUndecryptable) as refused:
        net.open(data)

    assert refused.value.code == "ENVELOPE_UNDECRYPTABLE"
    assert refused.value.details == {"envelope_id": ENVELOPE_ID}


def test_a_head_changed_and_re_signed_by_the_sender_does_not_decrypt_the_head_is_the_aad(
    net: Network,
) -> None:
    data = net.tamper(net.seal(), set_text("Head/AdmDivCode", "530100"), resign=net.sender)

    with pytest.raises(EnvelopeUndecryptable):
        net.open(data)


def test_a_body_corrupted_before_the_sender_signed_it_is_undecryptable(net: Network) -> None:
    data = net.tamper(net.seal(), flip_a_body_byte, resign=net.sender)

    with pytest.raises(EnvelopeUndecryptable):
        net.open(data)


def test_a_key_from_another_envelope_does_not_open_this_body(net: Network) -> None:
    donor_key = etree.fromstring(net.seal()).find("Key").text
    data = net.tamper(net.seal(), set_text("Key", donor_key), resign=net.sender)

    with pytest.raises(EnvelopeUndecryptable):
        net.open(data)

