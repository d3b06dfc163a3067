"""The software USB key (软U盾): a :class:`~guoku.security.token_protocol.KeyToken` in one file.

SoftHSM2 has no SM2, so guoku carries its own token until a hardware key's SKF or PKCS#11 driver
is wrapped behind the same protocol. Design (docs/decisions/0006-usb-key-token.md)::

    user PIN --PBKDF2-HMAC-SM3(salt_u, N)--> KEK_u | V_u    SO PIN --(salt_s, N)--> KEK_s | V_s
    MK  (16 random bytes, the token master key)
    file: SM4-GCM(KEK_u, MK)   SM4-GCM(KEK_s, MK)          wrapped twice: either PIN reaches MK
          SM4-GCM(ENC(MK), d)  for each SM2 private scalar d (AAD: serial, key label)
          GMAC(MAC(MK), everything but the retry counters)  so any tampering shows at login
          SM3(V_u), SM3(V_s)   PIN verifiers: a wrong PIN is told apart from a damaged file

A wrong PIN is paid for before it is judged: the retry counter is decremented and written to
disk, then the PIN is checked, then the counter is reset on success. Pulling the plug mid-check
cannot win an attempt back. Five wrong user PINs lock the token until the SO unblocks it; ten
wrong SO PINs kill it: the wrapped master keys and private keys are erased from the file.

Limits of a software token, stated plainly: whoever copies the file can guess PINs offline at
the PBKDF2 cost and can roll the counters back; the counters only stop guessing through this
API. Secrets held in Python objects cannot be reliably wiped from memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hmac
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from guoku.security.crypto import (
    DecryptionFailed,
    SM2PrivateKey,
    SM2PublicKey,
    pbkdf2_sm3,
    random_bytes,
    sm3,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)
from guoku.security.token_protocol import (
    SO_PIN_MAX_RETRIES,
    TOKEN_LABEL_MAX_CHARS,
    USER_PIN_MAX_RETRIES,
    NotLoggedIn,
    ObjectExists,
    ObjectInfo,
    ObjectKind,
    ObjectNotFound,
    PinIncorrect,
    PinPolicyViolation,
    PinRole,
    TokenCorrupt,
    TokenDead,
    TokenExists,
    TokenFull,
    TokenInputRejected,
    TokenLocked,
    TokenNotPresent,
    check_label,
    check_pin_policy,
)

FORMAT_NAME: Final = "guoku-usbkey"
FORMAT_VERSION: Final = 1
KDF_NAME: Final = "pbkdf2-hmac-sm3"
DEFAULT_PIN_ITERATIONS: Final = 300_000
"""PBKDF2 rounds per PIN check: about 0.1 s per login on the reference machine (see the ADR)."""
MIN_PIN_ITERATIONS: Final = 1_000
"""Floor for tests; production tokens use the default."""
MAX_PIN_ITERATIONS: Final = 10_000_000
"""Ceiling, so a doctored file cannot stall a login for minutes."""
SALT_BYTES: Final = 16
MASTER_KEY_BYTES: Final = 16
SERIAL_BYTES: Final = 8
MAX_OBJECTS: Final = 64
"""Keys, certificates and data objects together, about what a real U盾 holds."""
MAX_CERTIFICATE_BYTES: Final = 16 * 1024
MAX_OBJECT_BYTES: Final = 128 * 1024
"""One data object: room for an SES_Seal with its seal picture."""
MAX_PUBLIC_DATA_BYTES: Final = 512 * 1024
"""Certificates and data objects together."""
MAX_TOKEN_FILE_BYTES: Final = 1024 * 1024

_DOMAIN: Final = b"guoku-usbkey/v1"


def _aad(kind: str, serial: str, label: str) -> bytes:
    """Associated data binding a ciphertext to its purpose, token and label (labels have no NUL)."""
    return b"\x00".join((_DOMAIN, kind.encode(), serial.encode(), label.encode("utf-8")))


def _subkey(master_key: bytes, purpose: bytes) -> bytes:
    """Independent SM4 keys from the random master key: SM3(domain || purpose || MK)."""
    return sm3(_DOMAIN + b"\x00" + purpose + b"\x00" + master_key)[:MASTER_KEY_BYTES]


def _derive(pin: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(KEK, verifier) for a PIN: one PBKDF2-HMAC-SM3 block split in two halves."""
    derived = pbkdf2_sm3(pin.encode("utf-8"), salt, iterations, length=32)
    return derived[:16], sm3(_DOMAIN + b"\x00pin-verifier\x00" + derived[16:])


