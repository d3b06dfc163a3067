"""签名服务器 — the signing server: institution keys and official seals, used by authorized clients.

A party's institution key (机构证书的私钥) and its official seals (公章: 财务专用章, 法人章,
业务专用章, 转讫章) never leave this service. Client programs (a node's voucher library, the
counter) hold a bearer token and ask it to stamp, sign or unwrap; an administrator decides which
posts may use which seal and for how long (DOMAIN §3, §4).

Every use is audited — who (client and the username it vouches for), under which post, with
which seal or key, over what (SM3 of the data), and the outcome; refusals too. The same
:class:`SigningService` runs in-process (:class:`LocalSigningClient`, the embedded demo) and
behind HTTP (:mod:`guoku.security.signing_http`): one code path.

Error tree (beside the seal and crypto errors that stamping itself can raise)::

    PermissionDenied
    ├── ClientUnknown          CLIENT_UNKNOWN        bad or revoked token            HTTP 401
    ├── NotAuthorized          NOT_AUTHORIZED        post/seal/period/party refused  HTTP 403
    └── PassphraseIncorrect    PASSPHRASE_INCORRECT  (signing_store)
    NotFound
    ├── SealNotFound           SEAL_NOT_FOUND        no such seal for the party      HTTP 404
    └── PartyUnknown           PARTY_UNKNOWN         no institution key for a party  HTTP 404

Design and figures: docs/decisions/0007-signing-server.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from guoku.domain.audit import AuditEntry, ChainBreak
from guoku.domain.controls import Post
from guoku.domain.errors import Conflict, GuokuError, NotFound, PermissionDenied, ValidationError
from guoku.domain.seals import SealKind
from guoku.security import ca
from guoku.security.crypto import SM2PrivateKey, SM2PublicKey, sm3
from guoku.security.seals import Seal, import_seal, sign_with_seal
from guoku.security.signing_store import (
    CERTS_DIR,
    KEYS_DIR,
    SEALS_DIR,
    STATE_FILE,
    AuditLog,
    Authorization,
    ClientRecord,
    DirectoryLock,
    PartyRecord,
    SealRecord,
    StateFile,
    StoreCorrupt,
    iso,
    utc,
    write_atomic,
)
from guoku.security.x509 import (
    Certificate,
    CertificateExpired,
    KeyUsage,
    KeyUsageInvalid,
    check_party_code,
    check_username,
)

DEFAULT_KDF_ITERATIONS: Final = ca.DEFAULT_KDF_ITERATIONS
MAX_DATA_BYTES: Final = 10 * 1024 * 1024
"""Largest document one stamp or signature covers: a voucher is a few kilobytes, but an
envelope's signed bytes reach transport.envelope.MAX_ENVELOPE_BYTES (9.5 MB)."""
MAX_BATCH: Final = 5_000
MAX_SIGNING_THREADS: Final = 4
"""Threads one batch stamps on (bounded again by the CPU count)."""
_PARALLEL_MIN: Final = 16
MAX_ENCRYPT_BYTES: Final = 255
"""GmSSL's SM2 plaintext limit: SM2 encryption wraps SM4 envelope keys, not documents."""
MAX_CIPHERTEXT_BYTES: Final = 1024
MAX_CLIENT_PARTIES: Final = 1024
MAX_TOKEN_CHARS: Final = 256
TOKEN_BYTES: Final = 32
_AUDIT_LIST_LIMIT: Final = 50

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ClientUnknown(PermissionDenied):
    """The bearer token is not one the server issued, or its client was revoked."""

    code = "CLIENT_UNKNOWN"


class NotAuthorized(PermissionDenied):
    """The client may not act for the party, or the post may not use the seal at that time."""

    code = "NOT_AUTHORIZED"


class SealNotFound(NotFound):
    code = "SEAL_NOT_FOUND"


class PartyUnknown(NotFound):
    """The server holds no (certified) institution key for the party."""

    code = "PARTY_UNKNOWN"


@dataclass(frozen=True, slots=True)
class SealRequest:
    """One stamp of a batch: the same fields as :meth:`SigningService.seal_sign`."""

    username: str
    post: Post
    party_code: str
    kind: SealKind
    data: bytes
    now: datetime
    property_info: str = ""


