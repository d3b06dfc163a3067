"""The fast paths of sealing and verification give what the plain paths give, and no cache
hides a forged, tampered or revoked input (docs/decisions/0009-sealing-throughput.md, A-E).

A  prefix-hashed SM2 (crypto): signatures the plain path verifies, and the reverse;
B  palette seal pictures (seal_image): the same pixels as the RGBA picture;
C  one element for canonical bytes and XML (canonical): the same bytes as the two calls;
D  caches of parsed seals, verified maker signatures and prefix states (seals);
E  stamps' base64 checked in Python (codec): the same verdicts as the exported schema, each
   stamp decoded once, a decoded head reused only for a text that starts with it exactly.
"""

from __future__ import annotations

import base64
import io
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from lxml import etree
from PIL import Image

from guoku.domain.errors import SchemaInvalid
from guoku.domain.seals import SealKind
from guoku.security import seal_image, seals, ses
from guoku.security.batch_sealing import (
    CachingTrustStore,
    SealStamper,
    seal_batch_xml,
    verify_batch,
)
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.security.crypto import SignatureInvalid, SM2PrivateKey
from guoku.security.sealing import VoucherVerifier
from guoku.security.seals import (
    MAX_CACHED,
    Seal,
    SealChainInvalid,
    SealDataMismatch,
    SealMakerSignatureInvalid,
    make_seal,
    parse_seal_signature,
    verify_seal_signature,
)
from guoku.security.x509 import Certificate
from guoku.xml import codec
from guoku.xml.canonical import canonical_and_body, canonical_bytes, read_voucher
from guoku.xml.codec import decode_stamp, from_xml, to_xml
from guoku.xml.parser import parse_xml
from guoku.xml.samples import sample_document
from guoku.xml.xsd import schema_for, xsd_text

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AT = NOW + timedelta(hours=1)
PARTY = "B-ICBC"


# --- A: prefix-hashed SM2 ----------------------------------------------------------------------


@pytest.mark.parametrize(("prefix_len", "suffix_len"), [(0, 5), (1, 0), (64, 64), (30_000, 700)])
def test_prefix_signatures_are_plain_signatures_both_ways(prefix_len: int, suffix_len: int) -> None:
    key = SM2PrivateKey.generate()
    public = key.public_key()
    prefix, suffix = os.urandom(prefix_len), os.urandom(suffix_len)
    by_prefix = key.prefix_signer(prefix).sign(suffix)
    public.verify(by_prefix, prefix + suffix)  # the plain path accepts the prefix path's
    verifier = public.prefix_verifier(prefix)
    verifier.verify(key.sign(prefix + suffix), suffix)  # and the reverse
    verifier.verify(by_prefix, suffix)
    with pytest.raises(SignatureInvalid):
        verifier.verify(by_prefix, suffix + b"x")
    with pytest.raises(SignatureInvalid):
        SM2PrivateKey.generate().public_key().prefix_verifier(prefix).verify(by_prefix, suffix)
    if prefix:
        with pytest.raises(SignatureInvalid):  # the prefix is part of what is verified
            public.prefix_verifier(bytes([prefix[0] ^ 1]) + prefix[1:]).verify(by_prefix, suffix)


@pytest.mark.parametrize("bad", [b"", b"\x30\x00", b"\x30\x06\x02\x01\x01\x02\x01\x01", b"x" * 72])
def test_a_malformed_signature_is_signature_invalid_on_the_prefix_path(bad: bytes) -> None:
    verifier = SM2PrivateKey.generate().public_key().prefix_verifier(b"head")
    with pytest.raises(SignatureInvalid):
        verifier.verify(bad, b"tail")


def test_one_prefix_state_signs_and_verifies_many_messages() -> None:
    key = SM2PrivateKey.generate()
    signer, verifier = key.prefix_signer(b"P" * 1000), key.public_key().prefix_verifier(b"P" * 1000)
    for i in range(20):
        suffix = i.to_bytes(2, "big") * i
        verifier.verify(signer.sign(suffix), suffix)
        key.public_key().verify(signer.sign(suffix), b"P" * 1000 + suffix)


# --- B: palette pictures -----------------------------------------------------------------------


