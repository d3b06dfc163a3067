"""The Certificate and Crl wrappers: parsing, fields, limits, and certificates made by others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, core, keys
from asn1crypto import x509 as a_x509
from cryptography import x509 as c_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from guoku.domain.errors import ValidationError
from guoku.security.certs import Crl, build_crl
from guoku.security.crypto import SM2PrivateKey, sm3
from guoku.security.x509 import (
    MAX_DER_BYTES,
    Certificate,
    CertificateInvalid,
    CrlInvalid,
    HolderKind,
    KeyUsage,
    build_certificate,
    subject_name,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
INTEROP = Path("/work/shared/interop")
USAGE = frozenset({KeyUsage.DIGITAL_SIGNATURE})


def _self_signed(key: SM2PrivateKey, **kwargs: object) -> Certificate:
    params: dict[str, object] = {
        "subject": subject_name("Root", "Test"),
        "public_key": key.public_key(),
        "serial": 7,
        "not_before": NOW,
        "not_after": NOW + timedelta(days=10),
        "key_usage": frozenset({KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN}),
        "signer": key,
        "is_ca": True,
    }
    params.update(kwargs)
    return build_certificate(**params)  # type: ignore[arg-type]


def test_pem_and_der_round_trip_with_an_sm3_fingerprint() -> None:
    cert = _self_signed(SM2PrivateKey.generate())
    assert cert.pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert Certificate.from_pem(cert.pem) == cert == Certificate.load(cert.der)
    assert Certificate.load(cert.pem).der == cert.der
    assert cert.fingerprint == sm3(cert.der).hex()
    assert len({cert, Certificate.from_der(cert.der)}) == 1
    assert cert.holder is None and cert.is_self_issued


def test_a_subject_without_a_party_has_no_holder() -> None:
    key = SM2PrivateKey.generate()
    cert = _self_signed(key, subject=subject_name("Nobody", "Test"), is_ca=False, key_usage=USAGE)
    assert cert.holder is None and cert.organizational_unit is None and cert.user_id is None


def test_holder_reads_party_and_user_from_the_subject() -> None:
    key = SM2PrivateKey.generate()
    cert = _self_signed(
        key, subject=subject_name("张三", "T", "F530000", "zs"), is_ca=False, key_usage=USAGE
    )
    assert cert.holder is not None and cert.holder.kind is HolderKind.PERSONAL
    assert cert.holder.party_code == "F530000" and cert.holder.username == "zs"


def test_dates_from_2050_are_generalized_time() -> None:
    late = datetime(2051, 1, 1, tzinfo=UTC)
    cert = _self_signed(SM2PrivateKey.generate(), not_after=late)
    assert cert.not_after == late
    assert b"\x18\x0f20510101000000Z" in cert.der  # GeneralizedTime, RFC 5280 §4.1.2.5


def test_builder_refuses_bad_serials_and_inverted_validity() -> None:
    key = SM2PrivateKey.generate()
    with pytest.raises(ValidationError):
        _self_signed(key, serial=0)
    with pytest.raises(ValidationError):
        _self_signed(key, not_after=NOW)


def test_garbage_truncation_and_oversize_are_refused() -> None:
    cert = _self_signed(SM2PrivateKey.generate())
    for bad in (b"", b"\x30\x03\x02\x01\x01", cert.der[:-10], b"\x00" * (MAX_DER_BYTES + 1)):
        with pytest.raises(CertificateInvalid):
            Certificate.from_der(bad)
    with pytest.raises(CertificateInvalid):
        Certificate.from_pem(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")


def test_a_non_sm2_certificate_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = c_x509.Name([c_x509.NameAttribute(NameOID.COMMON_NAME, "p256")])
    p256 = (
        c_x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateInvalid, match="SM2"):
        Certificate.from_der(p256.public_bytes(serialization.Encoding.DER))


def test_verify_signed_by_refuses_a_different_issuer() -> None:
    a, b = _self_signed(SM2PrivateKey.generate()), _self_signed(SM2PrivateKey.generate())
    with pytest.raises(CertificateInvalid, match="does not verify"):
        a.verify_signed_by(b)  # same name, other key


def test_crl_round_trip_and_malformed_crls() -> None:
    key = SM2PrivateKey.generate()
    root = _self_signed(key)
    crl = build_crl(
        issuer=root,
        signer=key,
        this_update=NOW,
        next_update=NOW + timedelta(days=1),
        crl_number=5,
        revocations=[],
    )
    assert Crl.load(crl.pem).der == Crl.load(crl.der).der == crl.der
    assert crl.pem.startswith(b"-----BEGIN X509 CRL-----")
    assert crl.issuer == root.subject
    for bad in (b"", crl.der[:-3], root.der):
        with pytest.raises(CrlInvalid):
            Crl.from_der(bad)
    with pytest.raises(CrlInvalid, match="cRLSign"):
        crl.verify_signed_by(_self_signed(key, key_usage=frozenset({KeyUsage.KEY_CERT_SIGN})))


@pytest.mark.parametrize("name", ["ofdrw-UserV4.esl", "ofdrw-UserV5_ts.esl"])
def test_a_certificate_made_by_another_implementation_loads_and_verifies_its_seal(
    name: str,
) -> None:
    """ofdrw's seal-maker certificate (Java): its fields read, its key verifies the seal."""
    seal = core.Sequence.load((INTEROP / name).read_bytes())
    cert = Certificate.from_der(seal[1].native)
    assert cert.common_name == "Test Certificate" and cert.organization == "OFD R&W"
    assert cert.issuer.endswith("CN=OFD Reader and WriterROOT Certificate")
    assert cert.not_before.year == 2020 and not cert.is_ca
    assert KeyUsage.DIGITAL_SIGNATURE in cert.key_usage
    signed_value = core.OctetBitString.load(seal[3].dump()).native  # BIT STRING of bytes
    cert.public_key.verify(signed_value, seal[0].dump())


