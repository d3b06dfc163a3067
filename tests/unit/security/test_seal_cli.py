"""``guoku seal inspect`` through the real CLI app: ofdrw's seals and guoku's own signatures."""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from guoku.cli import app, main
from guoku.domain.seals import SealKind
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.crypto import SM2PrivateKey
from guoku.security.seals import (
    SealChainInvalid,
    SealDataMismatch,
    SealMakerSignatureInvalid,
    SealMalformed,
    make_seal,
    sign_with_seal,
)

runner = CliRunner()
INTEROP = Path(
    os.environ.get("GUOKU_INTEROP_DIR", Path(__file__).resolve().parents[4] / "shared" / "interop")
)
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DATA = b"<Voucher><No>ZF2026000001</No></Voucher>"


def ofdrw(name: str) -> Path:
    path = INTEROP / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"interop file {path} is missing and CI is set", pytrace=False)
        pytest.skip(f"interop file {path} is missing (set GUOKU_INTEROP_DIR)")
    return path


@dataclass
class Files:
    seal: Path
    signature: Path
    data: Path
    trust: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    base = tmp_path_factory.mktemp("seal-cli")
    ca = CertificateAuthority.create(
        base / "ca", "云南省财政厅", "correct horse battery", NOW - timedelta(days=1),
        kdf_iterations=MIN_KDF_ITERATIONS,
    )  # fmt: skip
    maker_key, clerk_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    maker = ca.issue_institution("F530000", "云南省财政厅", maker_key.public_key(), NOW)
    clerk = ca.issue_personal("zhangsan", "U001", "张三", clerk_key.public_key(), NOW)
    png = io.BytesIO()
    Image.new("RGBA", (8, 8), (218, 37, 29, 255)).save(png, format="PNG")
    seal = make_seal(
        "53000020260001", "某某单位财务专用章", SealKind.UNIT_FINANCE, clerk.der, png.getvalue(),
        NOW, NOW + timedelta(days=365), maker_key, maker.der, NOW,
    )  # fmt: skip
    files = Files(base / "seal.esl", base / "voucher.ses", base / "voucher.xml", base / "trust")
    files.seal.write_bytes(seal.der)
    files.signature.write_bytes(
        sign_with_seal(seal, clerk_key, clerk.der, DATA, NOW + timedelta(hours=1), "voucher.xml")
    )
    files.data.write_bytes(DATA)
    ca.export_trust(files.trust, NOW)
    return files


@pytest.mark.parametrize(
    ("name", "es_id", "version"),
    [
        ("ofdrw-UserV4.esl", "51f044b76510434e9bc67a1185c2fba5", 4),
        ("ofdrw-UserV5_ts.esl", "55a4a957189a48f596706fb431e962c5", 5),
    ],
)
def test_inspect_prints_an_ofdrw_seal_and_verifies_its_maker(
    name: str, es_id: str, version: int
) -> None:
    result = runner.invoke(app, ["seal", "inspect", str(ofdrw(name))])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"SES_Seal (GB/T 38540 format version {version}" in out
    assert f"esID:      {es_id}" in out and "测试用印章" in out
    assert "picture:   PNG, 15693 bytes, 40 x 40 mm" in out
    assert "serial 1719d2dab60" in out and "serial 1719d2e201d" in out
    assert "maker signature: OK" in out
    assert "chain: unchecked (no --trust)" in out


def test_inspect_json_of_an_ofdrw_seal(tmp_path: Path) -> None:
    picture = tmp_path / "seal.png"
    result = runner.invoke(
        app,
        ["seal", "inspect", str(ofdrw("ofdrw-UserV5_ts.esl")), "--json",
         "--save-picture", str(picture)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["structure"] == "SES_Seal" and report["verified"] is True
    assert report["seal"]["name"] == "OFD R&W V5测试用印章"
    assert report["seal"]["time_stamp_bytes"] == 3
    assert report["seal"]["holders"][0]["serial"] == "1719d2dab60"
    assert report["checks"]["chain"] == "unchecked (no --trust)"
    assert Image.open(picture).size == (400, 400)


def test_a_tampered_ofdrw_seal_fails_with_its_reason(tmp_path: Path) -> None:
    der = bytearray(ofdrw("ofdrw-UserV4.esl").read_bytes())
    der[5000] ^= 0x01  # inside the picture, which the maker signed
    (tmp_path / "bad.esl").write_bytes(bytes(der))
    result = runner.invoke(app, ["seal", "inspect", str(tmp_path / "bad.esl")])
    assert isinstance(result.exception, SealMakerSignatureInvalid)
    assert "esID:      51f044b76510434e9bc67a1185c2fba5" in result.output  # fields still shown
    as_json = runner.invoke(app, ["seal", "inspect", str(tmp_path / "bad.esl"), "--json"])
    assert as_json.exit_code == 2
    report = json.loads(as_json.output)
    assert report["verified"] is False
    assert report["error"]["code"] == "SEAL_MAKER_SIGNATURE_INVALID"


def test_an_ofdrw_seal_is_not_trusted_by_our_ca(files: Files) -> None:
    result = runner.invoke(
        app, ["seal", "inspect", str(ofdrw("ofdrw-UserV4.esl")), "--trust", str(files.trust)]
    )
    assert isinstance(result.exception, SealChainInvalid)


def test_inspect_a_guoku_signature_with_data_and_trust(files: Files) -> None:
    result = runner.invoke(
        app,
        ["seal", "inspect", str(files.signature), "--data", str(files.data),
         "--trust", str(files.trust)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("SES_Signature (GB/T 38540 format version 4, vendor guoku)")
    assert "type:      1 (单位印章 organization, guoku kind unit_finance)" in out
    assert "CN=张三, UID=zhangsan" in out and "signed at: 2026-06-01T10:00:00Z" in out
    assert "propertyInfo: 'voucher.xml'" in out
    for line in ("signer signature: OK", "maker signature: OK", "signer holds the seal: OK",
                 "valid at signing time: OK", "chain: OK", "data: OK"):  # fmt: skip
        assert line in out, line


def test_inspect_a_guoku_seal_with_trust(files: Files) -> None:
    result = runner.invoke(app, ["seal", "inspect", str(files.seal), "--trust", str(files.trust)])
    assert result.exit_code == 0, result.output
    assert "chain: OK (maker certificate at the seal's creation time)" in result.output


def test_inspect_a_signature_without_data_says_so(files: Files) -> None:
    result = runner.invoke(app, ["seal", "inspect", str(files.signature), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["structure"] == "SES_Signature"
    assert report["checks"]["data"] == "unchecked (no --data)"
    assert report["checks"]["chain"] == "unchecked (no --trust)"


def test_changed_data_fails_the_signature(files: Files, tmp_path: Path) -> None:
    (tmp_path / "other.xml").write_bytes(DATA + b" ")
    result = runner.invoke(
        app, ["seal", "inspect", str(files.signature), "--data", str(tmp_path / "other.xml")]
    )
    assert isinstance(result.exception, SealDataMismatch)


def test_garbage_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "junk.esl").write_bytes(b"not a seal at all")
    result = runner.invoke(app, ["seal", "inspect", str(tmp_path / "junk.esl")])
    assert isinstance(result.exception, SealMalformed)


def test_main_turns_a_seal_error_into_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.esl").write_bytes(b"\x30\x03\x02\x01\x01")
    monkeypatch.setattr(sys, "argv", ["guoku", "seal", "inspect", str(tmp_path / "junk.esl")])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: SEAL_MALFORMED") and "\n" not in err
