"""The signing server over HTTP: a stdlib threading server and the matching client.

JSON over HTTP/1.1 (keep-alive), bytes as standard base64, ``Authorization: Bearer <token>``::

    GET  /health                                  {"status": "ok"}                (no token)
    POST /v1/seal-sign        {username, post, party_code, kind, data, now?, property_info?}
                                                  -> {"signature"}
    POST /v1/seal-sign/batch  {"items": [...as above]}  -> {"signatures": [...]}
    POST /v1/sign             {party_code, data}        -> {"signature"}
    POST /v1/verify           {certificate, signature, data} -> {"valid": bool}
    POST /v1/encrypt          {certificate, data}       -> {"ciphertext"}
    POST /v1/decrypt          {party_code, ciphertext}  -> {"plaintext"}
    GET  /v1/institution-certificate/<party_code>       -> {"certificate"}  (DER, base64)

Errors are ``{"code", "message", ...details}`` with 401 (``CLIENT_UNKNOWN``), 403 (the other
``PermissionDenied``), 404, 409, 400/413 (bad request), 422 (crypto, seal), 503 (busy, stopping).
:class:`HttpSigningClient` raises the same :class:`~guoku.domain.errors.GuokuError` classes.

Every request is served through a :class:`LocalSigningClient` over the one
:class:`SigningService`: HTTP adds transport, never a second code path. The signing time a
client sends (``now``) must be within :data:`MAX_CLOCK_SKEW` of the server's clock, so a client
cannot backdate a stamp; without ``now`` the server's clock is used.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from guoku.domain.controls import Post
from guoku.domain.errors import (
    Conflict,
    GuokuError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from guoku.domain.seals import SealKind
from guoku.security import seals
from guoku.security.crypto import CryptoError, DecryptionFailed, KeyInvalid, SignatureInvalid
from guoku.security.signing_server import (
    ClientUnknown,
    Clock,
    LocalSigningClient,
    NotAuthorized,
    PartyUnknown,
    SealNotFound,
    SealRequest,
    SigningService,
    system_clock,
)
from guoku.security.x509 import (
    Certificate,
    CertificateExpired,
    CertificateInvalid,
    CertificateNotYetValid,
    KeyUsageInvalid,
)

MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
MAX_RESPONSE_BYTES: Final = 512 * 1024 * 1024
MAX_CONCURRENT_REQUESTS: Final = 32
REQUEST_TIMEOUT_S: Final = 30.0
"""Socket timeout per request read, and how long an idle keep-alive connection is held."""
DRAIN_TIMEOUT_S: Final = 30.0
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
CERTIFICATE_PATH: Final = "/v1/institution-certificate/"


class RequestInvalid(ValidationError):
    code = "REQUEST_INVALID"


class RequestTooLarge(ValidationError):
    code = "REQUEST_TOO_LARGE"


class ClockSkew(ValidationError):
    """The client's signing time is too far from the server's clock."""

    code = "CLOCK_SKEW"


class ServerBusy(GuokuError):
    code = "SIGNING_SERVER_BUSY"


class ListenFailed(Conflict):
    """The address is taken or not ours to bind."""

    code = "SIGNING_SERVER_LISTEN_FAILED"


class SigningServerUnavailable(GuokuError):
    """The signing server could not be reached or answered something that is not its API."""

    code = "SIGNING_SERVER_UNAVAILABLE"


_STATUS: Final[tuple[tuple[type[GuokuError], int], ...]] = (
    (ClientUnknown, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RequestTooLarge, 413),
    (ValidationError, 400),
    (CryptoError, 422),
    (ServerBusy, 503),
)

_ERRORS: Final[tuple[type[GuokuError], ...]] = (
    ClientUnknown,
    NotAuthorized,
    SealNotFound,
    PartyUnknown,
    RequestInvalid,
    RequestTooLarge,
    ClockSkew,
    ServerBusy,
    PermissionDenied,
    NotFound,
    Conflict,
    ValidationError,
    CryptoError,
    SignatureInvalid,
    DecryptionFailed,
    KeyInvalid,
    CertificateInvalid,
    CertificateExpired,
    CertificateNotYetValid,
    KeyUsageInvalid,
    seals.SealInvalid,
    seals.SealMalformed,
    seals.SealUnsupported,
    seals.SealSignatureInvalid,
    seals.SealMakerSignatureInvalid,
    seals.SealExpired,
    seals.SealCertificateExpired,
    seals.SealSignerNotHolder,
    seals.SealParameterInvalid,
    seals.SealDataMismatch,
    seals.SealChainInvalid,
)
"""Errors the server sends by code and the client raises again, as the same class."""
_BY_CODE: Final = {cls.code: cls for cls in _ERRORS}


def status_for(exc: GuokuError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 400)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- request fields ----------------------------------------------------------------------


def _field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise RequestInvalid(f"field {name!r} must be a string")
    return value


def _bytes(body: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(_field(body, name), validate=True)
    except (binascii.Error, ValueError):
        raise RequestInvalid(f"field {name!r} is not base64") from None


def _request(item: Any, clock: Clock) -> SealRequest:
    if not isinstance(item, dict):
        raise RequestInvalid("a seal request is a JSON object")
    server_now = clock()
    now = server_now
    if item.get("now") is not None:
        try:
            now = datetime.fromisoformat(_field(item, "now"))
        except ValueError:
            raise RequestInvalid("field 'now' is not an ISO 8601 time") from None
        if now.tzinfo is None:
            raise RequestInvalid("field 'now' needs a UTC offset")
        if abs(now - server_now) > MAX_CLOCK_SKEW:
            raise ClockSkew(
                f"signing time {now.isoformat()} is off the server's clock "
                f"{server_now.isoformat()} by more than {MAX_CLOCK_SKEW}"
            )
    try:
        post, kind = Post(_field(item, "post")), SealKind(_field(item, "kind"))
    except ValueError as exc:
        raise RequestInvalid(f"unknown post or seal kind: {exc}") from None
    info = item.get("property_info", "")
    if not isinstance(info, str):
        raise RequestInvalid("field 'property_info' must be a string")
    return SealRequest(
        _field(item, "username"),
        post,
        _field(item, "party_code"),
        kind,
        _bytes(item, "data"),
        now,
        info,
    )


def _seal_json(request: SealRequest) -> dict[str, Any]:
    return {
        "username": request.username,
        "post": str(request.post),
        "party_code": request.party_code,
        "kind": str(request.kind),
        "data": _b64(request.data),
        "now": request.now.isoformat(),
        "property_info": request.property_info,
    }


Route = Callable[[LocalSigningClient, dict[str, Any], Clock], dict[str, Any]]


def _seal_sign(c: LocalSigningClient, body: dict[str, Any], clock: Clock) -> dict[str, Any]:
    r = _request(body, clock)
    signature = c.seal_sign(
        username=r.username,
        post=r.post,
        party_code=r.party_code,
        kind=r.kind,
        data=r.data,
        now=r.now,
        property_info=r.property_info,
    )
    return {"signature": _b64(signature)}


def _batch(c: LocalSigningClient, body: dict[str, Any], clock: Clock) -> dict[str, Any]:
    items = body.get("items")
    if not isinstance(items, list):
        raise RequestInvalid("field 'items' must be a list")
    return {"signatures": [_b64(s) for s in c.batch_seal_sign([_request(i, clock) for i in items])]}


def _certificate(c: LocalSigningClient, body: dict[str, Any], _: Clock) -> dict[str, Any]:
    return {"certificate": _b64(c.institution_certificate(_field(body, "party_code")).der)}


_ROUTES: Final[Mapping[str, tuple[str, Route]]] = {
    "/v1/seal-sign": ("seal_sign", _seal_sign),
    "/v1/seal-sign/batch": ("batch_seal_sign", _batch),
    "/v1/sign": (
        "sign",
        lambda c, b, _: {"signature": _b64(c.sign(_field(b, "party_code"), _bytes(b, "data")))},
    ),
    "/v1/verify": (
        "verify",
        lambda c, b, _: {
            "valid": c.verify(_bytes(b, "certificate"), _bytes(b, "signature"), _bytes(b, "data"))
        },
    ),
    "/v1/encrypt": (
        "encrypt",
        lambda c, b, _: {
            "ciphertext": _b64(c.encrypt(_bytes(b, "certificate"), _bytes(b, "data")))
        },
    ),
    "/v1/decrypt": (
        "decrypt",
        lambda c, b, _: {
            "plaintext": _b64(c.decrypt(_field(b, "party_code"), _bytes(b, "ciphertext")))
        },
    ),
}
"""POST path -> (the audited action name, the handler)."""


# --- the server --------------------------------------------------------------------------


class SigningHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most :data:`MAX_CONCURRENT_REQUESTS` requests at work.

    :meth:`drain` stops taking requests (later ones on kept-alive connections get 503) and
    waits for those in flight, so the service is closed only once no request is using it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        service: SigningService,
        *,
        clock: Clock = system_clock,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        verbose: bool = False,
    ) -> None:
        super().__init__(address, _Handler)
        self.service, self.clock, self.verbose = service, clock, verbose
        self.max_request_bytes = max_request_bytes
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self._idle = threading.Condition()
        self._inflight, self._stopping = 0, False

    def enter(self) -> bool:
        if not self._slots.acquire(timeout=REQUEST_TIMEOUT_S):
            return False
        with self._idle:
            if self._stopping:
                self._slots.release()
                return False
            self._inflight += 1
            return True

    def leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()
        self._slots.release()

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Refuse new requests; wait for the ones in flight. False if some still run."""
        with self._idle:
            self._stopping = True
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)