@dataclass(slots=True)
class _PinRecord:
    salt: bytes
    verifier: bytes
    wrapped_master_key: bytes | None  # None once the token is dead
    max_retries: int
    retries_left: int


@dataclass(slots=True)
class _KeyRecord:
    public_key: bytes  # 65-byte uncompressed point
    private_key: bytes | None  # SM4-GCM of the scalar; None once the token is dead


@dataclass(slots=True)
class _State:
    serial: str
    label: str
    iterations: int
    pins: dict[PinRole, _PinRecord]
    keys: dict[str, _KeyRecord] = field(default_factory=dict)
    certificates: dict[str, bytes] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    mac: bytes | None = None

    @property
    def dead(self) -> bool:
        return self.pins[PinRole.SO].retries_left == 0

    def object_count(self) -> int:
        return len(self.keys) + len(self.certificates) + len(self.objects)

    def public_data_bytes(self) -> int:
        return sum(map(len, self.certificates.values())) + sum(map(len, self.objects.values()))


@dataclass(slots=True)
class _Session:
    """What a user login holds in memory: the two working keys and unwrapped private keys."""

    enc_key: bytes
    mac_key: bytes
    private_keys: dict[str, tuple[bytes, SM2PrivateKey]] = field(default_factory=dict)


# --- the file format -------------------------------------------------------------------------


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _document(state: _State, *, for_mac: bool = False) -> dict[str, Any]:
    """The JSON document; ``for_mac`` leaves out the MAC itself and the retry counters."""
    pins: dict[str, Any] = {}
    for role, rec in state.pins.items():
        pin: dict[str, Any] = {
            "salt": _b64(rec.salt),
            "verifier": _b64(rec.verifier),
            "wrapped_master_key": _b64(rec.wrapped_master_key),
            "max_retries": rec.max_retries,
        }
        if not for_mac:
            pin["retries_left"] = rec.retries_left
        pins[role.value] = pin
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "serial": state.serial,
        "label": state.label,
        "kdf": {"name": KDF_NAME, "iterations": state.iterations},
        "pins": pins,
        "keys": {
            label: {
                "algorithm": "sm2",
                "public_key": _b64(k.public_key),
                "private_key": _b64(k.private_key),
            }
            for label, k in state.keys.items()
        },
        "certificates": {label: _b64(der) for label, der in state.certificates.items()},
        "objects": {label: _b64(data) for label, data in state.objects.items()},
    }
    if not for_mac:
        doc["mac"] = _b64(state.mac)
    return doc


def _mac_input(state: _State) -> bytes:
    canonical = json.dumps(_document(state, for_mac=True), sort_keys=True, separators=(",", ":"))
    return _DOMAIN + b"\x00mac\x00" + canonical.encode("ascii")


