"""A small certified network for the envelope tests: one CA, three institutions, one trust store.

``F533103`` (a finance bureau) sends to ``B-ICBC`` (an agent bank); ``B-ABC`` is a third bank,
properly certified by the same CA, who plays the insider attacker. Tampering happens on the wire
bytes with lxml, the way a man in the middle would, and a forged signature is made over the same
bytes the receiver verifies: the exclusive C14N of ``<MOF>`` without its ``<Signature>``.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from guoku.security.ca import CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.security.crypto import SM4_KEY_BYTES, SM2PrivateKey, random_bytes, sm4_gcm_encrypt
from guoku.security.x509 import Certificate
from guoku.transport.envelope import Head, Item, Opened, open_envelope, seal_envelope

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ISSUED = NOW - timedelta(days=30)
CA_NAME = "云南省财政厅"
PASSPHRASE = "correct horse battery"
SENDER, RECEIVER, OTHER = "F533103", "B-ICBC", "B-ABC"

PAYLOADS: tuple[bytes, ...] = (
    "<Voucher><PayeeAcctName>云南省昆明市第一中学</PayeeAcctName></Voucher>".encode(),
    bytes(range(256)),
    '{"receipt": "已签收", "amount": "1234.56"}'.encode(),
    b"",
    b"\x00\xff<&>]]>\r\n" * 100,
)
"""Vouchers' XML, receipts' JSON, and bytes that are neither: every byte value, markup, empty."""


@dataclass(frozen=True)
class Party:
    code: str
    key: SM2PrivateKey
    cert: Certificate


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signed_bytes(root: Any) -> bytes:
    """What the receiver verifies: exclusive C14N of the envelope without its Signature."""
    unsigned = copy.deepcopy(root)
    unsigned.remove(unsigned.find("Signature"))
    return bytes(etree.tostring(unsigned, method="c14n", exclusive=True, with_comments=False))


def set_text(path: str, value: str) -> Callable[[Any], None]:
    """A tampering: replace the text of the element at ``path`` (e.g. ``Head/DesNode``)."""

    def change(root: Any) -> None:
        root.find(path).text = value

    return change


def institution(ca: CertificateAuthority, code: str, name: str, *, days: int = 365) -> Party:
    key = SM2PrivateKey.generate()
    return Party(code, key, ca.issue_institution(code, name, key.public_key(), ISSUED, days))


@dataclass(frozen=True)
class Network:
    ca: CertificateAuthority
    trust: TrustStore
    sender: Party
    receiver: Party
    other: Party

    def head(self, **changes: Any) -> Head:
        head = Head(sender=SENDER, receiver=RECEIVER, envelope_id="ENV-20260301-0001",
                    kind="voucher", vt_code="5201", admdiv="530000",
                    sent_at=NOW - timedelta(minutes=1, microseconds=250), count=1)
        return replace(head, **changes)

    def seal(
        self, items: Sequence[Item] | None = None, *, head: Head | None = None,
        sender: Party | None = None, sender_cert: Certificate | None = None,
        receiver_cert: Certificate | None = None,
    ) -> bytes:
        items = [Item("VOU-0001", "voucher", PAYLOADS[0])] if items is None else items
        signer = sender or self.sender
        return seal_envelope(
            head or self.head(count=len(items)), items,
            sender_cert=sender_cert or signer.cert,
            receiver_cert=receiver_cert or self.receiver.cert, sign=signer.key.sign,
        )

    def open(
        self, data: bytes, *, my_parties: frozenset[str] = frozenset({RECEIVER}),
        now: datetime = NOW, trust: TrustStore | None = None,
    ) -> Opened:
        return open_envelope(data, my_parties=my_parties, trust=trust or self.trust, now=now,
                             decrypt=self.decrypt)

    def decrypt(self, party: str, ciphertext: bytes) -> bytes:
        assert party == RECEIVER, f"asked to decrypt for {party}"
        return self.receiver.key.decrypt(ciphertext)

    def tamper(
        self, data: bytes, change: Callable[[Any], None], *, resign: Party | None = None,
    ) -> bytes:
        """Parse the wire bytes, ``change`` the tree, optionally re-sign, serialize again."""
        root = etree.fromstring(data)
        change(root)
        if resign is not None:
            root.find("Signature").text = b64(resign.key.sign(signed_bytes(root)))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    def seal_raw(self, head: Head, plaintext: bytes, *, signer: Party | None = None) -> bytes:
        """An envelope built by hand around any body plaintext: a sender with its own bugs.

        Everything else is genuine — the sender's certificate and signature, the key wrapped to
        the receiver, the Head as the body's AAD — so only the body's shape can be refused.
        """
        signer = signer or self.sender
        head_el = etree.Element("Head")
        for name, value in head.fields().items():
            etree.SubElement(head_el, name).text = value
        key = random_bytes(SM4_KEY_BYTES)
        aad = etree.tostring(head_el, method="c14n", exclusive=True)
        root = etree.Element("MOF", Version="1")
        root.append(head_el)
        for tag, value in (
            ("Cert", signer.cert.der),
            ("Key", self.receiver.cert.public_key.encrypt(key)),
            ("Body", sm4_gcm_encrypt(key, plaintext, aad=aad)),
            ("Signature", b""),
        ):
            etree.SubElement(root, tag).text = b64(value)
        root.find("Signature").text = b64(signer.key.sign(signed_bytes(root)))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