class _Handler(BaseHTTPRequestHandler):
    server: SigningHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server_version = "guoku-signing-server"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        reason = message or self.responses.get(code, ("error",))[0]
        self._send(code, {"code": f"HTTP_{code}", "message": reason})

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _serve(self, method: str) -> None:
        path = urlsplit(self.path).path
        if method == "GET" and path == "/health":
            self._send(200, {"status": "ok"})
            return
        if not self.server.enter():
            self.close_connection = True
            self._send(503, ServerBusy("the signing server is busy or stopping").to_dict())
            return
        try:
            self._send(200, self._route(method, path))
        except GuokuError as exc:
            self._send(status_for(exc), exc.to_dict())
        except Exception:  # a bug: logged here, a bare 500 to the client
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._send(500, {"code": "INTERNAL_ERROR", "message": "see the signing server log"})
        finally:
            self.server.leave()

    def _route(self, method: str, path: str) -> dict[str, Any]:
        """Authenticate before reading the body: a caller without a token learns nothing and
        costs no parsing (its connection is closed, its body never read)."""
        if method == "POST" and path in _ROUTES:
            action, route = _ROUTES[path]
        elif method == "GET" and path.startswith(CERTIFICATE_PATH):
            action, route = "institution_certificate", _certificate
        else:
            self.close_connection = True  # the body, if any, is not read
            raise NotFound(f"no endpoint {method} {path}")
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        service = self.server.service
        try:
            client = service.authenticate(token, action)
        except ClientUnknown:
            self.close_connection = True
            raise
        try:
            if method == "POST":
                body = self._body()
            else:
                body = {"party_code": unquote(path[len(CERTIFICATE_PATH) :])}
            return route(LocalSigningClient(service, token), body, self.server.clock)
        except (RequestInvalid, RequestTooLarge, ClockSkew) as exc:  # refused before the service
            service.record_event(
                action, client.name, outcome="refused", error=exc.code, reason=exc.message[:500]
            )
            raise

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestInvalid("chunked bodies are not accepted: send Content-Length")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise RequestInvalid("Content-Length is required") from None
        if not 0 <= length <= self.server.max_request_bytes:
            self.close_connection = True
            raise RequestTooLarge(
                f"request body of {length} bytes; the limit is {self.server.max_request_bytes}"
            )
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            raise RequestInvalid("the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestInvalid("the body must be a JSON object")
        return body

    def _send(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def serve(
    service: SigningService,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str, int], None] = lambda host, port: None,
    verbose: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight requests and return.

    The service is left open (the caller closes it); start and stop are audited.
    """
    try:
        server = SigningHTTPServer((host, port), service, verbose=verbose)
    except OSError as exc:
        raise ListenFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    bound_port = int(server.server_address[1])
    address = f"{host}:{bound_port}"
    try:
        worker.start()
        service.record_event("server.start", "signing-server", address=address)
        on_ready(host, bound_port)
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        drained = server.drain()
        server.server_close()
        worker.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        service.record_event("server.stop", "signing-server", address=address, drained=drained)


# --- the client --------------------------------------------------------------------------


class HttpSigningClient:
    """:class:`~guoku.security.signing_server.SigningClient` over HTTP, one keep-alive
    connection per thread. Errors come back as the server's own error classes."""

    def __init__(self, base_url: str, token: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"signing server URL {base_url!r} is not http(s)://host[:port]")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._token, self._timeout = token, timeout
        self._local = threading.local()

    def seal_sign(
        self,
        *,
        username: str,
        post: Post,
        party_code: str,
        kind: SealKind,
        data: bytes,
        now: datetime,
        property_info: str = "",
    ) -> bytes:
        request = SealRequest(username, post, party_code, kind, data, now, property_info)
        return _unb64(self._call("POST", "/v1/seal-sign", _seal_json(request)), "signature")

    def batch_seal_sign(self, requests: Sequence[SealRequest]) -> list[bytes]:
        reply = self._call(
            "POST", "/v1/seal-sign/batch", {"items": [_seal_json(r) for r in requests]}
        )
        signatures = reply.get("signatures")
        if not isinstance(signatures, list) or len(signatures) != len(requests):
            raise SigningServerUnavailable("the server's batch answer has the wrong length")
        return [_unb64({"s": s}, "s") for s in signatures]

    def sign(self, party_code: str, data: bytes) -> bytes:
        reply = self._call("POST", "/v1/sign", {"party_code": party_code, "data": _b64(data)})
        return _unb64(reply, "signature")

    def verify(self, cert_der: bytes, signature: bytes, data: bytes) -> bool:
        body = {"certificate": _b64(cert_der), "signature": _b64(signature), "data": _b64(data)}
        return self._call("POST", "/v1/verify", body).get("valid") is True

    def encrypt(self, cert_der: bytes, data: bytes) -> bytes:
        body = {"certificate": _b64(cert_der), "data": _b64(data)}
        return _unb64(self._call("POST", "/v1/encrypt", body), "ciphertext")

    def decrypt(self, party_code: str, ciphertext: bytes) -> bytes:
        body = {"party_code": party_code, "ciphertext": _b64(ciphertext)}
        return _unb64(self._call("POST", "/v1/decrypt", body), "plaintext")

    def institution_certificate(self, party_code: str) -> Certificate:
        reply = self._call("GET", CERTIFICATE_PATH + quote(party_code, safe=""), None)
        return Certificate.from_der(_unb64(reply, "certificate"))

    def health(self) -> bool:
        return self._call("GET", "/health", None).get("status") == "ok"

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout)
        self._local.conn = conn
        return conn, False

    def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        if body is not None and len(body) > MAX_REQUEST_BYTES:
            raise RequestTooLarge(f"request of {len(body)} bytes; the limit is {MAX_REQUEST_BYTES}")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        while True:
            conn, reused = self._connection()
            try:
                conn.request(method, self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read(MAX_RESPONSE_BYTES + 1)
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if not reused:  # a fresh connection failing is the server's problem, not idling
                    raise SigningServerUnavailable(
                        f"signing server dropped the request: {exc}"
                    ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise SigningServerUnavailable(f"cannot reach the signing server: {exc}") from exc
        if response.will_close:
            self.close()
        if len(raw) > MAX_RESPONSE_BYTES:
            self.close()
            raise SigningServerUnavailable(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            reply = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            reply = None
        if not isinstance(reply, dict):
            raise SigningServerUnavailable(f"HTTP {response.status} with a body that is not JSON")
        if response.status != 200:
            raise _error(response.status, reply)
        return reply


def _unb64(reply: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(reply[name], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise SigningServerUnavailable(f"the server's answer has no valid {name!r}") from None


def _error(status: int, reply: Mapping[str, Any]) -> GuokuError:
    """The server's error as the same class (by code), else the family its status names."""
    code, message = str(reply.get("code", "")), str(reply.get("message", f"HTTP {status}"))
    details = {k: v for k, v in reply.items() if k not in ("code", "message")}
    cls = _BY_CODE.get(code)
    if cls is None:
        families = {
            401: PermissionDenied,
            403: PermissionDenied,
            404: NotFound,
            409: Conflict,
            400: ValidationError,
            413: ValidationError,
            422: CryptoError,
        }
        cls = families.get(status, SigningServerUnavailable)
        details["remote_code"] = code
    try:
        return cls(message, **details)
    except TypeError:
        return SigningServerUnavailable(f"{code}: {message}", remote_code=code)