def _field(doc: dict[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TokenCorrupt(f"token file: field {key!r} is missing or not a {kind.__name__}")
    return value


def _bytes(doc: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = doc.get(key)
    if value is None and optional:
        return None
    try:
        return base64.b64decode(_field(doc, key, str), validate=True)
    except binascii.Error as exc:
        raise TokenCorrupt(f"token file: field {key!r} is not base64") from exc


def _labelled(doc: dict[str, Any], key: str) -> dict[str, Any]:
    section: dict[str, Any] = _field(doc, key, dict)
    if len(section) > MAX_OBJECTS:
        raise TokenCorrupt(f"token file: too many entries in {key!r}")
    return section


def _parse(doc: Any) -> _State:
    """Check and load a token document. Anything unexpected is :class:`TokenCorrupt`."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise TokenCorrupt("not a guoku USB key file")
    if doc.get("version") != FORMAT_VERSION:
        raise TokenCorrupt(f"unsupported USB key file version {doc.get('version')!r}")
    kdf = _field(doc, "kdf", dict)
    iterations = _field(kdf, "iterations", int)
    if kdf.get("name") != KDF_NAME or not MIN_PIN_ITERATIONS <= iterations <= MAX_PIN_ITERATIONS:
        raise TokenCorrupt("token file: unsupported PIN key derivation")
    pins_doc = _field(doc, "pins", dict)
    if set(pins_doc) != {role.value for role in PinRole}:
        raise TokenCorrupt("token file: a user and an SO PIN record are required")
    pins: dict[PinRole, _PinRecord] = {}
    for role in PinRole:
        p = _field(pins_doc, role.value, dict)
        rec = _PinRecord(
            salt=_bytes(p, "salt"),
            verifier=_bytes(p, "verifier"),
            wrapped_master_key=_bytes(p, "wrapped_master_key", optional=True),
            max_retries=_field(p, "max_retries", int),
            retries_left=_field(p, "retries_left", int),
        )
        if not 0 <= rec.retries_left <= rec.max_retries or rec.max_retries < 1:
            raise TokenCorrupt(f"token file: impossible {role.value} PIN retry counter")
        pins[role] = rec
    state = _State(
        serial=_field(doc, "serial", str),
        label=_field(doc, "label", str),
        iterations=iterations,
        pins=pins,
        mac=_bytes(doc, "mac", optional=True),
    )
    for label, k in _labelled(doc, "keys").items():
        if not isinstance(k, dict) or k.get("algorithm") != "sm2":
            raise TokenCorrupt(f"token file: key {label!r} is not an SM2 key record")
        state.keys[label] = _KeyRecord(
            _bytes(k, "public_key"), _bytes(k, "private_key", optional=True)
        )
    certificates, objects = _labelled(doc, "certificates"), _labelled(doc, "objects")
    state.certificates = {label: _bytes(certificates, label) for label in certificates}
    state.objects = {label: _bytes(objects, label) for label in objects}
    if not state.dead and (
        state.mac is None
        or any(rec.wrapped_master_key is None for rec in pins.values())
        or any(k.private_key is None for k in state.keys.values())
    ):
        raise TokenCorrupt("token file: key material is missing")
    return state


def _read_raw(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TokenNotPresent(f"no USB key file at {path}") from None
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise TokenCorrupt(f"{path} is larger than a USB key file can be")
    return raw


def _decode(raw: bytes) -> _State:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TokenCorrupt(f"not a USB key file: {exc}") from exc
    return _parse(doc)


def _read_file(path: Path) -> _State:
    return _decode(_read_raw(path))


def _write_file(path: Path, state: _State) -> None:
    """Atomic replace: temp file in the same directory, fsync, rename, fsync the directory."""
    data = json.dumps(_document(state), indent=1, ensure_ascii=False).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of one token across handles and processes (``<path>.lock``)."""
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        raise TokenNotPresent(f"no directory for a USB key at {path.parent}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _wrap_master_key(master_key: bytes, pin: str, role: PinRole, state: _State) -> _PinRecord:
    salt = random_bytes(SALT_BYTES)
    kek, verifier = _derive(pin, salt, state.iterations)
    wrapped = sm4_gcm_encrypt(kek, master_key, _aad("master-key", state.serial, role.value))
    limit = USER_PIN_MAX_RETRIES if role is PinRole.USER else SO_PIN_MAX_RETRIES
    return _PinRecord(salt, verifier, wrapped, limit, limit)


# --- the token -------------------------------------------------------------------------------


class SoftwareToken:
    """A USB key kept in one JSON file. Implements :class:`KeyToken`; build it with
    :meth:`initialize` (a blank key, as issued) or :meth:`open` (a key already issued).

    Every call reads the file afresh, so two handles (or processes) on one file see one retry
    counter; writes hold ``<path>.lock`` and replace the file atomically.
    """

    def __init__(self, path: Path, state: _State) -> None:
        self._path = path
        self._serial = state.serial
        self._label = state.label
        self._session: _Session | None = None
        # (file bytes, session that checked them, parsed state) for the read-only paths
        self._view_cache: tuple[bytes, _Session | None, _State] | None = None

    @classmethod
    def initialize(
        cls,
        path: str | os.PathLike[str],
        label: str,
        so_pin: str,
        user_pin: str,
        *,
        iterations: int = DEFAULT_PIN_ITERATIONS,
    ) -> SoftwareToken:
        """Create a blank token (no keys yet) at ``path``; refuse to overwrite one."""
        path = Path(path)
        check_label(label, TOKEN_LABEL_MAX_CHARS)
        check_pin_policy(so_pin, PinRole.SO)
        check_pin_policy(user_pin, PinRole.USER)
        if hmac.compare_digest(so_pin.encode(), user_pin.encode()):
            raise PinPolicyViolation("the user PIN and the SO PIN must differ")
        if not MIN_PIN_ITERATIONS <= iterations <= MAX_PIN_ITERATIONS:
            raise TokenInputRejected(
                f"PIN iterations must be {MIN_PIN_ITERATIONS}–{MAX_PIN_ITERATIONS}"
            )
        state = _State(random_bytes(SERIAL_BYTES).hex().upper(), label, iterations, pins={})
        master_key = random_bytes(MASTER_KEY_BYTES)
        for role, pin in ((PinRole.USER, user_pin), (PinRole.SO, so_pin)):
            state.pins[role] = _wrap_master_key(master_key, pin, role, state)
        with _exclusive(path):
            if path.exists():
                raise TokenExists(f"a USB key file exists already at {path}")
            token = cls(path, state)
            token._save(state, _Session(_subkey(master_key, b"enc"), _subkey(master_key, b"mac")))
        return token

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SoftwareToken:
        """Open an existing token (logged out). A damaged file raises :class:`TokenCorrupt`."""
        path = Path(path)
        return cls(path, _read_file(path))

    # -- public information -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def serial(self) -> str:
        return self._serial

    @property
    def label(self) -> str:
        return self._label

    @property
    def iterations(self) -> int:
        return self._view().iterations

    @property
    def is_logged_in(self) -> bool:
        return self._session is not None

    @property
    def retries_left(self) -> int:
        return self._view().pins[PinRole.USER].retries_left

    @property
    def so_retries_left(self) -> int:
        return self._view().pins[PinRole.SO].retries_left

    @property
    def is_locked(self) -> bool:
        state = self._view()
        return state.dead or state.pins[PinRole.USER].retries_left == 0

    @property
    def is_dead(self) -> bool:
        return self._view().dead

    def list_objects(self) -> list[ObjectInfo]:
        state = self._view()
        return (
            [
                ObjectInfo(ObjectKind.SM2_KEY, lbl, len(k.public_key))
                for lbl, k in state.keys.items()
            ]
            + [
                ObjectInfo(ObjectKind.CERTIFICATE, lbl, len(d))
                for lbl, d in state.certificates.items()
            ]
            + [ObjectInfo(ObjectKind.DATA, lbl, len(d)) for lbl, d in state.objects.items()]
        )

    def public_key(self, key_label: str) -> SM2PublicKey:
        return SM2PublicKey(self._key_record(self._view(), key_label).public_key)

    def certificate(self, label: str) -> bytes:
        return self._lookup(self._view().certificates, label, "certificate")

    def read_object(self, label: str) -> bytes:
        return self._lookup(self._view().objects, label, "data object")

    # -- PINs ---------------------------------------------------------------------------------

    def login(self, pin: str) -> None:
        self.logout()
        check_pin_policy(pin, PinRole.USER)
        with _exclusive(self._path):
            master_key = self._check_pin(self._load(), PinRole.USER, pin)
        self._session = _Session(_subkey(master_key, b"enc"), _subkey(master_key, b"mac"))

    def logout(self) -> None:
        self._session = None

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        self._change(PinRole.USER, old_pin, PinRole.USER, new_pin)

    def change_so_pin(self, old_so_pin: str, new_so_pin: str) -> None:
        self._change(PinRole.SO, old_so_pin, PinRole.SO, new_so_pin)

    def unblock(self, so_pin: str, new_pin: str) -> None:
        """Set a new user PIN with the SO PIN (C_InitPIN / SKF_UnblockPIN); resets its counter."""
        if hmac.compare_digest(so_pin.encode(), new_pin.encode()):
            raise PinPolicyViolation("the user PIN and the SO PIN must differ")
        self._change(PinRole.SO, so_pin, PinRole.USER, new_pin)

    def _change(self, role: PinRole, pin: str, target: PinRole, new_pin: str) -> None:
        check_pin_policy(pin, role)
        check_pin_policy(new_pin, target)
        with _exclusive(self._path):
            state = self._load()
            master_key = self._check_pin(state, role, pin)
            state.pins[target] = _wrap_master_key(master_key, new_pin, target, state)
            self._save(state, _Session(_subkey(master_key, b"enc"), _subkey(master_key, b"mac")))

    def _check_pin(self, state: _State, role: PinRole, pin: str) -> bytes:
        """Spend an attempt, judge the PIN, return the master key. Caller holds the lock."""
        rec = state.pins[role]
        if state.dead:
            if state.mac is not None:  # died mid-check last time: finish the erasure
                self._erase(state)
            raise TokenDead("the SO PIN is exhausted; this USB key is dead and must be replaced")
        if rec.retries_left == 0:
            raise TokenLocked("the user PIN is locked; the SO PIN must unblock it")
        rec.retries_left -= 1
        _write_file(self._path, state)  # the attempt is spent before it is judged
        kek, verifier = _derive(pin, rec.salt, state.iterations)
        if not hmac.compare_digest(verifier, rec.verifier):
            if rec.retries_left > 0:
                raise PinIncorrect(role, rec.retries_left)
            if role is PinRole.SO:
                self._erase(state)
                raise TokenDead("wrong SO PIN, none left: the USB key has erased its keys")
            raise TokenLocked("wrong user PIN, none left: the token is now locked")
        rec.retries_left = rec.max_retries
        _write_file(self._path, state)
        assert rec.wrapped_master_key is not None  # _parse guarantees it on a live token
        try:
            master_key = sm4_gcm_decrypt(
                kek, rec.wrapped_master_key, _aad("master-key", state.serial, role.value)
            )
        except DecryptionFailed as exc:
            raise TokenCorrupt("the wrapped master key fails its authentication") from exc
        self._verify_mac(state, _subkey(master_key, b"mac"))
        return master_key

    def _erase(self, state: _State) -> None:
        """Zeroize a dead token on disk: both master key wraps and every private key go."""
        for rec in state.pins.values():
            rec.wrapped_master_key = None
        for key in state.keys.values():
            key.private_key = None
        state.mac = None
        _write_file(self._path, state)

    # -- keys and objects ---------------------------------------------------------------------

    def generate_sm2_key(self, key_label: str) -> SM2PublicKey:
        check_label(key_label)
        session = self._require_login()
        with _exclusive(self._path):
            state = self._load()
            if key_label in state.keys:
                raise ObjectExists(f"a key labelled {key_label!r} exists already")
            self._check_room(state, 0)
            private = SM2PrivateKey.generate()
            blob = sm4_gcm_encrypt(
                session.enc_key, private.scalar(), _aad("sm2-key", state.serial, key_label)
            )
            public = private.public_key()
            state.keys[key_label] = _KeyRecord(public.point, blob)
            self._save(state, session)
        session.private_keys[key_label] = (blob, private)
        return public

    def sign(self, key_label: str, data: bytes) -> bytes:
        return self._private_key(key_label).sign(data)

    def decrypt(self, key_label: str, ciphertext: bytes) -> bytes:
        return self._private_key(key_label).decrypt(ciphertext)

    def store_certificate(self, label: str, der: bytes) -> None:
        if not der or der[0] != 0x30 or len(der) > MAX_CERTIFICATE_BYTES:
            raise TokenInputRejected(
                f"a certificate is a DER SEQUENCE of at most {MAX_CERTIFICATE_BYTES} bytes"
            )
        self._store("certificates", label, bytes(der))

    def store_object(self, label: str, data: bytes) -> None:
        if len(data) > MAX_OBJECT_BYTES:
            raise TokenFull(f"a data object holds at most {MAX_OBJECT_BYTES} bytes")
        self._store("objects", label, bytes(data))

    def _store(self, section: str, label: str, data: bytes) -> None:
        check_label(label)
        session = self._require_login()
        with _exclusive(self._path):
            state = self._load()
            table: dict[str, bytes] = getattr(state, section)
            self._check_room(state, len(data) - len(table.get(label, b"")), new=label not in table)
            table[label] = data
            self._save(state, session)

    @staticmethod
    def _check_room(state: _State, extra_bytes: int, *, new: bool = True) -> None:
        if new and state.object_count() >= MAX_OBJECTS:
            raise TokenFull(f"the token holds at most {MAX_OBJECTS} objects")
        if state.public_data_bytes() + extra_bytes > MAX_PUBLIC_DATA_BYTES:
            raise TokenFull(f"the token holds at most {MAX_PUBLIC_DATA_BYTES} bytes of objects")

    def _private_key(self, key_label: str) -> SM2PrivateKey:
        session = self._require_login()
        rec = self._key_record(self._view(), key_label)
        assert rec.private_key is not None  # a logged-in token is live
        cached = session.private_keys.get(key_label)
        if cached is not None and hmac.compare_digest(cached[0], rec.private_key):
            return cached[1]
        try:
            scalar = sm4_gcm_decrypt(
                session.enc_key, rec.private_key, _aad("sm2-key", self._serial, key_label)
            )
        except DecryptionFailed as exc:
            raise TokenCorrupt(f"the private key {key_label!r} fails its authentication") from exc
        private = SM2PrivateKey.from_scalar(scalar)
        if private.public_key().point != rec.public_key:
            raise TokenCorrupt(f"the key pair {key_label!r} does not match")
        session.private_keys[key_label] = (rec.private_key, private)
        return private

    # -- plumbing -----------------------------------------------------------------------------

    def _require_login(self) -> _Session:
        if self._session is None:
            raise NotLoggedIn("log in to the USB key with the user PIN first")
        return self._session

    def _view(self) -> _State:
        """:meth:`_load` for reading only: reuses the parsed state while the file's bytes and the
        session are unchanged (parsing and the MAC check would otherwise cost as much as a sign).
        Callers must not modify the returned state."""
        raw = _read_raw(self._path)
        cached = self._view_cache
        if cached is not None and cached[1] is self._session and cached[0] == raw:
            return cached[2]
        state = self._load(raw)
        self._view_cache = (raw, self._session, state)
        return state

    def _load(self, raw: bytes | None = None) -> _State:
        """The token as on disk now, freshly parsed; when logged in, its MAC is checked too."""
        state = _decode(_read_raw(self._path) if raw is None else raw)
        if state.serial != self._serial:
            self.logout()
            raise TokenNotPresent(f"the USB key at {self._path} is not token {self._serial}")
        if self._session is not None:
            self._verify_mac(state, self._session.mac_key)
        return state

    def _verify_mac(self, state: _State, mac_key: bytes) -> None:
        try:
            sm4_gcm_decrypt(mac_key, state.mac or b"", _mac_input(state))
        except DecryptionFailed as exc:
            self.logout()
            raise TokenCorrupt("the USB key file has been altered (MAC mismatch)") from exc

    def _save(self, state: _State, session: _Session) -> None:
        state.mac = sm4_gcm_encrypt(session.mac_key, b"", _mac_input(state))
        _write_file(self._path, state)

    @staticmethod
    def _key_record(state: _State, key_label: str) -> _KeyRecord:
        try:
            return state.keys[key_label]
        except KeyError:
            raise ObjectNotFound(f"no key labelled {key_label!r} on the USB key") from None

    @staticmethod
    def _lookup(table: dict[str, bytes], label: str, what: str) -> bytes:
        try:
            return table[label]
        except KeyError:
            raise ObjectNotFound(f"no {what} labelled {label!r} on the USB key") from None