class SigningClient(Protocol):
    """What callers (the library's sealer, the middleware) need of a signing server."""

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
    ) -> bytes: ...

    def batch_seal_sign(self, requests: Sequence[SealRequest]) -> list[bytes]: ...

    def sign(self, party_code: str, data: bytes) -> bytes: ...

    def verify(self, cert_der: bytes, signature: bytes, data: bytes) -> bool: ...

    def encrypt(self, cert_der: bytes, data: bytes) -> bytes: ...

    def decrypt(self, party_code: str, ciphertext: bytes) -> bytes: ...

    def institution_certificate(self, party_code: str) -> Certificate: ...


@dataclass(frozen=True, slots=True)
class _Plan:
    """A checked stamp: which seal, with whose key, at what time."""

    seal: Seal
    signer: str
    key: SM2PrivateKey
    cert_der: bytes
    at: datetime


def _checked_request(request: SealRequest) -> SealRequest:
    """Types and limits of one stamp request (cheap; run for every item of a batch)."""
    try:
        post, kind = Post(request.post), SealKind(request.kind)
    except ValueError as exc:
        raise ValidationError(f"unknown post or seal kind: {exc}") from None
    if kind.is_personal:
        raise ValidationError("personal seals (私章) live on USB keys, not on the signing server")
    _check_bytes(request.data, MAX_DATA_BYTES, "data")
    return SealRequest(
        username=check_username(request.username),
        post=post,
        party_code=check_party_code(request.party_code),
        kind=kind,
        data=request.data,
        now=utc(request.now, "now"),
        property_info=request.property_info,
    )


def _check_bytes(value: object, limit: int, what: str) -> None:
    if not isinstance(value, bytes):
        raise ValidationError(f"{what} must be bytes")
    if len(value) > limit:
        raise ValidationError(f"{what} is larger than {limit} bytes")


def _institution_cert(party_code: str, cert: Certificate) -> Certificate:
    holder = cert.holder
    if holder is None or holder.username is not None or holder.party_code != party_code:
        raise ValidationError(f"{cert.subject} is not an institution certificate of {party_code}")
    if cert.key_usage and KeyUsage.DIGITAL_SIGNATURE not in cert.key_usage:
        raise KeyUsageInvalid(f"{cert.subject} may not sign (no digitalSignature key usage)")
    return cert


