"""身份认证系统 — the deployment CA: a root, an issuing CA, and the certificates they issue.

Finance's IT department runs it (DOMAIN §3). The root signs only the issuing CA; the issuing CA
signs institution certificates (机构证书: finance, pboc, each bank — signing and key unwrapping)
and personal certificates (个人证书: clerks, signing only). The holder makes its key pair
(signing server, USB key) and hands in only the public key; the CA never sees its private key.

A CA directory holds::

    ca.json                 name, CRL numbers, the index of issued certificates and revocations
    root.pem, issuing.pem   the two CA certificates
    root.key, issuing.key   their private keys, SM4-GCM under a PBKDF2-SM3 key (encrypt_key)
    issued/<serial>.pem     every certificate issued

Time is always passed in. One operator at a time: files are replaced atomically, not locked.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from guoku.domain.errors import Conflict, NotFound, ValidationError
from guoku.security.certs import (
    CRLS_DIR,
    INTERMEDIATES_DIR,
    ROOTS_DIR,
    Crl,
    Revocation,
    RevocationReason,
    build_crl,
)
from guoku.security.crypto import (
    CryptoError,
    DecryptionFailed,
    SM2PrivateKey,
    SM2PublicKey,
    pbkdf2_sm3,
    random_bytes,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)
from guoku.security.x509 import (
    Certificate,
    CertificateInvalid,
    HolderKind,
    KeyUsage,
    build_certificate,
    check_display_name,
    require_utc,
    subject_name,
)

FORMAT: Final = "guoku-ca/1"
ROOT_DAYS: Final = 20 * 365
ISSUING_DAYS: Final = 10 * 365
DEFAULT_CERT_DAYS: Final = 2 * 365
MAX_CERT_DAYS: Final = 5 * 365
DEFAULT_CRL_DAYS: Final = 7
MIN_PASSPHRASE: Final = 8
KEY_FORMAT: Final = "guoku-encrypted-key/1"
DEFAULT_KDF_ITERATIONS: Final = 600_000
"""PBKDF2-HMAC-SM3 rounds (~0.2 s per key here): the passphrase is the only barrier at rest."""
MIN_KDF_ITERATIONS: Final = 1_000
MAX_KDF_ITERATIONS: Final = 10_000_000

CA_USAGE: Final = frozenset({KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN})
INSTITUTION_USAGE: Final = frozenset(
    {
        KeyUsage.DIGITAL_SIGNATURE,
        KeyUsage.NON_REPUDIATION,
        KeyUsage.KEY_ENCIPHERMENT,
        KeyUsage.DATA_ENCIPHERMENT,
    }
)
"""Institution keys sign vouchers and also unwrap the SM4 keys of envelopes sent to them."""
PERSONAL_USAGE: Final = frozenset({KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION})


class KeyFileInvalid(CryptoError):
    """A CA key file is malformed, tampered with, or the passphrase is wrong."""

    code = "KEY_FILE_INVALID"


def encrypt_key(
    key: SM2PrivateKey, passphrase: bytes, label: str, iterations: int = DEFAULT_KDF_ITERATIONS
) -> bytes:
    """Encrypt a private key at rest: JSON holding SM4-GCM(PKCS#8 DER) under PBKDF2-SM3.

    Every header field (format, label, KDF salt and rounds, public key) is the GCM associated
    data, so swapping the root and issuing key files or lowering the rounds fails to decrypt.
    """
    if not MIN_KDF_ITERATIONS <= iterations <= MAX_KDF_ITERATIONS:
        raise ValidationError(
            f"KDF iterations must be {MIN_KDF_ITERATIONS}-{MAX_KDF_ITERATIONS}, got {iterations}"
        )
    salt = random_bytes(16)
    header = {
        "format": KEY_FORMAT,
        "label": label,
        "kdf": "pbkdf2-hmac-sm3",
        "iterations": iterations,
        "salt": base64.b64encode(salt).decode(),
        "cipher": "sm4-gcm",
        "public_key": key.public_key().point.hex(),
    }
    aad = json.dumps(header, sort_keys=True).encode()
    wrapping = pbkdf2_sm3(passphrase, salt, iterations)
    data = sm4_gcm_encrypt(wrapping, key.pkcs8_der(), aad)
    body = {**header, "data": base64.b64encode(data).decode()}
    return json.dumps(body, indent=2, sort_keys=True).encode()


def decrypt_key(blob: bytes, passphrase: bytes, label: str) -> SM2PrivateKey:
    """Inverse of :func:`encrypt_key`; raises :class:`KeyFileInvalid` on any mismatch."""
    try:
        body = json.loads(blob)
        header = {k: v for k, v in body.items() if k != "data"}
        iterations = int(header["iterations"])
        salt, data = base64.b64decode(header["salt"]), base64.b64decode(body["data"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyFileInvalid(f"malformed key file: {exc}") from exc
    if header.get("format") != KEY_FORMAT or header.get("label") != label:
        raise KeyFileInvalid(f"not a {KEY_FORMAT} file for the {label} key")
    if not MIN_KDF_ITERATIONS <= iterations <= MAX_KDF_ITERATIONS:
        raise KeyFileInvalid(f"key file asks for {iterations} KDF iterations: refused")
    wrapping = pbkdf2_sm3(passphrase, salt, iterations)
    try:
        der = sm4_gcm_decrypt(wrapping, data, json.dumps(header, sort_keys=True).encode())
    except DecryptionFailed as exc:
        raise KeyFileInvalid(f"cannot open the {label} key: wrong passphrase or tampered") from exc
    return SM2PrivateKey.from_pkcs8_der(der)


@dataclass(frozen=True, slots=True)
class IssuedRecord:
    """One line of the CA's index: what was issued to whom, and whether it is revoked."""

    serial: str  # lowercase hex
    kind: HolderKind
    party_code: str
    name: str
    username: str | None
    not_before: str  # ISO 8601 UTC
    not_after: str
    fingerprint: str
    revoked_at: str | None = None
    reason: RevocationReason | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IssuedRecord:
        reason = data.get("reason")
        return cls(
            **{
                **data,
                "kind": HolderKind(data["kind"]),
                "reason": None if reason is None else RevocationReason(reason),
            }
        )


def _serial_hex(serial: int | str) -> str:
    try:
        value = int(serial, 16) if isinstance(serial, str) else serial
    except ValueError:
        raise ValidationError(f"serial {serial!r} is not a hexadecimal number") from None
    return f"{value:x}"


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_index(directory: Path | str) -> list[IssuedRecord]:
    """The issued-certificate index, readable without the passphrase (it holds no secret)."""
    state = _read_state(Path(directory))
    return [IssuedRecord.from_json(r) for r in state["certificates"]]


def _read_state(directory: Path) -> dict[str, Any]:
    path = directory / "ca.json"
    if not path.is_file():
        raise NotFound(f"{directory} is not a CA directory (no ca.json)")
    state: dict[str, Any] = json.loads(path.read_text("utf-8"))
    if state.get("format") != FORMAT:
        raise ValidationError(f"{path}: unknown format {state.get('format')!r}")
    return state


class CertificateAuthority:
    """An opened CA: both private keys decrypted in memory, the index loaded."""

    def __init__(
        self,
        directory: Path,
        state: dict[str, Any],
        root: Certificate,
        root_key: SM2PrivateKey,
        issuing: Certificate,
        issuing_key: SM2PrivateKey,
    ) -> None:
        self.directory = directory
        self.name: str = state["name"]
        self.root, self.issuing = root, issuing
        self._root_key, self._issuing_key = root_key, issuing_key
        self._crl_numbers: dict[str, int] = dict(state["crl_numbers"])
        self._records = {r.serial: r for r in map(IssuedRecord.from_json, state["certificates"])}

    @classmethod
    def create(
        cls,
        directory: Path | str,
        name: str,
        passphrase: str,
        now: datetime,
        *,
        kdf_iterations: int = DEFAULT_KDF_ITERATIONS,
    ) -> CertificateAuthority:
        """Make a new root and issuing CA in an empty (or new) directory."""
        directory = Path(directory)
        now = require_utc(now, "now")
        check_display_name(name)
        if len(passphrase) < MIN_PASSPHRASE:
            raise ValidationError(f"the CA passphrase needs at least {MIN_PASSPHRASE} characters")
        if directory.exists() and any(directory.iterdir()):
            raise Conflict(f"{directory} is not empty: refusing to create a CA over it")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / "issued").mkdir(mode=0o700)
        root_key, issuing_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
        root = _ca_certificate(f"{name} Root CA", name, root_key, root_key, None, now, ROOT_DAYS)
        issuing = _ca_certificate(
            f"{name} Issuing CA", name, issuing_key, root_key, root, now, ISSUING_DAYS
        )
        secret = passphrase.encode()
        for label, cert, key in (("root", root, root_key), ("issuing", issuing, issuing_key)):
            _write_atomic(directory / f"{label}.pem", cert.pem)
            blob = encrypt_key(key, secret, label, kdf_iterations)
            _write_atomic(directory / f"{label}.key", blob, mode=0o600)
        state = {"format": FORMAT, "name": name, "crl_numbers": {}, "certificates": []}
        ca = cls(directory, state, root, root_key, issuing, issuing_key)
        ca._save()
        return ca

    @classmethod
    def open(cls, directory: Path | str, passphrase: str) -> CertificateAuthority:
        """Load a CA; a wrong passphrase raises :class:`KeyFileInvalid`."""
        directory = Path(directory)
        state = _read_state(directory)
        root = Certificate.from_pem((directory / "root.pem").read_bytes())
        issuing = Certificate.from_pem((directory / "issuing.pem").read_bytes())
        root.verify_signed_by(root)
        issuing.verify_signed_by(root)
        secret = passphrase.encode()
        keys = {}
        for label, cert in (("root", root), ("issuing", issuing)):
            key = decrypt_key((directory / f"{label}.key").read_bytes(), secret, label)
            if key.public_key() != cert.public_key:
                raise CertificateInvalid(f"{label}.key does not belong to {label}.pem")
            keys[label] = key
        return cls(directory, state, root, keys["root"], issuing, keys["issuing"])

    # -- issuing -------------------------------------------------------------------------------

    def issue_institution(
        self,
        party_code: str,
        name: str,
        public_key: SM2PublicKey,
        now: datetime,
        days: int = DEFAULT_CERT_DAYS,
    ) -> Certificate:
        """机构证书 for a party (finance, pboc, a bank): OU = party code, CN = its name."""
        return self._issue(HolderKind.INSTITUTION, party_code, name, None, public_key, now, days)

    def issue_personal(
        self,
        username: str,
        party_code: str,
        name: str,
        public_key: SM2PublicKey,
        now: datetime,
        days: int = DEFAULT_CERT_DAYS,
    ) -> Certificate:
        """个人证书 for a clerk: OU = the clerk's party, CN = the person's name, UID = username."""
        return self._issue(HolderKind.PERSONAL, party_code, name, username, public_key, now, days)

    def _issue(
        self,
        kind: HolderKind,
        party_code: str,
        name: str,
        username: str | None,
        public_key: SM2PublicKey,
        now: datetime,
        days: int,
    ) -> Certificate:
        now = require_utc(now, "now")
        if not 1 <= days <= MAX_CERT_DAYS:
            raise ValidationError(f"validity must be 1-{MAX_CERT_DAYS} days, got {days}")
        not_after = now + timedelta(days=days)
        if not self.issuing.valid_at(now) or not_after > self.issuing.not_after:
            raise ValidationError(
                f"the issuing CA is valid {self.issuing.not_before} to {self.issuing.not_after}; "
                f"it cannot issue a certificate valid until {not_after}"
            )
        serial = _new_serial()
        while f"{serial:x}" in self._records:  # 2^-128 per try, but check anyway
            serial = _new_serial()
        usage = INSTITUTION_USAGE if kind is HolderKind.INSTITUTION else PERSONAL_USAGE
        cert = build_certificate(
            subject=subject_name(name, self.name, party_code, username),
            public_key=public_key,
            serial=serial,
            not_before=now,
            not_after=not_after,
            key_usage=usage,
            signer=self._issuing_key,
            issuer=self.issuing,
        )
        record = IssuedRecord(
            serial=f"{serial:x}",
            kind=kind,
            party_code=party_code,
            name=name,
            username=username,
            not_before=cert.not_before.isoformat(),
            not_after=cert.not_after.isoformat(),
            fingerprint=cert.fingerprint,
        )
        _write_atomic(self.directory / "issued" / f"{record.serial}.pem", cert.pem)
        self._records[record.serial] = record
        self._save()
        return cert

    # -- revocation ----------------------------------------------------------------------------

    def revoke(
        self,
        serial: int | str,
        now: datetime,
        reason: RevocationReason = RevocationReason.UNSPECIFIED,
    ) -> IssuedRecord:
        """Mark a certificate revoked from ``now``. Final: there is no un-revoke."""
        now = require_utc(now, "now")
        key = _serial_hex(serial)
        record = self._records.get(key)
        if record is None:
            raise NotFound(f"no certificate with serial {key} was issued by this CA")
        if record.revoked_at is not None:
            raise Conflict(f"certificate {key} was already revoked at {record.revoked_at}")
        record = replace(record, revoked_at=now.isoformat(), reason=RevocationReason(reason))
        self._records[key] = record
        self._save()
        return record

    def crl(self, now: datetime, days: int = DEFAULT_CRL_DAYS) -> Crl:
        """A fresh CRL of the issuing CA listing every revocation ever made (never pruned)."""
        revocations = [
            Revocation(int(r.serial, 16), datetime.fromisoformat(r.revoked_at), r.reason)
            for r in self._records.values()
            if r.revoked_at is not None and r.reason is not None
        ]
        return self._sign_crl("issuing", self.issuing, self._issuing_key, revocations, now, days)

    def root_crl(self, now: datetime, days: int = 365) -> Crl:
        """The root's CRL (ARL). Empty: the issuing CA is replaced, not revoked, by this tool."""
        return self._sign_crl("root", self.root, self._root_key, [], now, days)

    def _sign_crl(
        self,
        label: str,
        issuer: Certificate,
        key: SM2PrivateKey,
        revocations: list[Revocation],
        now: datetime,
        days: int,
    ) -> Crl:
        now = require_utc(now, "now")
        if not 1 <= days <= 366:
            raise ValidationError(f"a CRL is valid 1-366 days, got {days}")
        number = self._crl_numbers.get(label, 0) + 1
        crl = build_crl(
            issuer=issuer,
            signer=key,
            this_update=now,
            next_update=now + timedelta(days=days),
            crl_number=number,
            revocations=revocations,
        )
        self._crl_numbers[label] = number
        self._save()
        return crl

    # -- reading and exporting -----------------------------------------------------------------

    def records(self) -> list[IssuedRecord]:
        return list(self._records.values())

    def certificate(self, serial: int | str) -> Certificate:
        key = _serial_hex(serial)
        path = self.directory / "issued" / f"{key}.pem"
        if key not in self._records or not path.is_file():
            raise NotFound(f"no certificate with serial {key} was issued by this CA")
        return Certificate.from_pem(path.read_bytes())

    def export_trust(self, directory: Path | str, now: datetime) -> Path:
        """Write what an offline verifier needs: both CA certificates and fresh CRLs."""
        out = Path(directory)
        for sub in (ROOTS_DIR, INTERMEDIATES_DIR, CRLS_DIR):
            (out / sub).mkdir(parents=True, exist_ok=True)
        _write_atomic(out / ROOTS_DIR / "root.pem", self.root.pem)
        _write_atomic(out / INTERMEDIATES_DIR / "issuing.pem", self.issuing.pem)
        for label, crl in (("root", self.root_crl(now)), ("issuing", self.crl(now))):
            _write_atomic(out / CRLS_DIR / f"{label}.crl", crl.der)
            _write_atomic(out / CRLS_DIR / f"{label}.crl.pem", crl.pem)
        return out

    def _save(self) -> None:
        state = {
            "format": FORMAT,
            "name": self.name,
            "crl_numbers": self._crl_numbers,
            "certificates": [asdict(r) for r in self._records.values()],
        }
        text = json.dumps(state, ensure_ascii=False, indent=2, sort_keys=True)
        _write_atomic(self.directory / "ca.json", text.encode())


def _ca_certificate(
    common_name: str,
    organization: str,
    key: SM2PrivateKey,
    signer: SM2PrivateKey,
    issuer: Certificate | None,
    now: datetime,
    days: int,
) -> Certificate:
    """A CA certificate: the root (self-signed, one CA below) or the issuing CA (none below)."""
    return build_certificate(
        subject=subject_name(common_name, organization),
        public_key=key.public_key(),
        serial=_new_serial(),
        not_before=now,
        not_after=now + timedelta(days=days),
        key_usage=CA_USAGE,
        signer=signer,
        issuer=issuer,
        is_ca=True,
        ca_path_len=1 if issuer is None else 0,
    )


def _new_serial() -> int:
    """A random positive 128-bit serial (RFC 5280 allows 20 octets; CA/B asks for 64+ bits)."""
    return secrets.randbits(127) | 1 << 127
