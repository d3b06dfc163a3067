"""Sign-in with the clerk's USB key (U盾): a server challenge signed by the key's SM2 key.

The challenge is stateless and bound to what it is for::

    guoku-web-login/v1|<origin>|<username>|<issued at, unix s>|<nonce hex>|<mac hex>

``mac`` is HMAC-SM3 under the app's secret over everything before it, so the server needs no
table of open challenges and a challenge for one user or site is useless for another. The key
agent signs only texts that start with :data:`PREFIX`: a page that reached the agent could not
make it sign a voucher or anything else. The server accepts a signature when the certificate
sent with it chains to the trust store, is not revoked, names the user (UID) and the user's
party (OU), and verifies the signature; each nonce is accepted once (in this process).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from guoku.domain.errors import GuokuError, PermissionDenied
from guoku.security.certs import TrustStore
from guoku.security.crypto import SignatureInvalid, random_bytes
from guoku.security.provision import USB_CERT_LABEL, USB_KEY_LABEL
from guoku.security.usbkey import SoftwareToken
from guoku.security.x509 import Certificate, KeyUsage

PREFIX: Final = "guoku-web-login/v1"
CHALLENGE_TTL_S: Final = 120
MAX_CHALLENGE_CHARS: Final = 512
MAX_SEEN_NONCES: Final = 10_000


class KeyLoginFailed(PermissionDenied):
    """The USB-key half of a sign-in did not hold (bad, stale or replayed challenge, or a
    certificate or signature that does not belong to the user)."""

    code = "KEY_LOGIN_FAILED"


@dataclass(frozen=True, slots=True)
class KeySignature:
    """What the key agent returns: the DER certificate and the SM2 signature (DER)."""

    certificate: bytes
    signature: bytes


class Challenges:
    """Issues and checks login challenges for one app process (its secret lives only in
    memory: a restart only costs the challenges in flight)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or random_bytes(32)
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, origin: str, username: str, now: float | None = None) -> str:
        if "|" in origin + username or len(username) > 64:
            raise KeyLoginFailed("not a user name")
        issued = int(time.time() if now is None else now)
        body = f"{PREFIX}|{origin}|{username}|{issued}|{random_bytes(16).hex()}"
        return f"{body}|{self._mac(body)}"

    def _mac(self, body: str) -> str:
        mac = HMAC(self._secret, hashes.SM3())
        mac.update(body.encode())
        return mac.finalize().hex()

    def check(self, challenge: str, origin: str, username: str,
              now: float | None = None) -> None:
        """Ours, for this user and site, fresh and not used before — else KeyLoginFailed."""
        if len(challenge) > MAX_CHALLENGE_CHARS or challenge.count("|") != 5:
            raise KeyLoginFailed("malformed sign-in challenge")
        body, mac = challenge.rsplit("|", 1)
        if not hmac.compare_digest(self._mac(body), mac):
            raise KeyLoginFailed("the sign-in challenge was not issued here")
        _, site, who, issued, nonce = body.split("|")
        at = time.time() if now is None else now
        if site != origin or who != username:
            raise KeyLoginFailed("the sign-in challenge is for another user or site")
        if not 0 <= at - int(issued) <= CHALLENGE_TTL_S:
            raise KeyLoginFailed("the sign-in challenge has expired; sign in again")
        with self._lock:
            self._forget(at)
            if nonce in self._seen:
                raise KeyLoginFailed("the sign-in challenge was used already")
            self._seen[nonce] = at

    def _forget(self, now: float) -> None:
        while self._seen and (len(self._seen) >= MAX_SEEN_NONCES
                              or next(iter(self._seen.values())) < now - CHALLENGE_TTL_S):
            self._seen.popitem(last=False)


def verify_key_signature(
    trust: TrustStore, challenge: str, signed: KeySignature, username: str, party: str,
    at: datetime,
) -> Certificate:
    """The certificate is the user's personal certificate, valid now, and it signed this."""
    try:
        cert = Certificate.from_der(signed.certificate)
        trust.validate(cert, at, KeyUsage.DIGITAL_SIGNATURE)
    except GuokuError as exc:
        raise KeyLoginFailed(f"the USB key's certificate is not accepted: {exc.message}") from exc
    holder = cert.holder
    if holder is None or holder.username != username or holder.party_code != party:
        raise KeyLoginFailed(f"the USB key belongs to someone else ({cert.subject})")
    try:
        cert.public_key.verify(signed.signature, challenge.encode())
    except SignatureInvalid as exc:
        raise KeyLoginFailed("the USB key's signature does not verify") from exc
    return cert


def sign_challenge(token_path: Path, pin: str, challenge: str) -> KeySignature:
    """What the key agent does after the PIN is entered: log in, sign, log out."""
    if not challenge.startswith(PREFIX + "|") or len(challenge) > MAX_CHALLENGE_CHARS:
        raise KeyLoginFailed("the key signs sign-in challenges only")
    token = SoftwareToken.open(token_path)
    token.login(pin)
    try:
        return KeySignature(token.certificate(USB_CERT_LABEL),
                            token.sign(USB_KEY_LABEL, challenge.encode()))
    finally:
        token.logout()
