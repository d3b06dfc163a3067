"""Sign-in with the clerk's USB key (U盾): a server challenge signed by the key's SM2 key.

A challenge is bound to what it is for::

    guoku-web-login/v1|<origin>|<username>|<issued at, unix s>|<nonce hex>

The server keeps every challenge it issued in the user's node database
(:func:`guoku.web.sessions.record_challenge`) and consumes it at sign-in with one conditional
UPDATE, so whichever web process (a deployment may run several) receives it, it is accepted
once, before it expires, for the user and site it was issued to. The key agent signs only texts
that start with :data:`PREFIX`: a page that reached the agent could not make it sign a voucher
or anything else. The server accepts a signature when the certificate sent with it chains to the
trust store, is not revoked, names the user (UID) and the user's party (OU), and verifies the
signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from guoku.domain.errors import GuokuError, PermissionDenied
from guoku.security.certs import TrustStore
from guoku.security.crypto import SignatureInvalid, random_bytes
from guoku.security.provision import USB_CERT_LABEL, USB_KEY_LABEL
from guoku.security.usbkey import SoftwareToken
from guoku.security.x509 import Certificate, KeyUsage

PREFIX: Final = "guoku-web-login/v1"
CHALLENGE_TTL_S: Final = 120
MAX_CHALLENGE_CHARS: Final = 512
MAX_ORIGIN_CHARS: Final = 256
MAX_USERNAME_CHARS: Final = 64
NONCE_BYTES: Final = 16
_NONCE = re.compile(f"[0-9a-f]{{{2 * NONCE_BYTES}}}")


class KeyLoginFailed(PermissionDenied):
    """The USB-key half of a sign-in did not hold (bad, stale or replayed challenge, or a
    certificate or signature that does not belong to the user)."""

    code = "KEY_LOGIN_FAILED"


@dataclass(frozen=True, slots=True)
class KeySignature:
    """What the key agent returns: the DER certificate and the SM2 signature (DER)."""

    certificate: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Challenge:
    """A sign-in challenge's fields; :attr:`text` is what the USB key signs."""

    origin: str
    username: str
    issued: int
    nonce: str

    @classmethod
    def new(cls, origin: str, username: str, now: datetime) -> Challenge:
        if ("|" in origin + username or len(username) > MAX_USERNAME_CHARS
                or len(origin) > MAX_ORIGIN_CHARS):
            raise KeyLoginFailed("not a user name")
        return cls(origin, username, int(now.timestamp()), random_bytes(NONCE_BYTES).hex())

    @classmethod
    def parse(cls, text: str) -> Challenge:
        parts = text.split("|")
        if (len(text) > MAX_CHALLENGE_CHARS or len(parts) != 5 or parts[0] != PREFIX
                or not parts[3].isdigit() or not _NONCE.fullmatch(parts[4])):
            raise KeyLoginFailed("malformed sign-in challenge")
        return cls(parts[1], parts[2], int(parts[3]), parts[4])

    @property
    def text(self) -> str:
        return f"{PREFIX}|{self.origin}|{self.username}|{self.issued}|{self.nonce}"

    def require_for(self, origin: str, username: str) -> None:
        """The challenge names this site and this user (else KeyLoginFailed)."""
        if self.origin != origin or self.username != username:
            raise KeyLoginFailed("the sign-in challenge is for another user or site")


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
