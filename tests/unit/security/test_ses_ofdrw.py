"""Real seals made by the open OFD library ofdrw (shared/interop): guoku reads and verifies them.

``ofdrw-UserV4.esl`` is a GB/T 38540-2020 SES_Seal (header version 4); ``ofdrw-UserV5_ts.esl``
is ofdrw's "V5": the same layout plus a ``[0] EXPLICIT BIT STRING`` timeStamp after
signedValue. Both carry a self-signed-CA test certificate "OFD R&W" (expired since 2022).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guoku.security import ses
from guoku.security.crypto import SM2PrivateKey
from guoku.security.seals import (
    Seal,
    SealInvalid,
    SealMakerSignatureInvalid,
    SealSignerNotHolder,
    detect,
    import_seal,
    sign_with_seal,
)
from guoku.security.x509 import KeyUsage, build_certificate, subject_name

INTEROP = Path(
    os.environ.get("GUOKU_INTEROP_DIR", Path(__file__).resolve().parents[4] / "shared" / "interop")
)
V4, V5 = "ofdrw-UserV4.esl", "ofdrw-UserV5_ts.esl"


def read(name: str) -> bytes:
    path = INTEROP / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"interop file {path} is missing and CI is set", pytrace=False)
        pytest.skip(f"interop file {path} is missing (set GUOKU_INTEROP_DIR)")
    return path.read_bytes()


@pytest.mark.parametrize("name", [V4, V5])
def test_the_ofdrw_seal_imports_and_its_maker_signature_verifies(name: str) -> None:
    der = read(name)
    assert detect(der) == "seal"
    seal = import_seal(der)  # parses and verifies the maker's SM2 signature
    print(f"\n{name}: {seal}")  # visible with pytest -s: every field ofdrw wrote
    assert seal.sign_alg_id == ses.SM2_WITH_SM3
    assert seal.seal_type == 3 and seal.kind is None  # ofdrw's test value; no guoku kind
    assert seal.cert_list_type == ses.CERT_LIST_TYPE_CERTS and len(seal.holder_certs) == 1
    assert seal.holder_digests == ()
    assert (seal.picture_type, seal.picture_width_mm, seal.picture_height_mm) == ("PNG", 40, 40)
    assert seal.picture.startswith(b"\x89PNG\r\n\x1a\n")
    assert seal.maker_cert.common_name == "Test Certificate"
    assert seal.maker_cert.serial == 0x01719D2E201D
    assert seal.holder_certs[0].serial == 0x01719D2DAB60
    assert "OFD Reader and WriterROOT Certificate" in seal.maker_cert.issuer


def test_the_v4_file_is_gbt_38540_version_4() -> None:
    seal = import_seal(read(V4))
    assert (seal.version, seal.vendor_id) == (4, "OFDR&WTest")
    assert seal.es_id == "51f044b76510434e9bc67a1185c2fba5"
    assert seal.name == "OFD R&W 测试用印章"
    assert seal.valid_start == datetime(2020, 4, 22, 2, 9, tzinfo=UTC) == seal.created_at
    assert seal.valid_end == datetime(2022, 4, 22, 2, 9, tzinfo=UTC)
    assert seal.time_stamp is None
    assert not seal.is_valid_at(datetime(2026, 11, 23, tzinfo=UTC))


def test_the_v5_file_is_the_v4_layout_plus_an_explicitly_tagged_time_stamp() -> None:
    der = read(V5)
    seal = import_seal(der)
    assert (seal.version, seal.vendor_id, seal.name) == (5, "OFDR&WTestV5", "OFD R&W V5测试用印章")
    assert seal.time_stamp == b"\x01\x02\x03"  # ofdrw's placeholder, outside what is signed
    assert der.endswith(bytes.fromhex("a006030400010203"))  # [0] { BIT STRING }
    assert len(ses.SESSeal.load(der)) == 5


def test_the_schema_reencodes_the_ofdrw_v4_seal_byte_for_byte() -> None:
    der = read(V4)
    assert ses.SESSeal.load(der).dump(force=True) == der


@pytest.mark.parametrize("name", [V4, V5])
@pytest.mark.parametrize("where", ["es_id", "name", "picture", "signed_value"])
def test_a_one_byte_change_in_the_signed_part_is_refused(name: str, where: str) -> None:
    der = bytearray(read(name))
    seal = import_seal(bytes(der))
    offset = {
        "es_id": der.index(seal.es_id.encode()) + 3,
        "name": der.index("测试".encode()),
        "picture": der.index(seal.picture) + 1000,
        "signed_value": len(der) - (12 if seal.time_stamp else 4),
    }[where]
    der[offset] ^= 0x01
    with pytest.raises(SealInvalid) as refused:
        import_seal(bytes(der))
    if where in ("es_id", "picture", "signed_value"):
        assert isinstance(refused.value, SealMakerSignatureInvalid)


def test_guoku_refuses_to_stamp_an_ofdrw_seal_for_a_non_holder() -> None:
    seal: Seal = import_seal(read(V5))
    now = datetime(2026, 11, 23, tzinfo=UTC)
    key = SM2PrivateKey.generate()
    stranger = build_certificate(
        subject=subject_name("陌生人", "Guoku Test"), public_key=key.public_key(), serial=7,
        not_before=now, not_after=now + timedelta(days=30),
        key_usage=frozenset({KeyUsage.DIGITAL_SIGNATURE}), signer=key,
    )  # fmt: skip
    with pytest.raises(SealSignerNotHolder):
        sign_with_seal(seal, key, stranger.der, b"data", now)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
@pytest.mark.parametrize("name", [V4, V5])
def test_openssl_agrees_on_what_the_maker_signed(name: str, tmp_path: Path) -> None:
    seal = import_seal(read(name))
    (tmp_path / "info.der").write_bytes(seal.signed_info)
    (tmp_path / "sig.der").write_bytes(seal.maker_signature)
    (tmp_path / "pub.pem").write_bytes(seal.maker_cert.public_key.pem())
    result = subprocess.run(
        ["openssl", "dgst", "-sm3", "-verify", str(tmp_path / "pub.pem"),
         "-sigopt", "distid:1234567812345678", "-signature", str(tmp_path / "sig.der"),
         str(tmp_path / "info.der")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr
