"""The envelope (报文) nodes exchange, in the spirit of the specification's ``<MOF>`` message.

::

    <MOF Version="1">
      <Head><SrcNode/><DesNode/><MsgId/><MsgKind/><VtCode/><AdmDivCode/><SendTime/>
            <VoucherCount/></Head>
      <Cert>   the sender's institution certificate (DER, base64)
      <Key>    a fresh SM4 key, SM2-encrypted to the receiver's institution certificate
      <Body>   SM4-GCM(nonce || ciphertext || tag) of <VoucherBodies>, the Head as AAD
      <Signature>  SM2/SM3 by the sender's institution key over C14N(MOF without Signature)
    </MOF>

The plaintext body holds up to :data:`MAX_BATCH` items, each ``<VoucherBody MsgId Kind>`` with
its payload in base64: a voucher's XML, or a receipt's JSON. Items carry their own message ids,
so a batch is delivered exactly once item by item.

Opening checks, in this order, and refuses with a typed :class:`EnvelopeRejected`: size, XML
shape, receiver, sender certificate (chain, revocation, holder = SrcNode), signature, replay
window, decryption, body shape and item count.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lxml import etree

from guoku.domain.errors import GuokuError
from guoku.security.certs import TrustStore
from guoku.security.crypto import (
    SM4_KEY_BYTES,
    CryptoError,
    random_bytes,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)
from guoku.security.x509 import Certificate, CertificateInvalid, KeyUsage
from guoku.xml.parser import XmlLimits, parse_xml

FORMAT_VERSION: Final = "1"
MAX_ITEM_BYTES: Final = 4_718_592
"""4.5 MiB: the largest legal voucher (5,000 detail lines of Chinese text) is about 4.2 MiB."""
MAX_BATCH_PAYLOAD: Final = 5 * 1024 * 1024
"""Payload bytes one envelope carries at most (the messenger cuts batches by this too)."""
MAX_ENVELOPE_BYTES: Final = 9_500_000
"""The Body is one base64 text node, and libxml2 refuses a text node over 10,000,000
characters: 5 MiB of payload is about 8.9 M characters once encoded twice."""
MAX_BATCH: Final = 500
REPLAY_WINDOW: Final = timedelta(hours=72)
"""Envelopes older than this are refused; the inbox remembers item ids at least this long."""
CLOCK_SKEW: Final = timedelta(minutes=5)
KINDS: Final = frozenset({"voucher", "delivered", "receipt", "error", "query", "answer"})
ENVELOPE_LIMITS: Final = XmlLimits(max_bytes=MAX_ENVELOPE_BYTES, max_depth=8, max_elements=64)
BODY_LIMITS: Final = XmlLimits(max_bytes=MAX_ENVELOPE_BYTES, max_depth=8,
                               max_elements=4 * MAX_BATCH + 8)
_HEAD_FIELDS: Final = ("SrcNode", "DesNode", "MsgId", "MsgKind", "VtCode", "AdmDivCode",
                       "SendTime", "VoucherCount")


class EnvelopeRejected(GuokuError):
    code = "ENVELOPE_REJECTED"


class EnvelopeMalformed(EnvelopeRejected):
    code = "ENVELOPE_MALFORMED"


class EnvelopeTooLarge(EnvelopeRejected):
    code = "ENVELOPE_TOO_LARGE"


class WrongReceiver(EnvelopeRejected):
    code = "ENVELOPE_WRONG_RECEIVER"


class SenderUntrusted(EnvelopeRejected):
    code = "ENVELOPE_SENDER_UNTRUSTED"


class EnvelopeSignatureInvalid(EnvelopeRejected):
    code = "ENVELOPE_SIGNATURE_INVALID"


class EnvelopeReplayed(EnvelopeRejected):
    code = "ENVELOPE_REPLAYED"


class EnvelopeUndecryptable(EnvelopeRejected):
    code = "ENVELOPE_UNDECRYPTABLE"


@dataclass(frozen=True, slots=True)
class Item:
    message_id: str
    kind: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Head:
    sender: str
    receiver: str
    envelope_id: str
    kind: str
    vt_code: str
    admdiv: str
    sent_at: datetime
    count: int

    def fields(self) -> dict[str, str]:
        return {"SrcNode": self.sender, "DesNode": self.receiver, "MsgId": self.envelope_id,
                "MsgKind": self.kind, "VtCode": self.vt_code, "AdmDivCode": self.admdiv,
                "SendTime": self.sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "VoucherCount": str(self.count)}


@dataclass(frozen=True, slots=True)
class Opened:
    head: Head
    items: tuple[Item, ...]
    sender_cert: Certificate


def _sub(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _head_element(head: Head) -> Any:
    el = etree.Element("Head")
    for name, value in head.fields().items():
        _sub(el, name, value)
    return el


def _c14n(el: Any) -> bytes:
    return bytes(etree.tostring(el, method="c14n", exclusive=True, with_comments=False))


def _body_plaintext(items: Sequence[Item]) -> bytes:
    root = etree.Element("VoucherBodies")
    for item in items:
        body = _sub(root, "VoucherBody", MsgId=item.message_id, Kind=item.kind)
        _sub(body, "Voucher", _b64(item.payload))
    return _c14n(root)


def seal_envelope(
    head: Head, items: Sequence[Item], *, sender_cert: Certificate, receiver_cert: Certificate,
    sign: Callable[[bytes], bytes],
) -> bytes:
    """Encrypt ``items`` for the receiver and sign the whole with the sender's key."""
    _check_outgoing(head, items)
    head_el = _head_element(head)
    key = random_bytes(SM4_KEY_BYTES)
    body = sm4_gcm_encrypt(key, _body_plaintext(items), aad=_c14n(head_el))
    root = etree.Element("MOF", Version=FORMAT_VERSION)
    root.append(head_el)
    _sub(root, "Cert", _b64(sender_cert.der))
    _sub(root, "Key", _b64(receiver_cert.public_key.encrypt(key)))
    _sub(root, "Body", _b64(body))
    signed = _c14n(root)
    # the canonical form of the whole is the signed part with <Signature> added before the
    # root's end tag (no namespaces, base64 text): one serialisation of the body, not two
    signature = _c14n(_sub(etree.Element("MOF"), "Signature", _b64(sign(signed))))
    data = (b"<?xml version='1.0' encoding='UTF-8'?>\n" + signed[:-len(_MOF_END)] + signature
            + _MOF_END)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeTooLarge(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return data


def _check_outgoing(head: Head, items: Sequence[Item]) -> None:
    """Refuse at the sender what every receiver would refuse, before anything is signed."""
    if not 0 < len(items) <= MAX_BATCH or len(items) != head.count:
        raise EnvelopeMalformed(f"an envelope carries 1-{MAX_BATCH} items, as its head says")
    if head.kind not in KINDS or any(i.kind not in KINDS or not i.message_id for i in items):
        raise EnvelopeMalformed("unknown message kind or an item without a message id")
    if any(len(i.payload) > MAX_ITEM_BYTES for i in items):
        raise EnvelopeTooLarge(f"an item exceeds {MAX_ITEM_BYTES} bytes")
    if sum(len(i.payload) for i in items) > MAX_BATCH_PAYLOAD:
        raise EnvelopeTooLarge(f"the items exceed {MAX_BATCH_PAYLOAD} bytes together")


def read_head(data: bytes) -> Head:
    """The head alone, unauthenticated: to route, and to address an error receipt."""
    return _parse_head(_root(data))


def _root(data: bytes) -> Any:
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeTooLarge(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    try:
        root = parse_xml(data, limits=ENVELOPE_LIMITS)
    except GuokuError as exc:
        raise EnvelopeMalformed(f"envelope is not acceptable XML: {exc.message}") from exc
    if root.tag != "MOF" or root.get("Version") != FORMAT_VERSION:
        raise EnvelopeMalformed("envelope root must be <MOF Version=\"1\">")
    tags = [child.tag for child in root]
    if tags != ["Head", "Cert", "Key", "Body", "Signature"]:
        raise EnvelopeMalformed(f"envelope parts {tags} are not Head, Cert, Key, Body, Signature")
    return root


def _parse_head(root: Any) -> Head:
    head_el = root[0]
    tags = [child.tag for child in head_el]
    if tags != list(_HEAD_FIELDS):  # a list, not a dict: a repeated field is refused
        raise EnvelopeMalformed(f"envelope head fields {tags} are not {_HEAD_FIELDS}")
    values = {child.tag: (child.text or "") for child in head_el}
    try:
        sent_at = datetime.strptime(values["SendTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC)
        count = int(values["VoucherCount"])
    except ValueError as exc:
        raise EnvelopeMalformed(f"envelope head has a bad SendTime or VoucherCount: {exc}") from exc
    if values["MsgKind"] not in KINDS or not 0 < count <= MAX_BATCH:
        raise EnvelopeMalformed("envelope head has an unknown MsgKind or a bad VoucherCount")
    return Head(values["SrcNode"], values["DesNode"], values["MsgId"], values["MsgKind"],
                values["VtCode"], values["AdmDivCode"], sent_at, count)


def _unb64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeMalformed(f"envelope {what} is not base64") from exc


def open_envelope(
    data: bytes, *, my_parties: frozenset[str], trust: TrustStore, now: datetime,
    decrypt: Callable[[str, bytes], bytes],
) -> Opened:
    """Authenticate, check and decrypt an envelope addressed to one of ``my_parties``."""
    root = _root(data)
    head = _parse_head(root)
    if head.receiver not in my_parties:
        raise WrongReceiver(f"envelope {head.envelope_id} is for {head.receiver}, not this node",
                            envelope_id=head.envelope_id)
    cert = _sender_certificate(root, head, trust, now)
    _check_signature(root, cert, head)
    if not now - REPLAY_WINDOW <= head.sent_at <= now + CLOCK_SKEW:
        raise EnvelopeReplayed(
            f"envelope {head.envelope_id} was sent at {head.sent_at}, outside the replay window",
            envelope_id=head.envelope_id)
    plaintext = _decrypt_body(root, head, decrypt)
    return Opened(head, _items(plaintext, head), cert)


def _sender_certificate(root: Any, head: Head, trust: TrustStore, now: datetime) -> Certificate:
    try:
        cert = Certificate.from_der(_unb64(root[1].text, "certificate"))
        trust.validate(cert, now, KeyUsage.DIGITAL_SIGNATURE)
    except (CertificateInvalid, CryptoError) as exc:
        raise SenderUntrusted(f"the sender certificate of {head.envelope_id} is not trusted: "
                              f"{exc.message}", envelope_id=head.envelope_id,
                              cause=exc.code) from exc
    holder = cert.holder
    if holder is None or holder.username is not None or holder.party_code != head.sender:
        raise SenderUntrusted(f"the certificate does not belong to institution {head.sender}",
                              envelope_id=head.envelope_id)
    return cert


def _check_signature(root: Any, cert: Certificate, head: Head) -> None:
    signature = _unb64(root[4].text, "signature")
    if not cert.public_key.is_valid_signature(signature, _signed_part(root)):
        raise EnvelopeSignatureInvalid(f"the signature of envelope {head.envelope_id} does not "
                                       f"verify with {head.sender}'s certificate",
                                       envelope_id=head.envelope_id)


def _signed_part(root: Any) -> bytes:
    """The canonical bytes the sender signed: ``<MOF Version="1">`` with the first four parts,
    whatever else the received tree holds (root attributes, text or tails between the parts).
    Built without copying the body, which holds every voucher of the envelope."""
    head = etree.Element("MOF", Version=FORMAT_VERSION)
    parts = []
    for child in list(root)[:4]:
        tail, child.tail = child.tail, None
        parts.append(etree.tostring(child, method="c14n", exclusive=True, with_comments=False))
        child.tail = tail
    start = _c14n(head)[:-len(_MOF_END)]
    return bytes(start) + b"".join(parts) + _MOF_END


_MOF_END: Final = b"</MOF>"


def _copy(el: Any) -> Any:
    return etree.fromstring(etree.tostring(el))


def _decrypt_body(root: Any, head: Head, decrypt: Callable[[str, bytes], bytes]) -> bytes:
    try:
        key = decrypt(head.receiver, _unb64(root[2].text, "key"))
        return sm4_gcm_decrypt(key, _unb64(root[3].text, "body"), aad=_c14n(_copy(root[0])))
    except CryptoError as exc:
        raise EnvelopeUndecryptable(f"envelope {head.envelope_id} does not decrypt: "
                                    f"{exc.message}", envelope_id=head.envelope_id) from exc


def _items(plaintext: bytes, head: Head) -> tuple[Item, ...]:
    try:
        root = parse_xml(plaintext, limits=BODY_LIMITS)
    except GuokuError as exc:
        raise EnvelopeMalformed(f"envelope body is not acceptable XML: {exc.message}") from exc
    items = []
    for body in root:
        kind, msg_id = body.get("Kind"), body.get("MsgId")
        if body.tag != "VoucherBody" or kind not in KINDS or not msg_id or len(body) != 1:
            raise EnvelopeMalformed("envelope body items must be <VoucherBody MsgId Kind>")
        payload = _unb64(body[0].text, "item")
        if len(payload) > MAX_ITEM_BYTES:
            raise EnvelopeTooLarge(f"item {msg_id} exceeds {MAX_ITEM_BYTES} bytes")
        items.append(Item(msg_id, kind, payload))
    if root.tag != "VoucherBodies" or len(items) != head.count:
        raise EnvelopeMalformed(f"envelope body holds {len(items)} items, its head says "
                                f"{head.count}")
    return tuple(items)
