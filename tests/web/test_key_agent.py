"""The local key agent as the page and a hostile page meet it: CORS only for the app's origin,
sign-in challenges only, the PIN checked by the token itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from http.client import HTTPConnection
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from guoku.node.bootstrap import DEMO_SECRETS
from guoku.security.x509 import Certificate
from guoku.web.key_agent import KeyAgent, request_signature
from guoku.web.keylogin import Challenge
from guoku.workspace import Workspace

APP = "http://127.0.0.1:8000"


def _challenge(username: str) -> str:
    return Challenge.new(APP, username, datetime.now(UTC)).text


@pytest.fixture(scope="module")
def served(counter_ws: Workspace) -> Iterator[str]:
    server: ThreadingHTTPServer
    server, url = KeyAgent(counter_ws.security_dir, frozenset({APP})).start()
    yield url
    server.shutdown()
    server.server_close()


def _call(url: str, method: str, path: str, body: dict[str, str] | None = None,
          origin: str | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    conn.request(method, path, json.dumps(body) if body else None, headers)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_it_signs_a_challenge_with_the_users_personal_certificate(served: str) -> None:
    challenge = _challenge("unit-533103-entry")
    signed = request_signature(served, "unit-533103-entry", DEMO_SECRETS.user_pin, challenge)
    cert = Certificate.from_der(signed.certificate)
    assert cert.holder is not None and cert.holder.username == "unit-533103-entry"
    cert.public_key.verify(signed.signature, challenge.encode())


def test_cors_answers_the_apps_origin_and_refuses_any_other(served: str) -> None:
    status, headers, _ = _call(served, "OPTIONS", "/v1/sign", origin=APP)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == APP
    status, headers, _ = _call(served, "OPTIONS", "/v1/sign", origin="http://evil.example")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    body = {"username": "unit-533103-entry", "pin": DEMO_SECRETS.user_pin,
            "challenge": _challenge("unit-533103-entry")}
    status, headers, _ = _call(served, "POST", "/v1/sign", body, origin="http://evil.example")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_it_signs_nothing_but_sign_in_challenges(served: str) -> None:
    body = {"username": "unit-533103-seal", "pin": DEMO_SECRETS.user_pin,
            "challenge": "<Voucher>pay 1000000.00 to me</Voucher>"}
    status, _, data = _call(served, "POST", "/v1/sign", body, origin=APP)
    assert status == 403 and json.loads(data)["code"] == "KEY_LOGIN_FAILED"


def test_a_wrong_pin_is_refused_by_the_token(served: str) -> None:
    body = {"username": "unit-533102-recv", "pin": "000000",
            "challenge": _challenge("unit-533102-recv")}
    status, _, data = _call(served, "POST", "/v1/sign", body, origin=APP)
    assert status == 403 and json.loads(data)["code"] == "PIN_INCORRECT"


def test_no_path_escapes_the_usb_directory(served: str) -> None:
    body = {"username": "../secrets", "pin": "x", "challenge": "guoku-web-login/v1|x"}
    status, _, data = _call(served, "POST", "/v1/sign", body, origin=APP)
    assert status == 400 and json.loads(data)["code"] == "VALIDATION_ERROR"
