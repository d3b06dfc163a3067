"""The personal seal (私章) on a clerk's USB key, as the voucher sealer uses it."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from guoku.security.crypto import SM2PublicKey
from guoku.security.provision import USB_CERT_LABEL, USB_KEY_LABEL, USB_SEAL_LABEL
from guoku.security.seals import Seal, import_seal, sign_with_seal
from guoku.security.token_protocol import KeyToken
from guoku.security.usbkey import SoftwareToken


class UsbPersonalSeal:
    """A logged-in USB key: signs with the key that never leaves it, stamping its seal."""

    def __init__(self, token: KeyToken) -> None:
        self.token = token
        self.seal: Seal = import_seal(token.read_object(USB_SEAL_LABEL))
        self.cert_der = token.certificate(USB_CERT_LABEL)

    @classmethod
    def open(cls, path: Path, pin: str) -> UsbPersonalSeal:
        return _open_cached(str(path), pin)

    def seal_sign(self, data: bytes, now: datetime, property_info: str) -> bytes:
        return sign_with_seal(
            self.seal, _TokenKey(self.token), self.cert_der, data, now, property_info
        )


class _TokenKey:
    """Adapts a token's key to what ``sign_with_seal`` needs of a signer."""

    def __init__(self, token: KeyToken) -> None:
        self.token = token

    def public_key(self) -> SM2PublicKey:
        return self.token.public_key(USB_KEY_LABEL)

    def sign(self, data: bytes) -> bytes:
        return self.token.sign(USB_KEY_LABEL, data)


@lru_cache(maxsize=256)
def _open_cached(path: str, pin: str) -> UsbPersonalSeal:
    """One login per key per process, as a clerk unlocks the U盾 once per session."""
    token = SoftwareToken.open(path)
    token.login(pin)
    return UsbPersonalSeal(token)