def test_a_certificate_whose_signature_is_not_der_is_refused_not_crashed() -> None:
    issuer = _self_signed(SM2PrivateKey.generate())
    parsed = a_x509.Certificate.load(issuer.der)
    forged = a_x509.Certificate(
        {
            "tbs_certificate": parsed["tbs_certificate"],
            "signature_algorithm": parsed["signature_algorithm"],
            "signature_value": core.OctetBitString(b"not a DER SEQUENCE"),
        }
    )
    with pytest.raises(CertificateInvalid, match="does not verify"):
        Certificate.from_der(forged.dump()).verify_signed_by(issuer)


def test_a_certificate_signed_with_another_algorithm_is_refused() -> None:
    issuer = _self_signed(SM2PrivateKey.generate())
    parsed = a_x509.Certificate.load(issuer.der)
    other = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    forged = a_x509.Certificate(
        {
            "tbs_certificate": parsed["tbs_certificate"],
            "signature_algorithm": other,
            "signature_value": parsed["signature_value"],
        }
    )
    with pytest.raises(CertificateInvalid, match="differs"):
        Certificate.from_der(forged.dump()).verify_signed_by(issuer)


def test_a_public_key_off_the_sm2_curve_is_refused() -> None:
    parsed = a_x509.Certificate.load(_self_signed(SM2PrivateKey.generate()).der)
    tbs = parsed["tbs_certificate"].copy()
    spki = tbs["subject_public_key_info"]
    tbs["subject_public_key_info"] = keys.PublicKeyInfo(
        {"algorithm": spki["algorithm"], "public_key": b"\x04" + b"\x01" * 64}
    )
    forged = a_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": parsed["signature_algorithm"],
            "signature_value": parsed["signature_value"],
        }
    )
    with pytest.raises(CertificateInvalid, match="malformed"):
        Certificate.from_der(forged.dump())
