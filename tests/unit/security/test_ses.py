"""The GB/T 38540 schema: the tagging choices guoku writes and the variants it reads."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from PIL import Image

from guoku.domain.seals import SealKind
from guoku.security import ses
from guoku.security.crypto import SM2PrivateKey
from guoku.security.seals import (
    make_seal,
    parse_seal_signature,
    sign_with_seal,
    verify_seal_signature,
)
from guoku.security.x509 import KeyUsage, build_certificate, subject_name


class _Probe(core.Sequence):
    _fields = [("n", core.Integer), ("time_stamp", core.Any, {"optional": True})]


def test_the_time_stamp_is_written_with_explicit_tagging() -> None:
    der = _Probe({"n": 1, "time_stamp": ses.tagged_bit_string(b"TST")}).dump()
    #            [0] constructed, len 6 { BIT STRING len 4, 0 unused bits, "TST" }
    assert der == bytes.fromhex("300b020101a006030400") + b"TST"


def test_explicit_and_implicit_time_stamps_both_read() -> None:
    explicit = _Probe.load(bytes.fromhex("300b020101a006030400") + b"TST")
    implicit = _Probe.load(bytes.fromhex("3009020101800400") + b"TST")
    assert ses.read_tagged_bit_string(explicit["time_stamp"]) == b"TST"
    assert ses.read_tagged_bit_string(implicit["time_stamp"]) == b"TST"


def test_a_time_stamp_of_another_type_is_refused() -> None:
    other = _Probe.load(bytes.fromhex("3008020101a103020101"))  # [1] { INTEGER 1 }
    try:
        ses.read_tagged_bit_string(other["time_stamp"])
    except ValueError as exc:
        assert "[0] BIT STRING" in str(exc)
    else:
        raise AssertionError("a [1] INTEGER was read as a timeStamp")


@pytest.fixture(scope="module")
def signed() -> tuple[SM2PrivateKey, ses.SESSignature]:
    """A guoku seal signature by a holder whose key the test keeps, to re-encode variants of."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    keys, certs = [], []
    for serial, name in ((1, "制章人"), (2, "张三")):
        key = SM2PrivateKey.generate()
        keys.append(key)
        certs.append(build_certificate(
            subject=subject_name(name, "Guoku Test"), public_key=key.public_key(), serial=serial,
            not_before=now, not_after=now + timedelta(days=30),
            key_usage=frozenset({KeyUsage.DIGITAL_SIGNATURE}), signer=key,
        ))  # fmt: skip
    png = io.BytesIO()
    Image.new("RGBA", (4, 4)).save(png, format="PNG")
    seal = make_seal(
        "E1", "单位章", SealKind.UNIT_FINANCE, certs[1].der, png.getvalue(), now,
        now + timedelta(days=10), keys[0], certs[0].der, now,
    )  # fmt: skip
    der = sign_with_seal(seal, keys[1], certs[1].der, b"data", now)
    return keys[1], ses.SESSignature.load(der)


def _variant(
    key: SM2PrivateKey, sig: ses.SESSignature, tbs_extra: bytes = b"", tail: bytes = b""
) -> bytes:
    """Re-sign ``sig`` with ``tbs_extra`` appended inside TBS_Sign and ``tail`` after signature."""
    old = sig["to_sign"]
    tbs = core.Sequence(contents=old.contents + tbs_extra).dump()
    body = (
        tbs + sig["cert"].dump() + sig["signature_alg_id"].dump()
        + core.OctetBitString(key.sign(tbs)).dump() + tail
    )  # fmt: skip
    return bytes(core.Sequence(contents=body).dump())


def test_tbs_sign_ext_datas_read_tagged_or_untagged(
    signed: tuple[SM2PrivateKey, ses.SESSignature],
) -> None:
    key, sig = signed
    value = [{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"x"}]
    ext = ses.ExtensionDatas(value)
    tagged = ses.ExtensionDatas(value, explicit=0).dump()  # ofdrw's [0] EXPLICIT form
    assert tagged[0] == 0xA0
    for extra, slot in ((ext.dump(), "ext_datas"), (tagged, "ext_datas_tagged")):
        der = _variant(key, sig, tbs_extra=extra)
        parsed = parse_seal_signature(der)
        tbs = ses.TBSSign.load(parsed.to_sign)
        assert tbs[slot][0]["extn_id"].dotted == "1.2.3.4"
        assert verify_seal_signature(der, b"data").signer_cert == parsed.signer_cert


def test_a_signature_time_stamp_reads_explicit_or_implicit(
    signed: tuple[SM2PrivateKey, ses.SESSignature],
) -> None:
    key, sig = signed
    explicit = bytes.fromhex("a006030400") + b"TST"
    implicit = bytes.fromhex("800400") + b"TST"
    for tail in (explicit, implicit):
        info = verify_seal_signature(_variant(key, sig, tail=tail), b"data")
        assert info.has_time_stamp
        assert parse_seal_signature(_variant(key, sig, tail=tail)).time_stamp == b"TST"


def test_cert_info_list_is_a_sequence_of_octet_strings() -> None:
    der = ses.CertInfoList([b"\x30\x00", b"\x30\x01\x00"]).dump()
    assert der == bytes.fromhex("3009040230000403300100")


def test_the_oids_and_versions_guoku_writes() -> None:
    assert ses.SM2_WITH_SM3 == "1.2.156.10197.1.501"
    assert (ses.SES_VERSION_V4, ses.SES_HEADER_ID) == (4, "ES")
    assert (ses.CERT_LIST_TYPE_CERTS, ses.CERT_LIST_TYPE_DIGESTS) == (1, 2)
    assert (ses.SEAL_TYPE_ORGANIZATION, ses.SEAL_TYPE_PERSONAL) == (1, 2)
