"""GB/T 38540 seals made, registered, used and verified by guoku, with certificates from its CA."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from PIL import Image

from guoku.domain.seals import SealKind
from guoku.security import ses
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import RevocationReason, TrustStore
from guoku.security.crypto import SM2PrivateKey, sm3
from guoku.security.seals import (
    Seal,
    SealCertificateExpired,
    SealChainInvalid,
    SealDataMismatch,
    SealExpired,
    SealInvalid,
    SealMakerSignatureInvalid,
    SealMalformed,
    SealParameterInvalid,
    SealSignatureInvalid,
    SealSignerNotHolder,
    SealUnsupported,
    check_seal_signature,
    detect,
    import_seal,
    make_seal,
    parse_seal,
    parse_seal_signature,
    sign_with_seal,
    verify_seal_signature,
)
from guoku.security.x509 import Certificate

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
DATA = b"<Voucher><No>ZF2026000001</No><Amount>1234.50</Amount></Voucher>"


@dataclass
class Party:
    key: SM2PrivateKey
    cert: Certificate


@dataclass
class World:
    ca: CertificateAuthority
    trust_dir: Path
    maker: Party  # finance's seal system (制章人)
    clerk: Party  # a holder of the seal
    other: Party  # a clerk of the same CA who does not hold it


def _personal(ca: CertificateAuthority, username: str, name: str) -> Party:
    key = SM2PrivateKey.generate()
    return Party(key, ca.issue_personal(username, "U001", name, key.public_key(), NOW))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("seal-ca")
    ca = CertificateAuthority.create(
        base / "ca", "云南省财政厅", "correct horse battery", NOW - DAY,
        kdf_iterations=MIN_KDF_ITERATIONS,
    )  # fmt: skip
    maker_key = SM2PrivateKey.generate()
    maker = Party(
        maker_key, ca.issue_institution("F530000", "云南省财政厅", maker_key.public_key(), NOW)
    )
    world = World(
        ca, base / "trust", maker, _personal(ca, "zhangsan", "张三"), _personal(ca, "lisi", "李四")
    )
    ca.export_trust(world.trust_dir, NOW)
    return world


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (218, 37, 29, 255)).save(out, format="PNG")
    return out.getvalue()


def make(world: World, **overrides: object) -> Seal:
    args: dict[str, object] = {
        "es_id": "53000020260001",
        "name": "某某单位财务专用章",
        "kind": SealKind.UNIT_FINANCE,
        "holder_certs": [world.clerk.cert.der],
        "picture_png": tiny_png(),
        "valid_start": NOW,
        "valid_end": NOW + 365 * DAY,
        "maker_key": world.maker.key,
        "maker_cert_der": world.maker.cert.der,
        "now": NOW,
    }
    args.update(overrides)
    return make_seal(**args)  # type: ignore[arg-type]


def stamp(world: World, seal: Seal, at: datetime = NOW + DAY) -> bytes:
    return sign_with_seal(seal, world.clerk.key, world.clerk.cert.der, DATA, at, "voucher.xml")


def hand_built_signature(
    seal: Seal, signer: Party, time_info: datetime, data: bytes = DATA, version: int = 4
) -> bytes:
    """What a forger (or another implementation) could write, bypassing sign_with_seal's checks."""
    tbs = ses.TBSSign(
        {
            "version": version,
            "eseal": ses.SESSeal.load(seal.der),
            "time_info": time_info,
            "data_hash": core.OctetBitString(sm3(data)),
            "property_info": "",
        }
    )
    return bytes(
        ses.SESSignature(
            {
                "to_sign": tbs,
                "cert": signer.cert.der,
                "signature_alg_id": ses.SM2_WITH_SM3,
                "signature": core.OctetBitString(signer.key.sign(tbs.dump())),
            }
        ).dump()
    )


# --- making and registering -----------------------------------------------------------------


def test_a_made_seal_imports_and_reads_back_every_field(world: World) -> None:
    seal = make(world)
    imported = import_seal(seal.der)
    assert imported == seal
    assert (seal.version, seal.vendor_id, seal.es_id) == (4, "guoku", "53000020260001")
    assert (seal.name, seal.kind, seal.seal_type) == (
        "某某单位财务专用章",
        SealKind.UNIT_FINANCE,
        1,
    )
    assert (seal.created_at, seal.valid_start, seal.valid_end) == (NOW, NOW, NOW + 365 * DAY)
    assert (seal.picture_type, seal.picture) == ("PNG", tiny_png())
    assert (seal.picture_width_mm, seal.picture_height_mm) == (38, 38)
    assert seal.cert_list_type == ses.CERT_LIST_TYPE_CERTS
    assert seal.holder_certs == (world.clerk.cert,) and seal.holder_digests == ()
    assert seal.maker_cert == world.maker.cert
    assert seal.sign_alg_id == "1.2.156.10197.1.501" and seal.time_stamp is None
    assert detect(seal.der) == "seal"


