"""``guoku signing-*``: a signing server set up, inspected and audited from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_signing_server import tiny_png
from typer.testing import CliRunner, Result

from guoku.cli import app
from guoku.domain.controls import Post
from guoku.domain.seals import SealKind
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.crypto import SM2PrivateKey, SM2PublicKey
from guoku.security.seals import make_seal, verify_seal_signature
from guoku.security.signing_server import SigningService
from guoku.security.signing_store import DirectoryInUse, PassphraseIncorrect

PASS = "cli-signing-passphrase"
ENV = {"GUOKU_SIGNING_PASSPHRASE": PASS, "COLUMNS": "200"}
runner = CliRunner()


def run(*args: str | Path, env: dict[str, str] = ENV, stdin: str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env, input=stdin)


def ok(*args: str | Path, **kwargs: object) -> str:
    result = run(*args, **kwargs)  # type: ignore[arg-type]
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_a_signing_server_is_set_up_and_audited_from_the_command_line(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    ca = CertificateAuthority.create(
        tmp_path / "ca", "命令行测试", "ca-passphrase-1", now, kdf_iterations=MIN_KDF_ITERATIONS
    )
    d = tmp_path / "signing"
    fast = ("--kdf-iterations", str(MIN_KDF_ITERATIONS))
    assert "created" in ok("signing-init", "--dir", d, "--admin", "root", *fast)

    ok(
        "signing-keygen",
        "--dir",
        d,
        "--party",
        "F530000",
        "--out",
        tmp_path / "pub.pem",
        "--admin",
        "root",
    )
    public = SM2PublicKey.from_pem((tmp_path / "pub.pem").read_bytes())
    cert = ca.issue_institution("F530000", "云南省财政厅", public, now)
    (tmp_path / "cert.pem").write_bytes(cert.pem)
    ok("signing-install-cert", "--dir", d, "--party", "F530000", "--cert", tmp_path / "cert.pem")

    maker = SM2PrivateKey.generate()
    maker_cert = ca.issue_institution("SEALSYS", "制章系统", maker.public_key(), now)
    seal = make_seal(
        "F530000-1",
        "云南省财政厅财务专用章",
        SealKind.UNIT_FINANCE,
        [cert.der],
        tiny_png(),
        now,
        now + timedelta(days=90),
        maker,
        maker_cert.der,
        now,
    )
    (tmp_path / "seal.der").write_bytes(seal.der)
    assert "F530000-1" in ok("signing-add-seal", "--dir", d, "--seal", tmp_path / "seal.der")
    token = ok(
        "signing-add-client",
        "--dir",
        d,
        "--name",
        "finance-node",
        "--party",
        "F530000",
        "--party",
        "U001",
    ).strip()
    assert "A000001" in ok(
        "signing-authorize", "--dir", d, "--seal", "F530000-1", "--post", "seal", "--days", "30"
    )

    status = json.loads(ok("signing-status", "--dir", d, "--json"))
    assert [p["code"] for p in status["parties"]] == ["F530000"]
    assert status["seals"][0]["owner"] == "F530000" and status["seals"][0]["kind"] == "unit_finance"
    (client,) = status["clients"]
    assert client["name"] == "finance-node" and client["parties"] == ["F530000", "U001"]
    assert "token_sm3" not in client and client["revoked_at"] is None
    assert token not in json.dumps(status)
    assert "finance-node" in ok("signing-status", "--dir", d)

    with SigningService.open(d, PASS) as service:
        at = datetime.now(UTC)
        der = service.seal_sign(
            token,
            username="zhangsan",
            post=Post.SEAL,
            party_code="F530000",
            kind=SealKind.UNIT_FINANCE,
            data=b"<v/>",
            now=at,
        )
        assert verify_seal_signature(der, b"<v/>", at).signer_cert == cert
        result = run("signing-audit", "--dir", d)  # the directory is ours while open
        assert isinstance(result.exception, DirectoryInUse)

    ok("signing-revoke-authorization", "--dir", d, "A000001")
    ok("signing-revoke-client", "--dir", d, "--name", "finance-node")
    assert "audit chain intact" in ok("signing-audit", "--dir", d)
    with SigningService.open(d, PASS) as service:
        admin = [(e.actor, e.action) for e in service.audit_entries() if e.action[:6] == "admin."]
        assert admin[:3] == [
            ("root", "admin.create"),
            ("root", "admin.generate_institution_key"),
            (admin[2][0], "admin.install_certificate"),
        ]
        assert service.authorizations()[0].revoked_at is not None


def test_the_passphrase_comes_from_a_file_or_the_environment_never_argv(tmp_path: Path) -> None:
    d = tmp_path / "signing"
    secret = tmp_path / "pass"
    secret.write_text(PASS + "\n")
    ok(
        "signing-init",
        "--dir",
        d,
        "--passphrase-file",
        secret,
        "--admin",
        "root",
        "--kdf-iterations",
        str(MIN_KDF_ITERATIONS),
        env={},
    )
    result = run("signing-server", "--dir", d, "--port", "0", env={})
    assert result.exit_code != 0 and "GUOKU_SIGNING_PASSPHRASE" in result.output
    result = run("signing-audit", "--dir", d, env={"GUOKU_SIGNING_PASSPHRASE": "wrong-one"})
    assert isinstance(result.exception, PassphraseIncorrect)


def test_init_prompts_twice_for_a_hidden_passphrase(tmp_path: Path) -> None:
    output = ok(
        "signing-init",
        "--dir",
        tmp_path / "s",
        "--admin",
        "root",
        "--kdf-iterations",
        str(MIN_KDF_ITERATIONS),
        env={},
        stdin=f"{PASS}\n{PASS}\n",
    )
    assert PASS not in output