class SigningService:
    """The signing server's service. Open it with :meth:`create` or :meth:`open`; then
    administer it (``admin=`` names the administrator in the audit log) or serve clients."""

    def __init__(
        self,
        directory: Path,
        lock: DirectoryLock,
        state_file: StateFile,
        state: dict[str, Any],
        passphrase: str,
        clock: Clock,
        sync_audit: bool,
    ) -> None:
        self.directory = directory
        self._lock_file, self._state_file = lock, state_file
        self._secret, self._clock = passphrase.encode(), clock
        self._iterations = int(state_file.kdf["iterations"])
        self._mutex = threading.RLock()
        self._parties = {c: PartyRecord.from_json(r) for c, r in state["parties"].items()}
        self._seal_records = {e: SealRecord.from_json(r) for e, r in state["seals"].items()}
        self._clients = {n: ClientRecord.from_json(r) for n, r in state["clients"].items()}
        self._auths = {i: Authorization.from_json(r) for i, r in state["authorizations"].items()}
        self._next_auth = int(state["next_authorization"])
        self._keys: dict[str, SM2PrivateKey] = {}
        self._certs: dict[str, Certificate] = {}
        self._seals: dict[str, Seal] = {}
        for record in self._parties.values():
            self._load_party(record)
        for seal_record in self._seal_records.values():
            der = (directory / SEALS_DIR / seal_record.file).read_bytes()
            if sm3(der).hex() != seal_record.sm3:
                raise StoreCorrupt(f"seal file of {seal_record.es_id} was replaced")
            self._seals[seal_record.es_id] = import_seal(der)
        self._index_tokens()
        self._audit = AuditLog(directory, sync=sync_audit)

    # -- opening and closing ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str,
        passphrase: str,
        *,
        admin: str,
        kdf_iterations: int = DEFAULT_KDF_ITERATIONS,
        clock: Clock = system_clock,
        sync_audit: bool = True,
    ) -> SigningService:
        """Make an empty signing-server directory (refused over a non-empty one)."""
        directory = Path(directory)
        check_username(admin)
        if len(passphrase) < ca.MIN_PASSPHRASE:
            raise ValidationError(f"the passphrase needs at least {ca.MIN_PASSPHRASE} characters")
        if not ca.MIN_KDF_ITERATIONS <= kdf_iterations <= ca.MAX_KDF_ITERATIONS:
            raise ValidationError(
                f"KDF iterations must be {ca.MIN_KDF_ITERATIONS}-{ca.MAX_KDF_ITERATIONS}"
            )
        if directory.exists() and any(directory.iterdir()):
            raise Conflict(f"{directory} is not empty: refusing to create a signing server in it")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in (KEYS_DIR, CERTS_DIR, SEALS_DIR):
            (directory / sub).mkdir(mode=0o700)
        lock = DirectoryLock(directory)
        try:
            state_file = StateFile.new(directory / STATE_FILE, passphrase, kdf_iterations)
            state: dict[str, Any] = {
                "parties": {},
                "seals": {},
                "clients": {},
                "authorizations": {},
                "next_authorization": 1,
            }
            state_file.save(state)
            service = cls(directory, lock, state_file, state, passphrase, clock, sync_audit)
        except BaseException:
            lock.release()
            raise
        service._append("admin.create", admin, "ok", kdf_iterations=kdf_iterations)
        return service

    @classmethod
    def open(
        cls,
        directory: Path | str,
        passphrase: str,
        *,
        clock: Clock = system_clock,
        sync_audit: bool = True,
    ) -> SigningService:
        """Open a directory: check the passphrase and the state MAC, decrypt every key."""
        directory = Path(directory)
        if not (directory / STATE_FILE).is_file():
            raise NotFound(f"{directory} is not a signing-server directory (no {STATE_FILE})")
        lock = DirectoryLock(directory)
        try:
            state_file, state = StateFile.open(directory / STATE_FILE, passphrase)
            return cls(directory, lock, state_file, state, passphrase, clock, sync_audit)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        """Close the audit log and release the directory to other processes."""
        self._audit.close()
        self._lock_file.release()

    def __enter__(self) -> SigningService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- administration -----------------------------------------------------------------------

    def add_institution_key(
        self, party_code: str, key: SM2PrivateKey, cert: Certificate, *, admin: str
    ) -> None:
        """Hold ``party_code``'s institution key and certificate (key encrypted at rest)."""
        with self._audited("admin.add_institution_key", admin, party=party_code) as facts:
            check_party_code(party_code)
            if party_code in self._parties:
                raise Conflict(f"the server already holds a key for {party_code}")
            if key.public_key() != cert.public_key:
                raise ValidationError("the key does not belong to the certificate")
            _institution_cert(party_code, cert)
            facts.update(serial=f"{cert.serial:x}", fingerprint=cert.fingerprint)
            with self._mutex:
                self._write_key(party_code, key)
                self._install(party_code, key.public_key(), cert, admin)

    def generate_institution_key(self, party_code: str, *, admin: str) -> SM2PublicKey:
        """Make the party's key pair here (it never leaves); certify the public key with the CA,
        then :meth:`install_certificate`. Until then the key is pending and signs nothing."""
        with self._audited("admin.generate_institution_key", admin, party=party_code):
            check_party_code(party_code)
            if party_code in self._parties:
                raise Conflict(f"the server already holds a key for {party_code}")
            key = SM2PrivateKey.generate()
            with self._mutex:
                self._write_key(party_code, key)
                self._parties[party_code] = PartyRecord(
                    party_code, key.public_key().point.hex(), None, self._now(), admin
                )
                self._save()
            return key.public_key()

    def install_certificate(self, party_code: str, cert: Certificate, *, admin: str) -> None:
        """Attach the CA's certificate to a key made by :meth:`generate_institution_key`."""
        with self._audited("admin.install_certificate", admin, party=party_code) as facts:
            record = self._parties.get(party_code)
            if record is None or not record.pending:
                raise Conflict(f"no pending key for {party_code}: generate one first")
            if cert.public_key.point.hex() != record.public_key:
                raise ValidationError(f"the certificate is not for {party_code}'s pending key")
            _institution_cert(party_code, cert)
            facts.update(serial=f"{cert.serial:x}", fingerprint=cert.fingerprint)
            with self._mutex:
                self._install(party_code, cert.public_key, cert, admin)

    def add_seal(self, seal_der: bytes, *, admin: str, owner: str | None = None) -> str:
        """Hold an official seal; returns its esID.

        The seal is imported (its maker's signature verified) and one of its holder certificates
        must be the institution certificate of a party held here: that party's key stamps with
        it. ``owner`` is whose seal it is when that is another party — a budget unit's seals are
        held by finance's certificate (DOMAIN §3); by default, the holder party.
        """
        with self._audited("admin.add_seal", admin, party=owner or "") as facts:
            seal = import_seal(seal_der)
            facts.update(es_id=seal.es_id, seal_name=seal.name, kind=str(seal.kind))
            if seal.es_id in self._seal_records:
                raise Conflict(f"seal {seal.es_id} is held already")
            if seal.kind is None or seal.kind.is_personal:
                raise ValidationError(
                    f"seal {seal.es_id} is not an official seal of a known kind (公章 only)"
                )
            if seal.valid_end <= self._clock():
                raise ValidationError(f"seal {seal.es_id} expired at {seal.valid_end}")
            holders = sorted(c for c, cert in self._certs.items() if seal.has_holder(cert))
            if owner is not None and owner in holders:
                signer = owner
            elif len(holders) == 1:
                signer = holders[0]
            else:
                raise ValidationError(
                    f"seal {seal.es_id}: the institution certificates held here that hold it are "
                    f"{holders or 'none'}; exactly one (or the owner's) is needed"
                )
            owner = check_party_code(owner or signer)
            facts.update(owner=owner, signer=signer)
            record = SealRecord(
                es_id=seal.es_id,
                name=seal.name,
                kind=str(seal.kind),
                owner=owner,
                signer=signer,
                file=f"{sm3(seal.es_id.encode()).hex()}.der",
                sm3=sm3(seal.der).hex(),
                valid_start=iso(seal.valid_start),
                valid_end=iso(seal.valid_end),
                added_at=self._now(),
                added_by=admin,
            )
            with self._mutex:
                write_atomic(self.directory / SEALS_DIR / record.file, seal.der, 0o644)
                self._seal_records[seal.es_id], self._seals[seal.es_id] = record, seal
                self._save()
            return seal.es_id

    def register_client(self, name: str, parties: Sequence[str], *, admin: str) -> str:
        """Register a client program acting for ``parties``; returns its token, shown once."""
        with self._audited("admin.register_client", admin, client=name) as facts:
            check_username(name)
            codes = tuple(dict.fromkeys(check_party_code(p) for p in parties))
            if not 0 < len(codes) <= MAX_CLIENT_PARTIES:
                raise ValidationError(f"a client acts for 1-{MAX_CLIENT_PARTIES} parties")
            if name in self._clients:
                raise Conflict(f"client {name} exists (a revoked name is not reused)")
            facts["parties"] = list(codes)
            token = secrets.token_urlsafe(TOKEN_BYTES)
            with self._mutex:
                self._clients[name] = ClientRecord(
                    name, sm3(token.encode()).hex(), codes, self._now(), admin
                )
                self._index_tokens()
                self._save()
            return token

    def revoke_client(self, name: str, *, admin: str) -> None:
        with self._audited("admin.revoke_client", admin, client=name):
            record = self._clients.get(name)
            if record is None:
                raise NotFound(f"no client {name}")
            if record.revoked_at is not None:
                raise Conflict(f"client {name} was revoked at {record.revoked_at}")
            with self._mutex:
                self._clients[name] = replace(record, revoked_at=self._now(), revoked_by=admin)
                self._index_tokens()
                self._save()

    def authorize(
        self, es_id: str, post: Post, valid_from: datetime, valid_to: datetime, *, admin: str
    ) -> str:
        """印章授权: let ``post`` use seal ``es_id`` in [valid_from, valid_to); returns its id."""
        with self._audited("admin.authorize", admin, es_id=es_id, post=str(post)) as facts:
            record = self._seal_records.get(es_id)
            if record is None:
                raise SealNotFound(f"no seal {es_id} is held here", es_id=es_id)
            start, end = utc(valid_from, "valid_from"), utc(valid_to, "valid_to")
            if not start < end:
                raise ValidationError("valid_from must be before valid_to")
            with self._mutex:
                auth = Authorization(
                    id=f"A{self._next_auth:06d}",
                    es_id=es_id,
                    post=Post(post).value,
                    valid_from=iso(start),
                    valid_to=iso(end),
                    created_at=self._now(),
                    created_by=admin,
                )
                self._auths[auth.id] = auth
                self._next_auth += 1
                self._save()
            facts.update(authorization=auth.id, valid_from=auth.valid_from, valid_to=auth.valid_to)
            return auth.id

    def revoke_authorization(self, authorization_id: str, now: datetime, *, admin: str) -> None:
        """Withdraw an authorization; it refuses every stamp from then on (also backdated ones)."""
        with self._audited("admin.revoke_authorization", admin, authorization=authorization_id):
            auth = self._auths.get(authorization_id)
            if auth is None:
                raise NotFound(f"no authorization {authorization_id}")
            if auth.revoked_at is not None:
                raise Conflict(f"authorization {authorization_id} was revoked at {auth.revoked_at}")
            at = iso(utc(now, "now"))
            with self._mutex:
                self._auths[auth.id] = replace(auth, revoked_at=at, revoked_by=admin)
                self._save()

    # -- operations ---------------------------------------------------------------------------

    def authenticate(self, token: str, action: str = "authenticate") -> ClientRecord:
        """The client a token belongs to; an unknown or revoked token is audited and refused."""
        well_formed = isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS
        digest = sm3(token.encode()).hex() if well_formed else ""
        client = self._by_token.get(digest) if well_formed else None
        if client is None:
            error = ClientUnknown("unknown or revoked client token")
            self._append(action, "?", "refused", token_sm3=digest[:16], error=error.code)
            raise error
        return client

    def seal_sign(
        self,
        token: str,
        *,
        username: str,
        post: Post,
        party_code: str,
        kind: SealKind,
        data: bytes,
        now: datetime,
        property_info: str = "",
    ) -> bytes:
        """签章: stamp ``data`` with ``party_code``'s seal of ``kind``; DER ``SES_Signature``."""
        request = SealRequest(username, post, party_code, kind, data, now, property_info)
        client = self.authenticate(token, "seal_sign")
        with self._audited(
            "seal_sign",
            client.name,
            party=str(party_code),
            post=str(post),
            username=str(username),
            kind=str(kind),
        ) as facts:
            request = _checked_request(request)
            plan = self._plan(client, request)
            facts.update(es_id=plan.seal.es_id, signer=plan.signer, signed_at=iso(plan.at))
            facts["data_sm3"] = sm3(request.data).hex()
            return sign_with_seal(
                plan.seal, plan.key, plan.cert_der, request.data, plan.at, request.property_info
            )

    def batch_seal_sign(self, token: str, requests: Sequence[SealRequest]) -> list[bytes]:
        """Stamp many documents in one audited act; all or nothing.

        Authorization is checked once per distinct (party, kind, post, signing time) — once per
        (seal, post) for a batch stamped at one moment — and every check passes before anything
        is signed. The audit entry holds the count and an SM3 digest over the items.
        """
        items = list(requests)
        client = self.authenticate(token, "batch_seal_sign")
        with self._audited("batch_seal_sign", client.name, count=len(items)) as facts:
            if not 0 < len(items) <= MAX_BATCH:
                raise ValidationError(f"a batch has 1-{MAX_BATCH} items, got {len(items)}")
            checked = [_checked_request(r) for r in items]
            plans: dict[tuple[str, SealKind, Post, datetime], _Plan] = {}
            chosen: list[_Plan] = []
            for r in checked:
                slot = (r.party_code, r.kind, r.post, r.now)
                if slot not in plans:
                    plans[slot] = self._plan(client, r)
                chosen.append(plans[slot])
            facts.update(_batch_facts(checked, chosen))
            return _stamp_all(checked, chosen)

    def sign(self, token: str, party_code: str, data: bytes) -> bytes:
        """Raw SM2 signature (SM3, default signer ID) with ``party_code``'s institution key."""
        client = self.authenticate(token, "sign")
        with self._audited("sign", client.name, party=str(party_code)) as facts:
            _check_bytes(data, MAX_DATA_BYTES, "data")
            key, _ = self._held(client, party_code)
            facts["data_sm3"] = sm3(data).hex()
            return key.sign(data)

    def decrypt(self, token: str, party_code: str, ciphertext: bytes) -> bytes:
        """SM2-decrypt with ``party_code``'s institution key (unwraps SM4 envelope keys)."""
        client = self.authenticate(token, "decrypt")
        with self._audited("decrypt", client.name, party=str(party_code)) as facts:
            _check_bytes(ciphertext, MAX_CIPHERTEXT_BYTES, "ciphertext")
            key, cert = self._held(client, party_code)
            if cert.key_usage and KeyUsage.KEY_ENCIPHERMENT not in cert.key_usage:
                raise KeyUsageInvalid(f"{party_code}'s certificate has no keyEncipherment usage")
            facts["ciphertext_sm3"] = sm3(ciphertext).hex()
            return key.decrypt(ciphertext)

    def verify(self, cert_der: bytes, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is an SM2 signature over ``data`` by the certificate's key.

        Only the signature: the certificate's chain and revocation are the caller's
        (``TrustStore.validate``). A malformed certificate raises; a bad signature is False.
        """
        _check_bytes(data, MAX_DATA_BYTES, "data")
        _check_bytes(signature, 1024, "signature")
        return Certificate.from_der(cert_der).public_key.is_valid_signature(signature, data)

    def encrypt(self, cert_der: bytes, data: bytes) -> bytes:
        """SM2-encrypt ``data`` (an SM4 key) to the holder of a certificate valid now."""
        _check_bytes(data, MAX_ENCRYPT_BYTES, "data")
        cert = Certificate.from_der(cert_der)
        usable = {KeyUsage.KEY_ENCIPHERMENT, KeyUsage.DATA_ENCIPHERMENT}
        if cert.key_usage and not cert.key_usage & usable:
            raise KeyUsageInvalid(f"{cert.subject} is not for encryption (a signing certificate)")
        now = self._clock()
        if not cert.valid_at(now):
            raise CertificateExpired(f"{cert.subject} is not valid at {now.isoformat()}")
        return cert.public_key.encrypt(data)

    def institution_certificate(self, party_code: str) -> Certificate:
        cert = self._certs.get(party_code)
        if cert is None:
            raise PartyUnknown(f"the server holds no certified key for {party_code}")
        return cert

    # -- reading ------------------------------------------------------------------------------

    def parties(self) -> list[PartyRecord]:
        return sorted(self._parties.values(), key=lambda r: r.code)

    def seals(self) -> list[SealRecord]:
        return sorted(self._seal_records.values(), key=lambda r: (r.owner, r.kind, r.es_id))

    def clients(self) -> list[ClientRecord]:
        return sorted(self._clients.values(), key=lambda r: r.name)

    def authorizations(self) -> list[Authorization]:
        return sorted(self._auths.values(), key=lambda r: r.id)

    @property
    def audit_head(self) -> tuple[int, str]:
        return self._audit.head

    def audit_entries(self) -> Iterator[AuditEntry]:
        return self._audit.entries()

    def verify_audit(self) -> ChainBreak | None:
        """Walk the audit log's hash chain; the first break, or None when intact."""
        return self._audit.verify()

    def record_event(self, action: str, actor: str, outcome: str = "ok", **detail: Any) -> None:
        """Audit what happens around the service: ``server.start``, ``server.stop``, and a
        transport's refusal of a malformed request (outcome ``refused``)."""
        self._append(action, actor, outcome, **detail)

    # -- internals ----------------------------------------------------------------------------

    def _plan(self, client: ClientRecord, request: SealRequest) -> _Plan:
        """Find the party's seal of that kind and check the post's authorization, or refuse."""
        party, kind, post, at = request.party_code, request.kind, request.post, request.now
        if not client.acts_for(party):
            raise NotAuthorized(f"client {client.name} does not act for party {party}")
        candidates = [
            r
            for r in self._seal_records.values()
            if r.owner == party and r.kind == kind.value and self._seals[r.es_id].is_valid_at(at)
        ]
        if not candidates:
            raise SealNotFound(f"{party} has no {kind.value} seal valid at {iso(at)} here")
        record = max(candidates, key=lambda r: (r.valid_start, r.es_id))
        mine = [a for a in self._auths.values() if a.covers(record.es_id, post)]
        if not mine:
            raise NotAuthorized(
                f"post {post.value} is not authorized to use seal {record.es_id} ({record.name})",
                es_id=record.es_id,
            )
        reasons = [a.refusal(at) for a in mine]
        if None not in reasons:
            raise NotAuthorized("; ".join(r for r in reasons if r), es_id=record.es_id)
        cert = self._certs[record.signer]
        return _Plan(
            self._seals[record.es_id], record.signer, self._keys[record.signer], cert.der, at
        )

    def _held(self, client: ClientRecord, party_code: str) -> tuple[SM2PrivateKey, Certificate]:
        if not client.acts_for(party_code):
            raise NotAuthorized(f"client {client.name} does not act for party {party_code}")
        cert = self.institution_certificate(party_code)
        return self._keys[party_code], cert

    @contextlib.contextmanager
    def _audited(
        self, action: str, actor: str, *, party: str = "", post: str | None = None, **detail: Any
    ) -> Iterator[dict[str, Any]]:
        """Run an operation; append one audit entry whatever its outcome (refusals too).

        The entry of a success is written before the result is returned: no signature leaves
        the server unaudited. An administrator's name is checked like a username.
        """
        facts = dict(detail)
        try:
            if action.startswith("admin."):
                check_username(actor)
            yield facts
        except GuokuError as exc:
            facts.update(error=exc.code, reason=exc.message[:500])
            self._append(action, actor, "refused", party=party, post=post, **facts)
            raise
        except Exception as exc:  # a fault, not a refusal: audited, then raised as it is
            facts.update(error="INTERNAL_ERROR", reason=type(exc).__name__)
            self._append(action, actor, "refused", party=party, post=post, **facts)
            raise
        self._append(action, actor, "ok", party=party, post=post, **facts)

    def _append(
        self,
        action: str,
        actor: str,
        outcome: str,
        *,
        party: str = "",
        post: str | None = None,
        **detail: Any,
    ) -> None:
        self._audit.append(
            at=self._now(),
            actor=actor[:64],
            action=action,
            outcome=outcome,
            party=party[:64],
            post=post,
            detail=detail,
        )

    def _now(self) -> str:
        return iso(self._clock())

    def _load_party(self, record: PartyRecord) -> None:
        label = f"institution:{record.code}"
        key = ca.decrypt_key(
            (self.directory / KEYS_DIR / f"{record.code}.key").read_bytes(), self._secret, label
        )
        if key.public_key().point.hex() != record.public_key:
            raise StoreCorrupt(f"the key file of {record.code} holds another key")
        self._keys[record.code] = key
        if record.pending:
            return
        cert = Certificate.from_pem(
            (self.directory / CERTS_DIR / f"{record.code}.pem").read_bytes()
        )
        if cert.fingerprint != record.fingerprint:
            raise StoreCorrupt(f"the certificate file of {record.code} was replaced")
        self._certs[record.code] = cert

    def _write_key(self, party_code: str, key: SM2PrivateKey) -> None:
        blob = ca.encrypt_key(key, self._secret, f"institution:{party_code}", self._iterations)
        write_atomic(self.directory / KEYS_DIR / f"{party_code}.key", blob)
        self._keys[party_code] = key

    def _install(
        self, party_code: str, public: SM2PublicKey, cert: Certificate, admin: str
    ) -> None:
        write_atomic(self.directory / CERTS_DIR / f"{party_code}.pem", cert.pem, 0o644)
        self._certs[party_code] = cert
        self._parties[party_code] = PartyRecord(
            party_code, public.point.hex(), cert.fingerprint, self._now(), admin
        )
        self._save()

    def _index_tokens(self) -> None:
        self._by_token = {c.token_sm3: c for c in self._clients.values() if c.revoked_at is None}

    def _save(self) -> None:
        self._state_file.save(
            {
                "parties": {c: r.to_json() for c, r in self._parties.items()},
                "seals": {e: r.to_json() for e, r in self._seal_records.items()},
                "clients": {n: r.to_json() for n, r in self._clients.items()},
                "authorizations": {i: r.to_json() for i, r in self._auths.items()},
                "next_authorization": self._next_auth,
            }
        )


def _stamp(request: SealRequest, plan: _Plan) -> bytes:
    return sign_with_seal(
        plan.seal, plan.key, plan.cert_der, request.data, plan.at, request.property_info
    )


def _stamp_all(requests: Sequence[SealRequest], plans: Sequence[_Plan]) -> list[bytes]:
    """Stamp on a few threads: the SM2/SM3 work runs in C without the GIL (≈ 1.5× on 2 cores)."""
    workers = min(MAX_SIGNING_THREADS, os.cpu_count() or 1, len(requests) // _PARALLEL_MIN)
    if workers < 2:
        return list(map(_stamp, requests, plans))
    with ThreadPoolExecutor(workers, thread_name_prefix="seal-sign") as pool:
        return list(pool.map(_stamp, requests, plans))


def _batch_facts(items: Sequence[SealRequest], plans: Sequence[_Plan]) -> dict[str, Any]:
    """What one batch audit entry records: the item digest and who/which seals, compactly."""
    lines = [
        "\t".join(
            (
                str(i),
                r.party_code,
                r.kind.value,
                p.seal.es_id,
                r.post.value,
                r.username,
                iso(p.at),
                sm3(r.data).hex(),
                r.property_info,
            )
        )
        for i, (r, p) in enumerate(zip(items, plans, strict=True))
    ]

    def few(values: set[str]) -> list[str] | int:
        return sorted(values) if len(values) <= _AUDIT_LIST_LIMIT else len(values)

    return {
        "items_sm3": sm3("\n".join(lines).encode()).hex(),
        "seals": few({p.seal.es_id for p in plans}),
        "parties": few({r.party_code for r in items}),
        "posts": few({r.post.value for r in items}),
        "usernames": few({r.username for r in items}),
    }


class LocalSigningClient:
    """In-process :class:`SigningClient`: the embedded demo's signer, on the server's code path."""

    def __init__(self, service: SigningService, token: str) -> None:
        self._service, self._token = service, token

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
        return self._service.seal_sign(
            self._token,
            username=username,
            post=post,
            party_code=party_code,
            kind=kind,
            data=data,
            now=now,
            property_info=property_info,
        )

    def batch_seal_sign(self, requests: Sequence[SealRequest]) -> list[bytes]:
        return self._service.batch_seal_sign(self._token, requests)

    def sign(self, party_code: str, data: bytes) -> bytes:
        return self._service.sign(self._token, party_code, data)

    def verify(self, cert_der: bytes, signature: bytes, data: bytes) -> bool:
        self._service.authenticate(self._token, "verify")
        return self._service.verify(cert_der, signature, data)

    def encrypt(self, cert_der: bytes, data: bytes) -> bytes:
        self._service.authenticate(self._token, "encrypt")
        return self._service.encrypt(cert_der, data)

    def decrypt(self, party_code: str, ciphertext: bytes) -> bytes:
        return self._service.decrypt(self._token, party_code, ciphertext)

    def institution_certificate(self, party_code: str) -> Certificate:
        self._service.authenticate(self._token, "institution_certificate")
        return self._service.institution_certificate(party_code)
