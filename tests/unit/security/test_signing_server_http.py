"""The signing server over HTTP, in-process: same answers and same error classes as the service."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_signing_server import (
    BANK,
    DATA,
    FINANCE,
    NOW,
    UNIT,
    UNIT_SEAL,
    Server,
    World,
    build_server,
    build_world,
    fixed,
    requests,
)

from guoku.domain.controls import Post
from guoku.domain.seals import SealKind
from guoku.security.crypto import random_bytes
from guoku.security.seals import parse_seal_signature, verify_seal_signature
from guoku.security.signing_http import (
    ClockSkew,
    HttpSigningClient,
    RequestTooLarge,
    SigningHTTPServer,
    SigningServerUnavailable,
)
from guoku.security.signing_server import ClientUnknown, NotAuthorized, SealNotFound


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("http-world"))


@dataclass
class Running:
    server: Server
    http: SigningHTTPServer
    url: str

    def client(self, token: str | None = None) -> HttpSigningClient:
        return HttpSigningClient(self.url, token or self.server.finance_token, timeout=10)

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http.server_address[1], timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()


@pytest.fixture
def running(world: World, tmp_path: Path) -> Iterator[Running]:
    server = build_server(world, tmp_path / "signing")
    httpd = SigningHTTPServer(
        ("127.0.0.1", 0), server.service, clock=fixed(NOW), max_request_bytes=256 * 1024
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Running(server, httpd, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.drain(5)
        httpd.server_close()
        thread.join()
        server.service.close()


def seal_body(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "username": "zhangsan",
        "post": "seal",
        "party_code": UNIT,
        "kind": "unit_finance",
        "data": base64.b64encode(DATA).decode(),
        "now": NOW.isoformat(),
    }
    body.update(overrides)
    return json.dumps(body).encode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_a_stamp_over_http_verifies(running: Running, world: World) -> None:
    der = running.client().seal_sign(
        username="zhangsan",
        post=Post.SEAL,
        party_code=UNIT,
        kind=SealKind.UNIT_FINANCE,
        data=DATA,
        now=NOW,
        property_info="voucher.xml",
    )
    info = verify_seal_signature(der, DATA, NOW, world.trust)
    assert info.seal.es_id == UNIT_SEAL and info.signer_cert == world.finance.cert
    entry = list(running.server.service.audit_entries())[-1]
    assert (entry.actor, entry.action, entry.outcome) == ("finance-node", "seal_sign", "ok")


def test_a_refusal_is_a_403_with_a_typed_code_and_the_same_class(running: Running) -> None:
    status, body = running.raw(
        "POST", "/v1/seal-sign", seal_body(post="review"), bearer(running.server.finance_token)
    )
    assert status == 403 and body["code"] == "NOT_AUTHORIZED" and "review" in body["message"]
    with pytest.raises(NotAuthorized, match="review"):
        running.client().seal_sign(
            username="zhangsan",
            post=Post.REVIEW,
            party_code=UNIT,
            kind=SealKind.UNIT_FINANCE,
            data=DATA,
            now=NOW,
        )
    with pytest.raises(SealNotFound):
        running.client().seal_sign(
            username="zhangsan",
            post=Post.SEAL,
            party_code=UNIT,
            kind=SealKind.LEGAL_REP,
            data=DATA,
            now=NOW,
        )


def test_a_missing_or_bad_token_is_a_401(running: Running) -> None:
    status, body = running.raw("POST", "/v1/seal-sign", seal_body(), {})
    assert status == 401 and body["code"] == "CLIENT_UNKNOWN"
    with pytest.raises(ClientUnknown):
        running.client("wrong").sign(FINANCE, DATA)
    status, body = running.raw("POST", "/v1/sign", b"{not json", bearer("wrong"))
    assert status == 401 and body["code"] == "CLIENT_UNKNOWN"  # no hint about the body
    entry = list(running.server.service.audit_entries())[-1]
    assert (entry.actor, entry.action, entry.outcome) == ("?", "sign", "refused")


def test_the_signing_time_must_be_near_the_server_clock(running: Running) -> None:
    with pytest.raises(ClockSkew):
        running.client().seal_sign(
            username="zhangsan",
            post=Post.SEAL,
            party_code=UNIT,
            kind=SealKind.UNIT_FINANCE,
            data=DATA,
            now=NOW - timedelta(hours=1),
        )
    entry = list(running.server.service.audit_entries())[-1]
    assert (entry.actor, entry.action, entry.outcome) == ("finance-node", "seal_sign", "refused")
    assert "CLOCK_SKEW" in entry.detail
    status, body = running.raw(
        "POST", "/v1/seal-sign", seal_body(now=None), bearer(running.server.finance_token)
    )
    assert status == 200
    assert parse_seal_signature(base64.b64decode(body["signature"])).signed_at == NOW


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "REQUEST_INVALID"),
        (b"[]", 400, "REQUEST_INVALID"),
        (seal_body(data="***"), 400, "REQUEST_INVALID"),
        (seal_body(post="boss"), 400, "REQUEST_INVALID"),
        (seal_body(username=7), 400, "REQUEST_INVALID"),
        (seal_body(kind="personal"), 400, "VALIDATION_ERROR"),
    ],
)
def test_malformed_requests_are_400s(running: Running, body: bytes, status: int, code: str) -> None:
    got, reply = running.raw("POST", "/v1/seal-sign", body, bearer(running.server.finance_token))
    assert (got, reply["code"]) == (status, code)


def test_a_request_over_the_size_limit_is_a_413(running: Running) -> None:
    with pytest.raises(RequestTooLarge):
        running.client().sign(FINANCE, b"x" * 300 * 1024)


def test_unknown_endpoints_are_404_and_health_needs_no_token(running: Running) -> None:
    assert running.raw("GET", "/v1/nothing")[0] == 404
    assert running.raw("PUT", "/v1/sign", b"{}") == (
        501,
        {"code": "HTTP_501", "message": "Unsupported method ('PUT')"},
    )
    assert running.raw("GET", "/health") == (200, {"status": "ok"})
    assert running.client().health()


def test_batch_sign_encrypt_decrypt_and_certificates_over_http(
    running: Running, world: World
) -> None:
    client = running.client()
    items = requests(20)
    for item, der in zip(items, client.batch_seal_sign(items), strict=True):
        verify_seal_signature(der, item.data, NOW)
    signature = client.sign(FINANCE, DATA)
    assert client.verify(world.finance.cert.der, signature, DATA)
    assert not client.verify(world.finance.cert.der, signature, DATA + b"!")
    key = random_bytes(16)
    assert client.decrypt(FINANCE, client.encrypt(world.finance.cert.der, key)) == key
    assert client.institution_certificate(FINANCE) == world.finance.cert
    with pytest.raises(NotAuthorized):
        running.client(running.server.bank_token).decrypt(FINANCE, b"\x30\x00")
    assert (
        running.client(running.server.bank_token).institution_certificate(BANK) == world.bank.cert
    )


def test_concurrent_clients_leave_one_intact_audit_chain(running: Running) -> None:
    client = running.client()

    def one(i: int) -> bytes:
        return client.seal_sign(
            username="zhangsan",
            post=Post.SEAL,
            party_code=UNIT,
            kind=SealKind.UNIT_FINANCE,
            data=DATA + bytes([i]),
            now=NOW,
        )

    with ThreadPoolExecutor(6) as pool:
        signatures = list(pool.map(one, range(30)))
    for i, der in enumerate(signatures):
        verify_seal_signature(der, DATA + bytes([i]), NOW)
    assert running.server.service.verify_audit() is None


def test_a_draining_server_answers_503_busy(running: Running) -> None:
    running.http.drain(1)
    status, body = running.raw("POST", "/v1/sign", b"{}", bearer(running.server.finance_token))
    assert status == 503 and body["code"] == "SIGNING_SERVER_BUSY"


def test_an_unreachable_server_is_a_typed_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SigningServerUnavailable):
        HttpSigningClient(f"http://127.0.0.1:{port}", "t", timeout=2).sign(FINANCE, DATA)
