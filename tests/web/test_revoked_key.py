"""A clerk whose personal certificate the deployment CA revoked cannot sign in, though the
password is right and the USB key still makes a valid signature: the web process learns the
revocation as the nodes' seal verifiers do, from the CRL published into the trust directory it
loads (``CertificateAuthority.export_trust`` → ``TrustStore.from_directory``). Its own
workspace: the revocation must not reach the session-wide one other tests sign in to."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_login import login_form, refusals

from guoku.node.bootstrap import DEMO_SECRETS
from guoku.security.ca import CertificateAuthority
from guoku.security.certs import RevocationReason
from guoku.security.x509 import Certificate
from guoku.web.app import create_app
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.web.security import COOKIE
from guoku.workspace import Workspace, create, open_workspace

CLERK, PARTY = "unit-533103-entry", "U533103001"


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    ws = create(tmp_path / "ws", datetime.now(UTC))
    ws.close()
    yield ws.workdir


def _browser(ws: Workspace) -> TestClient:
    return TestClient(create_app(WebContext.over_workspace(ws)), follow_redirects=False)


def test_a_revoked_personal_certificate_cannot_sign_in(workdir: Path) -> None:
    agent = KeyAgent(workdir / "security", frozenset({"http://testserver"}))
    ws = open_workspace(workdir)
    try:  # before the revocation the clerk signs in
        client = _browser(ws)
        assert client.post("/login", data=login_form(client, agent, CLERK)).status_code == 303
    finally:
        ws.close()

    ca = CertificateAuthority.open(workdir / "security" / "ca", DEMO_SECRETS.passphrase)
    [issued] = [r for r in ca.records() if r.username == CLERK]  # as `guoku ca list` shows
    ca.revoke(issued.serial, datetime.now(UTC).replace(microsecond=0),
              RevocationReason.KEY_COMPROMISE)
    ca.export_trust(workdir / "security" / "trust", datetime.now(UTC))  # publish the CRL

    ws = open_workspace(workdir)  # the web process (re)loads its trust store
    try:
        client = _browser(ws)
        form = login_form(client, agent, CLERK)
        signed = Certificate.from_der(base64.b64decode(form["certificate"]))
        signed.public_key.verify(base64.b64decode(form["signature"]), form["challenge"].encode())
        assert f"{signed.serial:x}" == issued.serial  # the revoked certificate's own key
        answer = client.post("/login", data=form)
        assert answer.status_code == 401 and COOKIE not in client.cookies
        [(_, reason)] = refusals(ws.node_for(PARTY).engine, CLERK)
        assert reason.startswith("the USB key's certificate is not accepted")
        assert f"serial {issued.serial}) was revoked" in reason
        assert "key_compromise" in reason
    finally:
        ws.close()
