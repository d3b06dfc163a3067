"""The local key agent (`guoku key-agent`): what a U盾 driver does for the sign-in page.

A small HTTP server on 127.0.0.1 that opens the clerk's USB key (the software token of
``WORKDIR/security/usb/<user>.token``), logs in with the PIN the clerk typed, signs the server's
sign-in challenge and logs out. The page calls it with ``fetch``, as bank and treasury pages
call their U盾 drivers' local services.

Why it can be trusted this far: it listens on the loopback address only; a browser request must
come from an allowed origin (the web app's), which is what CORS sees and answers; it signs
sign-in challenges only (:func:`guoku.web.keylogin.sign_challenge` refuses anything else), so no
page can make it sign a voucher; the PIN goes to the agent, never to the server, and a wrong PIN
costs a retry on the token (five lock it). Requests without an ``Origin`` header come from local
programs (tests, scripts), which could read the token file anyway.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.request import Request, urlopen

from guoku.domain.errors import GuokuError, NotFound, ValidationError
from guoku.security.provision import usb_path
from guoku.security.token_protocol import PinIncorrect, TokenDead, TokenLocked
from guoku.web.keylogin import KeyLoginFailed, KeySignature, sign_challenge

DEFAULT_PORT: Final = 8719
MAX_BODY_BYTES: Final = 4096
_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_STATUS: Final[dict[type[GuokuError], HTTPStatus]] = {
    PinIncorrect: HTTPStatus.FORBIDDEN, KeyLoginFailed: HTTPStatus.FORBIDDEN,
    TokenLocked: HTTPStatus.LOCKED, TokenDead: HTTPStatus.LOCKED,
    NotFound: HTTPStatus.NOT_FOUND, ValidationError: HTTPStatus.BAD_REQUEST,
}


@dataclass(frozen=True)
class KeyAgent:
    """Signs sign-in challenges with the USB keys under ``security_dir``."""

    security_dir: Path
    origins: frozenset[str]

    def sign(self, username: str, pin: str, challenge: str) -> KeySignature:
        if not _USERNAME.fullmatch(username):
            raise ValidationError("not a user name")
        path = usb_path(self.security_dir, username)
        if not path.is_file():
            raise NotFound(f"no USB key for {username} is plugged in")
        return sign_challenge(path, pin, challenge)

    def serve(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
        """A server bound now (port 0: any free port); call ``serve_forever`` to answer."""
        agent = self

        class Handler(_Handler):
            key_agent = agent

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        return server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
        """Serve in a daemon thread (tests, ``guoku web`` over a demo); returns server and URL."""
        server = self.serve(host, port)
        threading.Thread(target=server.serve_forever, name="key-agent", daemon=True).start()
        return server, f"http://{host}:{server.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    key_agent: KeyAgent
    server_version = "guoku-key-agent/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a PIN never reaches a log line, and neither does anything else."""

    def _allowed_origin(self) -> str | None:
        """The origin to echo, '' for a local program, None for a refused page."""
        origin = self.headers.get("Origin")
        if origin is None:
            return ""
        return origin if origin in self.key_agent.origins else None

    def _reply(self, status: HTTPStatus, body: dict[str, Any] | None, origin: str) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
            self.send_header("Access-Control-Allow-Methods", "GET, POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self) -> None:
        origin = self._allowed_origin()
        if origin is None:
            self._reply(HTTPStatus.FORBIDDEN, None, "")
            return
        self._reply(HTTPStatus.NO_CONTENT, None, origin)

    def do_GET(self) -> None:
        origin = self._allowed_origin()
        if origin is None or self.path != "/v1/status":
            self._reply(HTTPStatus.NOT_FOUND if origin is not None else HTTPStatus.FORBIDDEN,
                        {"code": "NOT_FOUND"}, origin or "")
            return
        self._reply(HTTPStatus.OK, {"agent": "guoku-key-agent", "version": 1}, origin)

    def do_POST(self) -> None:
        origin = self._allowed_origin()
        if origin is None:
            self._reply(HTTPStatus.FORBIDDEN, {"code": "ORIGIN_REFUSED",
                                               "message": "this page may not use the key"}, "")
            return
        if self.path != "/v1/sign":
            self._reply(HTTPStatus.NOT_FOUND, {"code": "NOT_FOUND"}, origin)
            return
        try:
            request = self._json()
            signed = self.key_agent.sign(str(request["username"]), str(request["pin"]),
                                         str(request["challenge"]))
        except GuokuError as exc:
            status = next((s for t, s in _STATUS.items() if isinstance(exc, t)),
                          HTTPStatus.BAD_REQUEST)
            self._reply(status, {"code": exc.code, "message": exc.message}, origin)
            return
        except (KeyError, ValueError):
            self._reply(HTTPStatus.BAD_REQUEST, {"code": "BAD_REQUEST",
                                                 "message": "username, pin, challenge"}, origin)
            return
        self._reply(HTTPStatus.OK, {"certificate": _b64(signed.certificate),
                                    "signature": _b64(signed.signature)}, origin)

    def _json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            raise ValueError("body size")
        data = json.loads(self.rfile.read(length))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def request_signature(agent_url: str, username: str, pin: str, challenge: str,
                      timeout: float = 10) -> KeySignature:
    """What the sign-in page's script does, for programs and tests without a browser."""
    body = json.dumps({"username": username, "pin": pin, "challenge": challenge}).encode()
    request = Request(f"{agent_url}/v1/sign", body, {"Content-Type": "application/json"})
    with urlopen(request, timeout=timeout) as response:
        data = json.loads(response.read())
    return KeySignature(base64.b64decode(data["certificate"]), base64.b64decode(data["signature"]))


def agent_for(workdir: Path, origins: Iterable[str]) -> KeyAgent:
    return KeyAgent(workdir / "security", frozenset(origins))