def test_the_written_cert_list_is_a_sequence_of_octet_strings(world: World) -> None:
    seal = make(world, holder_certs=[world.clerk.cert.der, world.other.cert.der])
    raw = ses.SESSeal.load(seal.der)["eseal_info"]["property"]["cert_list"]
    listed = raw.parse(ses.CertInfoList)
    assert [bytes(item.native) for item in listed] == [world.clerk.cert.der, world.other.cert.der]


def test_a_personal_seal_is_type_2_and_keeps_its_kind(world: World) -> None:
    seal = make(world, kind=SealKind.PERSONAL, name="张三")
    assert (seal.seal_type, seal.kind, seal.picture_width_mm) == (2, SealKind.PERSONAL, 18)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"maker_key": SM2PrivateKey.generate()}, "maker key does not belong"),
        ({"picture_png": b"GIF89a not a png"}, "not a readable PNG"),
        ({"now": datetime(2026, 6, 1, 9, 0)}, "timezone-aware"),
        ({"valid_end": NOW - DAY, "valid_start": NOW - 2 * DAY}, "expired when made"),
        ({"valid_end": NOW}, "before valid_end"),
        ({"name": "  "}, "seal name"),
        ({"es_id": "印章0001"}, "ASCII"),
        ({"holder_certs": []}, "holder certificates"),
        ({"holder_certs": [b"\x30\x03\x02\x01\x01"]}, "holder certificate is not usable"),
        ({"picture_size_mm": (0, 40)}, "picture size"),
    ],
)
def test_make_seal_refuses_bad_input_before_signing(
    world: World, override: dict[str, object], reason: str
) -> None:
    with pytest.raises(SealParameterInvalid, match=reason):
        make(world, **override)


def test_a_maker_certificate_not_valid_now_cannot_make_seals(world: World) -> None:
    with pytest.raises(SealParameterInvalid, match="maker certificate is not valid"):
        make(world, now=NOW + 3 * 365 * DAY, valid_end=NOW + 4 * 365 * DAY)


def test_a_forged_maker_signature_is_refused(world: World) -> None:
    genuine = ses.SESSeal.load(make(world).der)
    forger = SM2PrivateKey.generate()
    forged = ses.SESSeal(
        {
            "eseal_info": genuine["eseal_info"],
            "cert": world.maker.cert.der,  # claims the real maker
            "sign_alg_id": ses.SM2_WITH_SM3,
            "signed_value": core.OctetBitString(forger.sign(genuine["eseal_info"].dump())),
        }
    ).dump()
    with pytest.raises(SealMakerSignatureInvalid) as refused:
        import_seal(forged)
    assert refused.value.code == "SEAL_MAKER_SIGNATURE_INVALID"
    # A holder stamping with the forged seal does not get past verification either.
    signature = hand_built_signature(parse_seal(forged), world.clerk, NOW + DAY)
    with pytest.raises(SealMakerSignatureInvalid):
        verify_seal_signature(signature, DATA)


# --- stamping and verifying -----------------------------------------------------------------


def test_a_stamp_verifies_and_says_who_signed_when_and_over_what(world: World) -> None:
    seal = make(world)
    signature = stamp(world, seal)
    info = verify_seal_signature(signature, DATA)
    assert info.seal == seal and info.signer_cert == world.clerk.cert
    assert info.signed_at == NOW + DAY and info.data_hash == sm3(DATA)
    assert (info.property_info, info.version) == ("voucher.xml", 4)
    assert not info.has_time_stamp and not info.chain_checked
    parsed = parse_seal_signature(signature)
    assert parsed.seal.der == seal.der  # the seal is embedded byte for byte
    assert detect(signature) == "signature"


def test_changed_data_is_a_data_mismatch(world: World) -> None:
    signature = stamp(world, make(world))
    with pytest.raises(SealDataMismatch) as refused:
        verify_seal_signature(signature, DATA.replace(b"1234.50", b"9234.50"))
    assert refused.value.code == "SEAL_DATA_MISMATCH"


