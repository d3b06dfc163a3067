"""The signing server as its own process: ``guoku signing-server`` stamps over HTTP, refuses
with a typed 403, and stops cleanly on SIGTERM with start and stop in its audit log."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from guoku.domain.controls import Post
from guoku.domain.seals import SealKind
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.security.crypto import SM2PrivateKey
from guoku.security.seals import make_seal, verify_seal_signature
from guoku.security.signing_http import HttpSigningClient
from guoku.security.signing_server import NotAuthorized, SigningService

PASSPHRASE = "process-test-passphrase"
DATA = b"<Voucher><No>ZF2026000042</No><Amount>88.00</Amount></Voucher>"
START_TIMEOUT_S = 30.0


@dataclass
class Deployment:
    directory: Path
    trust: TrustStore
    token: str
    passphrase_file: Path


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (16, 16), (218, 37, 29, 255)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    """A CA, finance's institution key and financial seal in a signing-server directory."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    ca = CertificateAuthority.create(
        tmp_path / "ca", "集成测试", "ca-passphrase-1", now, kdf_iterations=MIN_KDF_ITERATIONS
    )
    maker_key, key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    maker = ca.issue_institution("SEALSYS", "制章系统", maker_key.public_key(), now)
    cert = ca.issue_institution("F530000", "云南省财政厅", key.public_key(), now)
    seal = make_seal(
        "F530000-unit_finance",
        "云南省财政厅财务专用章",
        SealKind.UNIT_FINANCE,
        [cert.der],
        _png(),
        now,
        now + timedelta(days=30),
        maker_key,
        maker.der,
        now,
    )
    directory = tmp_path / "signing"
    with SigningService.create(
        directory, PASSPHRASE, admin="root", kdf_iterations=MIN_KDF_ITERATIONS
    ) as service:
        service.add_institution_key("F530000", key, cert, admin="root")
        es_id = service.add_seal(seal.der, admin="root")
        service.authorize(es_id, Post.SEAL, now, now + timedelta(days=7), admin="root")
        token = service.register_client("finance-node", ["F530000"], admin="root")
    ca.export_trust(tmp_path / "trust", now)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    return Deployment(
        directory, TrustStore.from_directory(tmp_path / "trust"), token, passphrase_file
    )


@pytest.fixture
def process(deployment: Deployment) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {k: v for k, v in os.environ.items() if k != "GUOKU_SIGNING_PASSPHRASE"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from guoku.cli import main; main()",
            "signing-server",
            "--dir",
            str(deployment.directory),
            "--passphrase-file",
            str(deployment.passphrase_file),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"server did not start: {line!r} {proc.stderr.read() if proc.poll() else ''}"
        yield proc, match[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_server_process_stamps_refuses_and_stops_on_sigterm(
    deployment: Deployment, process: tuple[subprocess.Popen[str], str]
) -> None:
    proc, url = process
    client = HttpSigningClient(url, deployment.token, timeout=10)
    assert client.health()

    now = datetime.now(UTC)
    der = client.seal_sign(
        username="zhangsan",
        post=Post.SEAL,
        party_code="F530000",
        kind=SealKind.UNIT_FINANCE,
        data=DATA,
        now=now,
        property_info="voucher.xml",
    )
    info = verify_seal_signature(der, DATA, now, deployment.trust)
    assert info.seal.es_id == "F530000-unit_finance" and info.chain_checked
    assert info.signer_cert == client.institution_certificate("F530000")

    with pytest.raises(NotAuthorized):
        client.seal_sign(
            username="lisi",
            post=Post.ENTRY,
            party_code="F530000",
            kind=SealKind.UNIT_FINANCE,
            data=DATA,
            now=now,
        )
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = {
        "username": "lisi",
        "post": "entry",
        "party_code": "F530000",
        "kind": "unit_finance",
        "data": base64.b64encode(DATA).decode(),
    }
    conn.request(
        "POST", "/v1/seal-sign", json.dumps(body), {"Authorization": f"Bearer {deployment.token}"}
    )
    response = conn.getresponse()
    refusal = json.loads(response.read())
    conn.close()
    assert response.status == 403 and refusal["code"] == "NOT_AUTHORIZED"
    client.close()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert proc.stdout is not None and "stopped" in proc.stdout.read()

    with SigningService.open(deployment.directory, PASSPHRASE) as service:  # lock released
        assert service.verify_audit() is None
        tail = [(e.action, e.outcome) for e in service.audit_entries()][-5:]
    assert tail == [
        ("server.start", "ok"),
        ("seal_sign", "ok"),
        ("seal_sign", "refused"),
        ("seal_sign", "refused"),
        ("server.stop", "ok"),
    ]
