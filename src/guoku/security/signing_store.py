"""The signing server's directory: sealed state file, encrypted keys, and the audit log.

Layout of a signing-server directory (``guoku signing-init`` makes one)::

    signing.json        state: parties, seals, clients (SM3 of tokens), authorizations — GMAC'd
    keys/<party>.key    institution private keys, ``ca.encrypt_key`` (SM4-GCM, PBKDF2-SM3)
    certs/<party>.pem   institution certificates
    seals/<sm3>.der     official seals (GB/T 38540 ``SES_Seal``), named by SM3 of the esID
    audit.jsonl         the audit chain: one entry + prev_hash + hash per line
    audit.head          the chain head (seq, hash), rewritten in place after each append
    .lock               ``flock``'d by the one process that has the directory open

The passphrase reaches everything: PBKDF2-HMAC-SM3 over it gives a verifier (a wrong passphrase
is told apart from a damaged file) and the key of a GMAC-SM4 over the state file, so a client,
token hash or authorization slipped into ``signing.json`` by someone without the passphrase is
refused at open. The audit log is protected by its hash chain (:mod:`guoku.domain.audit`).

The records kept in the state file (parties, seals, clients, authorizations) are defined here
too; :meth:`Authorization.refusal` is the one place that says whether a post may use a seal.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hmac
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self, TextIO

from guoku.domain.audit import (
    EMPTY_HEAD,
    AuditEntry,
    ChainBreak,
    StoredEntry,
    entry_hash,
    verify_chain,
)
from guoku.domain.controls import Post
from guoku.domain.errors import Conflict, GuokuError, NotFound, PermissionDenied, ValidationError
from guoku.domain.seals import SealKind
from guoku.security.ca import MAX_KDF_ITERATIONS, MIN_KDF_ITERATIONS
from guoku.security.crypto import (
    DecryptionFailed,
    pbkdf2_sm3,
    random_bytes,
    sm3,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)

STATE_FORMAT: Final = "guoku-signing-server/1"
STATE_FILE: Final = "signing.json"
AUDIT_FILE: Final = "audit.jsonl"
HEAD_FILE: Final = "audit.head"
LOCK_FILE: Final = ".lock"
KEYS_DIR: Final = "keys"
CERTS_DIR: Final = "certs"
SEALS_DIR: Final = "seals"
MAX_STATE_BYTES: Final = 16 * 1024 * 1024
MAX_AUDIT_LINE_BYTES: Final = 64 * 1024
_HEAD_RECORD_BYTES: Final = 128
_HEAD = re.compile(r"^(\d{1,18}) ([0-9a-f]{64}) ([0-9a-f]{16})\s*$")


class PassphraseIncorrect(PermissionDenied):
    """The passphrase does not open this signing-server directory."""

    code = "PASSPHRASE_INCORRECT"


class StoreCorrupt(GuokuError):
    """A file of the signing-server directory is malformed or was changed behind its back."""

    code = "SIGNING_STORE_CORRUPT"


class DirectoryInUse(Conflict):
    """Another process (a running signing server, an admin command) has the directory open."""

    code = "SIGNING_DIRECTORY_IN_USE"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a temporary file, fsync it, rename it over ``path``, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DirectoryLock:
    """An exclusive, non-blocking ``flock`` on ``<dir>/.lock``, released by :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self._fd: int | None = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise DirectoryInUse(
                f"{directory} is open in another process (a running signing server?): "
                "stop it before administering the directory"
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# --- records ---------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def utc(moment: datetime, what: str) -> datetime:
    """Aware time to UTC, whole seconds (what the seal's GeneralizedTime will carry)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValidationError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC).replace(microsecond=0)


class _Record:
    """JSON round trip for the frozen dataclasses below (tuples become lists and back)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class PartyRecord(_Record):
    """A party whose institution key (机构证书的私钥) the server holds, or will once certified."""

    code: str
    public_key: str
    """Hex of the SM2 point; with no certificate yet the key is *pending* (keygen done)."""
    fingerprint: str | None
    """SM3 of the certificate DER, None while pending."""
    added_at: str
    added_by: str

    @property
    def pending(self) -> bool:
        return self.fingerprint is None


@dataclass(frozen=True, slots=True)
class SealRecord(_Record):
    """An official seal (公章) held by the server.

    ``owner`` is the party whose seal it is (a budget unit hosted by finance, a bank, the
    treasury); ``signer`` is the party whose institution key stamps with it — the seal's holder
    certificate. They differ for units, which use finance's institution certificate (DOMAIN §3).
    """

    es_id: str
    name: str
    kind: str
    owner: str
    signer: str
    file: str
    sm3: str
    valid_start: str
    valid_end: str
    added_at: str
    added_by: str

    @property
    def seal_kind(self) -> SealKind:
        return SealKind(self.kind)


@dataclass(frozen=True, slots=True)
class ClientRecord(_Record):
    """A registered client program: a node's library, the counter. Only the SM3 of its token."""

    name: str
    token_sm3: str
    parties: tuple[str, ...]
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        # explicit super(): slots=True rebuilds the class, which breaks the zero-argument form
        return super(ClientRecord, cls).from_json({**data, "parties": tuple(data["parties"])})

    def acts_for(self, party_code: str) -> bool:
        return party_code in self.parties


@dataclass(frozen=True, slots=True)
class Authorization(_Record):
    """印章授权 — posts holding ``post`` may stamp with seal ``es_id`` in [valid_from, valid_to)."""

    id: str
    es_id: str
    post: str
    valid_from: str
    valid_to: str
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None

    def refusal(self, at: datetime) -> str | None:
        """None when this authorization lets its post use its seal at ``at``; else why not.

        A revoked authorization refuses at every time, also before the revocation: a signing
        time is the caller's word and must not reach back past a revocation.
        """
        if self.revoked_at is not None:
            return f"authorization {self.id} was revoked at {self.revoked_at}"
        start, end = datetime.fromisoformat(self.valid_from), datetime.fromisoformat(self.valid_to)
        if not start <= at < end:
            return f"authorization {self.id} is valid {self.valid_from} to {self.valid_to}"
        return None

    def covers(self, es_id: str, post: Post) -> bool:
        return self.es_id == es_id and self.post == post.value


# --- the sealed state file ---------------------------------------------------------------


def _canonical(state: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in state.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class StateFile:
    """``signing.json``: verifier and GMAC keys derived from the passphrase; atomic rewrites."""

    def __init__(self, path: Path, mac_key: bytes, kdf: dict[str, Any]) -> None:
        self.path, self._mac_key, self.kdf = path, mac_key, kdf

    @classmethod
    def new(cls, path: Path, passphrase: str, iterations: int) -> StateFile:
        salt = random_bytes(16)
        verifier, mac_key = _derive(passphrase, salt, iterations)
        kdf = {
            "name": "pbkdf2-hmac-sm3",
            "iterations": iterations,
            "salt": base64.b64encode(salt).decode(),
            "verifier": sm3(verifier).hex(),
        }
        return cls(path, mac_key, kdf)

    @classmethod
    def open(cls, path: Path, passphrase: str) -> tuple[StateFile, dict[str, Any]]:
        """Check the passphrase, then the MAC; return the file handle and the state."""
        if not path.is_file():
            raise NotFound(f"{path.parent} is not a signing-server directory (no {path.name})")
        raw = path.read_bytes()
        if len(raw) > MAX_STATE_BYTES:
            raise StoreCorrupt(f"{path} is larger than {MAX_STATE_BYTES} bytes")
        try:
            state: dict[str, Any] = json.loads(raw)
            kdf = dict(state["kdf"])
            salt = base64.b64decode(kdf["salt"], validate=True)
            iterations = int(kdf["iterations"])
            mac = base64.b64decode(state["mac"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise StoreCorrupt(f"{path} is malformed: {exc}") from exc
        if state.get("format") != STATE_FORMAT:
            raise StoreCorrupt(f"{path}: unknown format {state.get('format')!r}")
        if not MIN_KDF_ITERATIONS <= iterations <= MAX_KDF_ITERATIONS:
            raise StoreCorrupt(f"{path} asks for {iterations} KDF iterations: refused")
        verifier, mac_key = _derive(passphrase, salt, iterations)
        if not hmac.compare_digest(sm3(verifier).hex(), str(kdf.get("verifier", ""))):
            raise PassphraseIncorrect(f"the passphrase does not open {path.parent}")
        try:
            sm4_gcm_decrypt(mac_key, mac, _canonical(state))
        except DecryptionFailed as exc:
            raise StoreCorrupt(
                f"{path} was changed without the passphrase (its MAC does not verify)"
            ) from exc
        return cls(path, mac_key, kdf), state

    def save(self, state: dict[str, Any]) -> None:
        body = {**state, "format": STATE_FORMAT, "kdf": self.kdf}
        mac = sm4_gcm_encrypt(self._mac_key, b"", _canonical(body))  # GMAC: empty plaintext
        body["mac"] = base64.b64encode(mac).decode()
        text = json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True)
        write_atomic(self.path, text.encode())


def _derive(passphrase: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    material = pbkdf2_sm3(passphrase.encode(), salt, iterations, length=32)
    return material[:16], material[16:]


# --- the audit log -----------------------------------------------------------------------

_ENTRY_FIELDS: Final = tuple(f.name for f in fields(AuditEntry))


def _parse_line(line: str, number: int) -> StoredEntry:
    try:
        row = json.loads(line)
        entry = AuditEntry(**{name: row[name] for name in _ENTRY_FIELDS})
        return StoredEntry(entry, str(row["prev_hash"]), str(row["hash"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreCorrupt(f"audit line {number} is malformed: {exc}", line=number) from exc


def _head_record(seq: int, digest: str) -> bytes:
    text = f"{seq} {digest} {sm3(f'{seq} {digest}'.encode()).hex()[:16]}\n"
    return text.encode().ljust(_HEAD_RECORD_BYTES, b" ")


def _read_head(path: Path) -> tuple[int, str] | None:
    """The stored head, or None when the file is missing or torn (checksum fails)."""
    if not path.is_file():
        return None
    match = _HEAD.match(path.read_bytes()[:_HEAD_RECORD_BYTES].decode("ascii", "replace"))
    if match is None:
        return None
    seq, digest, check = int(match[1]), match[2], match[3]
    if sm3(f"{seq} {digest}".encode()).hex()[:16] != check:
        return None
    return seq, digest


class AuditLog:
    """Append-only JSONL hash chain, one writer (this process, under a lock). With ``sync``,
    an entry is on disk before :meth:`append` returns (group commit: see :meth:`_sync_to`).

    The log lines are written and fsynced first, the head second: after a crash the head may
    lag the log, never lead it. Opening rolls a lagging head forward when the log continues the
    chain from it, and refuses a log shorter than its head. Without ``sync`` (demos, tests) a
    power cut may lose the last entries and leave a head that no longer opens.
    """

    def __init__(self, directory: Path, *, sync: bool = True) -> None:
        self.path, self._head_path = directory / AUDIT_FILE, directory / HEAD_FILE
        self._sync = sync
        self._lock, self._sync_lock = threading.Lock(), threading.Lock()
        self.head = self._recover()
        self._synced = self.head[0]
        self._log: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        head_fd = os.open(self._head_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._head_fd: int | None = head_fd
        self._write_head(self.head)

    def _recover(self) -> tuple[int, str]:
        stored = _read_head(self._head_path)
        last = self._last_entry()
        if last is None:
            if stored not in (None, EMPTY_HEAD):
                raise StoreCorrupt(f"{self.path} is missing or empty but its head says {stored}")
            return EMPTY_HEAD
        if entry_hash(last.entry, last.prev_hash, sm3) != last.hash:
            raise StoreCorrupt(f"the last entry of {self.path} does not match its hash: edited")
        tip = (last.entry.seq, last.hash)
        if stored == tip:
            return tip
        if stored is not None and stored[0] > tip[0]:
            raise StoreCorrupt(
                f"{self.path} ends at seq {tip[0]} but its head says {stored[0]}: "
                "entries were removed; run `guoku signing-audit` and investigate"
            )
        broken = verify_chain(self._rows(), tip, sm3)
        if broken is not None:
            raise StoreCorrupt(f"{self.path} does not verify: {broken.reason} at {broken.position}")
        if stored is not None and not any(
            r.entry.seq == stored[0] and r.hash == stored[1] for r in self._rows()
        ):
            raise StoreCorrupt(f"{self.path} does not contain its head {stored}: rewritten")
        return tip

    def _last_entry(self) -> StoredEntry | None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 2 * MAX_AUDIT_LINE_BYTES))
            lines = fh.read().splitlines()
        if not lines or not lines[-1].strip():
            raise StoreCorrupt(f"{self.path} ends with an empty or torn line")
        return _parse_line(lines[-1].decode("utf-8"), -1)

    def _rows(self) -> Iterator[StoredEntry]:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                yield _parse_line(line, number)

    def _write_head(self, head: tuple[int, str]) -> None:
        assert self._head_fd is not None, "audit log is closed"
        os.pwrite(self._head_fd, _head_record(*head), 0)

    def append(
        self,
        *,
        at: str,
        actor: str,
        action: str,
        outcome: str,
        party: str = "",
        post: str | None = None,
        ref: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Chain one entry after the head and write it; returns the entry."""
        with self._lock:
            seq, prev = self.head
            entry = AuditEntry(
                seq=seq + 1,
                admdiv=party,
                at=at,
                actor=actor,
                post=post,
                action=action,
                voucher_ref=ref,
                state_before=None,
                state_after=None,
                outcome=outcome,
                detail=json.dumps(dict(detail or {}), sort_keys=True, ensure_ascii=False),
            )
            digest = entry_hash(entry, prev, sm3)
            row = {**asdict(entry), "prev_hash": prev, "hash": digest}
            line = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            if len(line.encode()) >= MAX_AUDIT_LINE_BYTES:
                raise ValidationError("audit entry too large: refusing the operation")
            self._log.write(line + "\n")
            self._log.flush()
            self.head = (entry.seq, digest)
            if not self._sync:
                self._write_head(self.head)
        if self._sync:
            self._sync_to(entry.seq)
        return entry

    def _sync_to(self, seq: int) -> None:
        """Group commit: one fsync makes durable every line written before it, so concurrent
        appenders mostly find their line already synced. The head follows the durable log."""
        with self._sync_lock:
            if self._synced >= seq:
                return
            with self._lock:
                target = self.head  # every line up to here is flushed to the OS
            os.fsync(self._log.fileno())
            self._synced = target[0]
            self._write_head(target)

    def verify(self) -> ChainBreak | None:
        """Walk the whole file against the stored head (see :func:`verify_chain`)."""
        with self._lock:
            head = _read_head(self._head_path) or self.head
            try:
                return verify_chain(self._rows(), head, sm3)
            except StoreCorrupt as exc:
                return ChainBreak(int(exc.details.get("line", 0)), None, exc.message)

    def entries(self) -> Iterator[AuditEntry]:
        for row in self._rows():
            yield row.entry

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._head_fd is None:
                return
            self._log.flush()
            os.fsync(self._log.fileno())
            self._write_head(self.head)
            os.fsync(self._head_fd)
            os.close(self._head_fd)
            self._head_fd = None
            self._log.close()