def test_a_changed_byte_in_the_signed_tbs_is_refused(world: World) -> None:
    signature = bytearray(stamp(world, make(world)))
    offset = bytes(signature).index(b"voucher.xml")  # propertyInfo, inside TBS_Sign
    signature[offset] ^= 0x01
    with pytest.raises(SealSignatureInvalid) as refused:
        verify_seal_signature(bytes(signature), DATA)
    assert refused.value.code == "SEAL_SIGNATURE_INVALID"


def test_a_signer_who_is_not_a_holder_cannot_stamp(world: World) -> None:
    seal = make(world)
    with pytest.raises(SealSignerNotHolder) as refused:
        sign_with_seal(seal, world.other.key, world.other.cert.der, DATA, NOW + DAY)
    assert refused.value.code == "SEAL_SIGNER_NOT_HOLDER"


def test_a_signature_by_a_non_holder_is_refused(world: World) -> None:
    signature = hand_built_signature(make(world), world.other, NOW + DAY)
    with pytest.raises(SealSignerNotHolder):
        verify_seal_signature(signature, DATA)


def test_stamping_outside_the_seal_validity_is_refused(world: World) -> None:
    seal = make(world, valid_end=NOW + 10 * DAY)
    with pytest.raises(SealExpired) as refused:
        stamp(world, seal, at=NOW + 11 * DAY)
    assert refused.value.code == "SEAL_EXPIRED"
    with pytest.raises(SealExpired):
        stamp(world, seal, at=NOW - DAY)


def test_a_signature_made_after_the_seal_expired_is_refused(world: World) -> None:
    seal = make(world, valid_end=NOW + 10 * DAY)
    signature = hand_built_signature(seal, world.clerk, NOW + 11 * DAY)
    with pytest.raises(SealExpired) as refused:
        verify_seal_signature(signature, DATA)
    assert refused.value.code == "SEAL_EXPIRED"


def test_a_signer_certificate_expired_at_signing_time_is_refused(world: World) -> None:
    seal = make(world, valid_end=NOW + 5 * 365 * DAY)
    late = world.clerk.cert.not_after + DAY
    signature = hand_built_signature(seal, world.clerk, late)
    with pytest.raises(SealCertificateExpired) as refused:
        verify_seal_signature(signature, DATA)
    assert refused.value.code == "SEAL_CERT_EXPIRED"


def test_a_signing_time_in_the_future_is_refused(world: World) -> None:
    signature = stamp(world, make(world), at=NOW + 2 * DAY)
    with pytest.raises(SealInvalid, match="after the reference time"):
        verify_seal_signature(signature, DATA, at=NOW + DAY)
    assert verify_seal_signature(signature, DATA, at=NOW + 3 * DAY).signed_at == NOW + 2 * DAY


def test_an_unknown_tbs_version_is_unsupported(world: World) -> None:
    signature = hand_built_signature(make(world), world.clerk, NOW + DAY, version=1)
    with pytest.raises(SealUnsupported):
        verify_seal_signature(signature, DATA)


# --- chains ---------------------------------------------------------------------------------


def test_with_a_trust_store_both_chains_are_validated(world: World) -> None:
    trust = TrustStore.from_directory(world.trust_dir)
    info = verify_seal_signature(stamp(world, make(world)), DATA, trust=trust)
    assert info.chain_checked


def test_a_revoked_signer_certificate_fails_the_chain(world: World, tmp_path: Path) -> None:
    victim = _personal(world.ca, "wangwu", "王五")
    seal = make(world, holder_certs=[victim.cert.der])
    signature = sign_with_seal(seal, victim.key, victim.cert.der, DATA, NOW + 2 * DAY)
    world.ca.revoke(victim.cert.serial, NOW + DAY, RevocationReason.KEY_COMPROMISE)
    trust = TrustStore.from_directory(world.ca.export_trust(tmp_path / "trust", NOW + DAY))
    with pytest.raises(SealChainInvalid) as refused:
        verify_seal_signature(signature, DATA, trust=trust)
    assert refused.value.details["cause"] == "CERTIFICATE_REVOKED"


def test_certificates_from_another_ca_fail_the_chain(world: World, tmp_path: Path) -> None:
    stranger_ca = CertificateAuthority.create(
        tmp_path / "ca2", "别的厅", "correct horse battery", NOW - DAY,
        kdf_iterations=MIN_KDF_ITERATIONS,
    )  # fmt: skip
    trust = TrustStore.from_directory(stranger_ca.export_trust(tmp_path / "trust", NOW))
    with pytest.raises(SealChainInvalid):
        check_seal_signature(parse_seal_signature(stamp(world, make(world))), trust=trust)


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30\x80\x02\x01\x01\x00\x00", b"\x02\x01\x05"],
    ids=["empty", "text", "sequence-of-integer", "indefinite-length", "integer"],
)
def test_garbage_is_malformed(garbage: bytes) -> None:
    for read in (detect, parse_seal, parse_seal_signature, import_seal):
        with pytest.raises(SealMalformed) as refused:
            read(garbage)
        assert refused.value.code in ("SEAL_MALFORMED", "SEAL_UNSUPPORTED")
    with pytest.raises(SealMalformed):
        verify_seal_signature(garbage, DATA)


