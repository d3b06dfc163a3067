"""``guoku ca``: init, issue, list, revoke, crl, export-trust and show through the real CLI app."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from guoku.cli import app
from guoku.security.ca import MIN_KDF_ITERATIONS, KeyFileInvalid
from guoku.security.certs import Crl, TrustStore
from guoku.security.crypto import SM2PrivateKey
from guoku.security.x509 import Certificate, CertificateInvalid, CertificateRevoked, HolderKind

runner = CliRunner()
PASS = "a long CA passphrase"
ENV = {"GUOKU_CA_PASSPHRASE": PASS, "COLUMNS": "200"}


def ca(*args: str | Path, env: dict[str, str] = ENV, stdin: str | None = None) -> Result:
    """``guoku ca <args>`` with the passphrase in the environment and a wide terminal."""
    return runner.invoke(app, ["ca", *map(str, args)], env=env, input=stdin)


def ok(*args: str | Path) -> str:
    result = ca(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def issue(ca_dir: Path, pub: Path, kind: str, party: str, name: str, *extra: str | Path) -> str:
    return ok("issue", ca_dir, "--kind", kind, "--party", party, "--name", name,
              "--public-key", pub, *extra)  # fmt: skip


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    out = ok("init", tmp_path / "ca", "--name", "Demo Finance",
             "--kdf-iterations", str(MIN_KDF_ITERATIONS))  # fmt: skip
    assert "created CA 'Demo Finance'" in out
    return tmp_path / "ca"


@pytest.fixture
def pub(tmp_path: Path) -> Path:
    path = tmp_path / "holder.pub.pem"
    path.write_bytes(SM2PrivateKey.generate().public_key().pem())
    return path


def test_init_prompts_for_a_hidden_confirmed_passphrase(tmp_path: Path) -> None:
    result = ca("init", tmp_path / "ca", "--name", "X", "--kdf-iterations", "1000",
                env={}, stdin=f"{PASS}\n{PASS}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert PASS not in result.output
    assert (tmp_path / "ca" / "root.pem").is_file()


def test_issue_an_institution_and_a_personal_certificate(
    ca_dir: Path, pub: Path, tmp_path: Path
) -> None:
    out = issue(ca_dir, pub, "institution", "B-ICBC", "工商银行", "--out", tmp_path / "b.pem")
    assert "issued" in out and "OU=B-ICBC" in out
    bank = Certificate.from_pem((tmp_path / "b.pem").read_bytes())
    assert bank.holder is not None and bank.holder.kind is HolderKind.INSTITUTION
    issue(ca_dir, pub, "personal", "F530000", "张三", "--username", "zhangsan", "--days", "30")
    listing = ok("list", ca_dir)
    assert "zhangsan" in listing and "B-ICBC" in listing


def test_personal_needs_a_username(ca_dir: Path, pub: Path) -> None:
    result = ca("issue", ca_dir, "--kind", "personal", "--party", "F530000", "--name", "张三",
                "--public-key", pub)  # fmt: skip
    assert result.exit_code == 2
    assert "username" in result.output


def test_a_wrong_passphrase_is_a_guoku_error(ca_dir: Path) -> None:
    result = ca("crl", ca_dir, env={"GUOKU_CA_PASSPHRASE": "wrong!!!"})
    assert isinstance(result.exception, KeyFileInvalid)


def test_revoke_crl_export_and_show(ca_dir: Path, pub: Path, tmp_path: Path) -> None:
    cert_path = tmp_path / "clerk.pem"
    issue(ca_dir, pub, "personal", "F530000", "李四", "--username", "lisi", "--out", cert_path)
    clerk = Certificate.from_pem(cert_path.read_bytes())
    assert "revoked" in ok("revoke", ca_dir, f"{clerk.serial:x}", "--reason", "key_compromise")
    assert "1 revoked" in ok("crl", ca_dir, "--out", tmp_path / "i.crl")
    assert clerk.serial in Crl.from_der((tmp_path / "i.crl").read_bytes()).revoked
    ok("export-trust", ca_dir, tmp_path / "trust")
    with pytest.raises(CertificateRevoked):
        TrustStore.from_directory(tmp_path / "trust").validate(clerk, datetime.now(UTC))
    shown = ok("show", cert_path)
    assert "personal: party F530000" in shown and "lisi" in shown and clerk.fingerprint in shown
    assert "key_compromise" in ok("show", tmp_path / "trust" / "crls" / "issuing.crl.pem")


def test_show_refuses_a_file_that_is_neither(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"hello")
    result = ca("show", tmp_path / "junk")
    assert isinstance(result.exception, CertificateInvalid)
    assert "neither" in str(result.exception)