def test_a_palette_picture_keeps_every_rgba_pixel_of_the_mask() -> None:
    rng = random.Random(7)
    mask = Image.new("L", (160, 160))
    mask.putdata([rng.randrange(256) if (x // 9 + y // 7) % 3 else 0
                  for y in range(160) for x in range(160)])  # fmt: skip
    png = seal_image._to_png(mask, (80, 80))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "P"
    expected = Image.new("RGBA", (80, 80), (*seal_image.SEAL_RED, 0))
    expected.putalpha(mask.resize((80, 80), Image.Resampling.LANCZOS))
    assert image.convert("RGBA").tobytes() == expected.tobytes()
    rgba = io.BytesIO()
    expected.save(rgba, format="PNG", optimize=False)
    assert len(png) < len(rgba.getvalue())


# --- C: one element ----------------------------------------------------------------------------


@pytest.mark.parametrize("vt_code", ["2301", "8202"])
def test_canonical_and_body_are_the_two_calls(vt_code: str) -> None:
    doc = sample_document(vt_code, details=3)
    canonical, body = canonical_and_body(doc)
    assert canonical == canonical_bytes(doc)
    assert body == to_xml(doc)


# --- E: stamps' base64 -------------------------------------------------------------------------


def _schema_says_base64(text: str) -> bool:
    """The exported schema's verdict (xs:base64Binary, minLength 1) on one stamp text."""
    doc = sample_document("2301")
    root = etree.fromstring(to_xml(doc))
    etree.SubElement(etree.SubElement(root, "Stamps"), "Stamp", No="1").text = text
    schema = etree.XMLSchema(parse_xml(xsd_text(doc.vtype).encode("utf-8")))
    return bool(schema.validate(root))


@pytest.mark.parametrize(
    "text",
    ["QUJD", "QUJDRA==", "QUJDREU=", "QR==", "QQ==", "QUJ", "Q=Q=", "====", "", " ", "QU JD",
     "QUJD\nRA==", "QUJD\n", "not base64!", "QUJDRA=", "QUJDRA==QUJD", "ab+/", "ab-_"],
)  # fmt: skip
def test_the_python_check_agrees_with_the_exported_schema(text: str) -> None:
    decoded = decode_stamp(text)
    assert (decoded is not None) == _schema_says_base64(text), text
    if decoded is not None:
        assert decoded == base64.b64decode("".join(text.split()), validate=True)


def test_the_compiled_schema_leaves_the_stamp_to_python_and_the_exported_keeps_base64() -> None:
    vtype = sample_document("2301").vtype
    assert 'base="xs:base64Binary"' in xsd_text(vtype)
    assert "xs:base64Binary" not in xsd_text(vtype, stamps_as_base64=False)
    assert schema_for(vtype) is schema_for(vtype)
    bad = to_xml(sample_document("2301").with_stamps({"1": "QUJD"})).replace(b"QUJD", b"QR==")
    with pytest.raises(SchemaInvalid, match="base64"):
        from_xml(bad)


def test_a_decoded_head_is_reused_only_for_a_text_that_starts_with_it() -> None:
    raw = os.urandom(9000)
    text = base64.b64encode(raw).decode("ascii")
    codec._decoded_heads.clear()
    assert decode_stamp(text) == raw  # decoded in full, head remembered
    assert len(codec._decoded_heads) == 1
    other = raw[:-10] + os.urandom(10)  # same head, another tail
    assert decode_stamp(base64.b64encode(other).decode("ascii")) == other
    changed = bytearray(raw)
    changed[100] ^= 0xFF  # a change inside the remembered head (after the key characters)
    assert decode_stamp(base64.b64encode(bytes(changed)).decode("ascii")) == bytes(changed)
    assert decode_stamp(text[:-4] + "QR==") is None  # a bad tail behind a known head
    assert decode_stamp(text[:-4] + "!!!!") is None
    assert decode_stamp(text[:5000] + "\n" + text[5000:]) == raw  # line breaks still allowed
    assert decode_stamp(text) == raw
    for i in range(codec.MAX_DECODED_HEADS + 5):  # bounded
        decode_stamp(base64.b64encode(bytes([i]) * 4000).decode("ascii"))
    assert len(codec._decoded_heads) <= codec.MAX_DECODED_HEADS


# --- D and the whole path: a world with a CA, a bank seal with a sizeable picture ----------------


@dataclass
class World:
    ca: CertificateAuthority
    base: Path
    key: SM2PrivateKey
    cert: Certificate
    seal: Seal
    maker: tuple[SM2PrivateKey, Certificate]


def noisy_png(size: int = 72) -> bytes:
    """A picture that does not compress: the seal is tens of kilobytes, like a real one."""
    rng = random.Random(size)
    image = Image.new("RGBA", (size, size))
    image.putdata([(218, 37, 29, rng.randrange(256)) for _ in range(size * size)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("fast-ca")
    ca = CertificateAuthority.create(
        base / "ca", "fast", "correct horse battery", NOW - timedelta(days=1),
        kdf_iterations=MIN_KDF_ITERATIONS,
    )  # fmt: skip
    maker_key = SM2PrivateKey.generate()
    maker = (maker_key, ca.issue_institution("SEAL-MAKER", "制章", maker_key.public_key(), NOW))
    key = SM2PrivateKey.generate()
    cert = ca.issue_institution(PARTY, "工商银行", key.public_key(), NOW)
    seal = make_seal(
        f"{PARTY}-bank", "工商银行", SealKind.BANK_BUSINESS, [cert.der], noisy_png(), NOW,
        NOW + timedelta(days=30), maker_key, maker[1].der, NOW,
    )  # fmt: skip
    ca.export_trust(base / "trust", NOW)
    return World(ca, base, key, cert, seal, maker)


def sealed(world: World, count: int = 3, prefix: str = "F") -> list[bytes]:
    docs = [sample_document("2301", voucher_no=f"{prefix}{i:04d}") for i in range(count)]
    stamper = SealStamper(world.seal, world.key, world.cert.der)
    return seal_batch_xml(docs, {SealKind.BANK_BUSINESS: stamper}, AT, "clerk")


def trust(world: World) -> TrustStore:
    return TrustStore.from_directory(world.base / "trust")


def restamp(xml: bytes, change: bytes, at: int) -> bytes:
    """The voucher with its stamp's DER changed at ``at`` (xor ``change``), re-encoded."""
    doc = from_xml(xml)
    der = bytearray(base64.b64decode(doc.stamps["1"]))
    for i, byte in enumerate(change):
        der[at + i] ^= byte
    return to_xml(doc.with_stamps({"1": base64.b64encode(bytes(der)).decode("ascii")}))


def test_read_voucher_is_from_xml_and_canonical_bytes_in_one(world: World) -> None:
    for xml in sealed(world):
        received = read_voucher(xml)
        doc = from_xml(xml)
        assert received.doc == doc
        assert received.canonical == canonical_bytes(doc.without_stamps())
        assert received.stamps == {"1": base64.b64decode(doc.stamps["1"])}


def test_the_signer_signature_verifies_on_the_plain_path(world: World) -> None:
    for xml in sealed(world):
        sig = parse_seal_signature(read_voucher(xml).stamps["1"])
        assert sig.seal_offset > 0
        sig.signer_cert.public_key.verify(sig.signature, sig.to_sign)  # plain, whole message
        sig.verify_signer_signature()  # prefix state


def _verdicts(world: World, xmls: list[bytes], store: TrustStore | None = None) -> list[str]:
    verifier = VoucherVerifier(store or CachingTrustStore.of(trust(world)))
    return [
        "ok" if v.ok else type(v.error).__name__ for v in verify_batch(xmls, verifier, PARTY, AT)
    ]


def test_tampering_after_a_successful_verify_is_still_refused(world: World) -> None:
    xmls = sealed(world, 2, "T")
    assert _verdicts(world, xmls) == ["ok", "ok"]  # every cache is now warm with this seal
    der = read_voucher(xmls[0]).stamps["1"]
    sig = parse_seal_signature(der)
    picture = der.find(world.seal.picture)
    maker_sig = der.find(world.seal.maker_signature)
    signer_sig = der.rfind(sig.signature)
    data_hash = der.find(sig.data_hash)
    assert min(picture, maker_sig, signer_sig, data_hash) > 0
    tampered = [
        restamp(xmls[0], b"\x01", picture + 500),  # the seal's picture (esealInfo)
        restamp(xmls[0], b"\x01", maker_sig + 10),  # the maker's signature
        restamp(xmls[0], b"\x01", signer_sig + 20),  # the signer's signature
        restamp(xmls[0], b"\x01", data_hash + 3),  # the stamped hash
        xmls[1].replace(b"<VoucherNo>T0001<", b"<VoucherNo>T0009<"),  # the voucher
    ]
    assert _verdicts(world, tampered) == [
        "SealSignatureInvalid",  # the seal is inside TBS_Sign: the signer's signature fails
        "SealSignatureInvalid",
        "SealSignatureInvalid",
        "SealSignatureInvalid",
        "SealDataMismatch",
    ]
    assert _verdicts(world, xmls) == ["ok", "ok"]  # and the genuine ones still pass


def test_a_stamp_re_signed_over_a_forged_seal_is_refused_by_the_maker_check(world: World) -> None:
    xml = sealed(world, 1, "M")[0]
    assert _verdicts(world, [xml]) == ["ok"]  # the genuine seal's maker signature is remembered
    received = read_voucher(xml)
    info = bytearray(world.seal.signed_info)
    info[info.find(world.seal.picture) + 200] ^= 0x01
    forged_seal = world.seal.der.replace(world.seal.signed_info, bytes(info))
    tbs = ses.TBSSign.load(ses.SESSignature.load(received.stamps["1"])["to_sign"].dump())
    tbs["eseal"] = ses.SESSeal.load(forged_seal)
    forged = ses.SESSignature({  # the holder's own signature over it is good
        "to_sign": tbs, "cert": world.cert.der, "signature_alg_id": ses.SM2_WITH_SM3,
        "signature": core.OctetBitString(world.key.sign(tbs.dump())),
    }).dump()  # fmt: skip
    for _ in range(2):  # refused every time: a failure is never remembered
        with pytest.raises(SealMakerSignatureInvalid):
            verify_seal_signature(forged, received.canonical, AT)
    assert _verdicts(world, [xml]) == ["ok"]


def test_a_revocation_is_seen_by_a_new_store_after_a_successful_verify(world: World) -> None:
    key = SM2PrivateKey.generate()
    cert = world.ca.issue_institution(PARTY, "工商银行", key.public_key(), NOW)
    seal = make_seal(
        f"{PARTY}-bank-2", "工商银行", SealKind.BANK_BUSINESS, [cert.der], noisy_png(60), NOW,
        NOW + timedelta(days=30), world.maker[0], world.maker[1].der, NOW,
    )  # fmt: skip
    docs = [sample_document("2301", voucher_no=f"R{i:04d}") for i in range(2)]
    xmls = seal_batch_xml(docs, {SealKind.BANK_BUSINESS: SealStamper(seal, key, cert.der)}, AT, "c")
    assert _verdicts(world, xmls) == ["ok", "ok"]
    world.ca.revoke(cert.serial, AT - timedelta(minutes=1))
    world.ca.export_trust(world.base / "trust-revoked", AT)
    revoked = CachingTrustStore.of(TrustStore.from_directory(world.base / "trust-revoked"))
    assert _verdicts(world, xmls, revoked) == ["SealChainInvalid", "SealChainInvalid"]
    with pytest.raises(SealChainInvalid, match="REVOKED"):
        verify_seal_signature(read_voucher(xmls[0]).stamps["1"], read_voucher(xmls[0]).canonical,
                              None, revoked)  # fmt: skip


def test_the_data_hash_is_checked_whatever_is_cached(world: World) -> None:
    xml = sealed(world, 1, "D")[0]
    received = read_voucher(xml)
    verify_seal_signature(received.stamps["1"], received.canonical, AT)
    with pytest.raises(SealDataMismatch):
        verify_seal_signature(received.stamps["1"], received.canonical + b" ", AT)


def test_the_seal_caches_are_bounded_and_hold_successes_only(world: World) -> None:
    seals.clear_caches()
    xml = sealed(world, 1, "B")[0]
    der = read_voucher(xml).stamps["1"]
    sig = parse_seal_signature(der)
    with pytest.raises(SealMakerSignatureInvalid):
        seals.parse_seal(
            world.seal.der.replace(world.seal.maker_signature[-8:], b"\0" * 8)
        ).verify_maker_signature()
    assert len(seals._MAKER_VERIFIED) == 0  # the failure was not kept
    sig.seal.verify_maker_signature()
    sig.verify_signer_signature()
    assert len(seals._MAKER_VERIFIED) == 1 and len(seals._PREFIX_VERIFIERS) == 1
    for i in range(MAX_CACHED + 10):
        seals._PARSED_SEALS.put(i.to_bytes(4, "big"), world.seal)
    assert len(seals._PARSED_SEALS) <= MAX_CACHED