def test_truncated_or_padded_der_is_malformed(world: World) -> None:
    der = make(world).der
    for broken in (der[:-1], der + b"\x00", der[: len(der) // 2]):
        with pytest.raises(SealMalformed):
            import_seal(broken)


def test_a_seal_is_not_a_signature_and_back(world: World) -> None:
    seal = make(world)
    with pytest.raises(SealMalformed):
        parse_seal_signature(seal.der)
    with pytest.raises(SealMalformed):
        parse_seal(stamp(world, seal))


class _SignInfoV1(core.Sequence):
    _fields = [
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
        ("sign_data", core.OctetBitString),
    ]


class _SealV1(core.Sequence):
    """GM/T 0031-2014's SES_Seal: esealInfo and signInfo only."""

    _fields = [("eseal_info", core.Any), ("sign_info", _SignInfoV1)]


def test_the_gmt_0031_two_field_layout_is_unsupported(world: World) -> None:
    seal = ses.SESSeal.load(make(world).der)
    v1 = _SealV1(
        {
            "eseal_info": core.Any(seal["eseal_info"]),
            "sign_info": {
                "cert": world.maker.cert.der,
                "signature_algorithm": ses.SM2_WITH_SM3,
                "sign_data": seal["signed_value"].native,
            },
        }
    ).dump()
    with pytest.raises(SealUnsupported, match="GM/T 0031"):
        detect(v1)
    with pytest.raises(SealMalformed):
        import_seal(v1)


def test_a_cert_list_type_that_contradicts_the_list_is_malformed(world: World) -> None:
    seal = ses.SESSeal.load(make(world).der)
    info = seal["eseal_info"].copy()
    info["property"]["cert_list_type"] = ses.CERT_LIST_TYPE_DIGESTS
    resigned = ses.SESSeal(
        {
            "eseal_info": info,
            "cert": world.maker.cert.der,
            "sign_alg_id": ses.SM2_WITH_SM3,
            "signed_value": core.OctetBitString(world.maker.key.sign(info.dump())),
        }
    ).dump()
    with pytest.raises(SealMalformed, match="certListType 2"):
        parse_seal(resigned)


def test_a_digest_cert_list_names_its_holders_by_sm3(world: World) -> None:
    """certListType 2 (another implementation's choice) is read, and the holder check works."""
    seal = ses.SESSeal.load(make(world).der)
    info = seal["eseal_info"].copy()
    info["property"]["cert_list_type"] = ses.CERT_LIST_TYPE_DIGESTS
    info["property"]["cert_list"] = core.Any(
        ses.CertDigestList([{"type": "SM3", "value": sm3(world.clerk.cert.der)}])
    )
    der = ses.SESSeal(
        {
            "eseal_info": info,
            "cert": world.maker.cert.der,
            "sign_alg_id": ses.SM2_WITH_SM3,
            "signed_value": core.OctetBitString(world.maker.key.sign(info.dump())),
        }
    ).dump()
    digest_seal = import_seal(der)
    assert digest_seal.holder_certs == () and digest_seal.holder_digests[0].algorithm == "SM3"
    assert digest_seal.has_holder(world.clerk.cert) and not digest_seal.has_holder(world.other.cert)
    info_ok = verify_seal_signature(stamp(world, digest_seal), DATA)
    assert info_ok.signer_cert == world.clerk.cert


# --- an independent verifier ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
def test_openssl_verifies_the_signers_signature_over_tbs_sign(world: World, tmp_path: Path) -> None:
    parsed = parse_seal_signature(stamp(world, make(world)))
    (tmp_path / "tbs.der").write_bytes(parsed.to_sign)
    (tmp_path / "sig.der").write_bytes(parsed.signature)
    (tmp_path / "pub.pem").write_bytes(world.clerk.cert.public_key.pem())
    result = subprocess.run(
        ["openssl", "dgst", "-sm3", "-verify", str(tmp_path / "pub.pem"),
         "-sigopt", "distid:1234567812345678", "-signature", str(tmp_path / "sig.der"),
         str(tmp_path / "tbs.der")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr
