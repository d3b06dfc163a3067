"""Backup and restore of one node's database, verifiable, on SQLite and PostgreSQL alike.

A backup is one tar.gz (decision 0020)::

    manifest.json        format, node, party, time, Alembic revision, audit-chain head, and per
                         table: file, row count, SM3 of the file
    manifest.sig         SM2/SM3 signature of manifest.json by the node's institution key
    signer.pem           the institution certificate (validated against the trust anchors)
    tables/<table>.jsonl every row of every table, in primary-key order, one JSON object a line
                         (binary columns base64)

It is read in one snapshot (REPEATABLE READ on PostgreSQL; SQLite's write lock), so the audit
head in the manifest is the head of the rows in the files. A restore checks everything first —
readable archive, signature and certificate chain, every table's digest and row count — and
refuses with a typed error before it touches the database; then, into an empty database, it
migrates to the backup's revision, loads every table in one transaction (digests checked again
as the rows stream in), resets the id sequences, checks the audit head, and upgrades to the
newest schema.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import Connection, Engine, LargeBinary, Table, func, inspect, select, text

from guoku.domain.errors import Conflict, GuokuError
from guoku.library.ports import iso
from guoku.ops.keys import NodeKeys
from guoku.security.certs import TrustStore
from guoku.security.x509 import Certificate
from guoku.store.migrate import current_revision, upgrade
from guoku.store.tables import audit_head, metadata

FORMAT: Final = "guoku-node-backup/1"
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
SIGNER: Final = "signer.pem"
TABLES: Final = "tables/"
BATCH: Final = 1000
SEEDED_BY_MIGRATIONS: Final = frozenset({"audit_head"})
"""Tables a migration fills (the chain's genesis head): replaced, not appended to, on restore."""


class BackupInvalid(GuokuError):
    code = "BACKUP_INVALID"


class BackupCorrupt(BackupInvalid):
    """Unreadable, truncated, or not laid out as a backup."""

    code = "BACKUP_CORRUPT"


class BackupTampered(BackupInvalid):
    """A table's digest or row count is not what the manifest says."""

    code = "BACKUP_TAMPERED"


class BackupSignatureInvalid(BackupInvalid):
    code = "BACKUP_SIGNATURE_INVALID"


class RestoreTargetNotEmpty(Conflict):
    code = "RESTORE_TARGET_NOT_EMPTY"


@dataclass(frozen=True, slots=True)
class TableEntry:
    name: str
    rows: int
    sm3: str

    @property
    def member(self) -> str:
        return f"{TABLES}{self.name}.jsonl"


@dataclass(frozen=True)
class Manifest:
    node: str
    party: str | None
    created_at: str
    revision: str
    audit_seq: int
    audit_hash: str
    dialect: str
    tables: tuple[TableEntry, ...]
    format: str = FORMAT

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data["tables"] = [asdict(t) for t in self.tables]
        return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise BackupCorrupt(f"not a {FORMAT} manifest (format {data.get('format')!r})")
            tables = tuple(TableEntry(str(t["name"]), int(t["rows"]), str(t["sm3"]))
                           for t in data["tables"])
            return cls(str(data["node"]), data["party"], str(data["created_at"]),
                       str(data["revision"]), int(data["audit_seq"]), str(data["audit_hash"]),
                       str(data["dialect"]), tables)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupCorrupt(f"the manifest is not readable: {exc}") from exc

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


@dataclass
class RestoreReport:
    manifest: Manifest
    signed_by: str | None
    timings: dict[str, float] = field(default_factory=dict)


# --- rows as JSON lines ----------------------------------------------------------------------


def _binary_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, LargeBinary))


def _encode(row: Any, table: Table, binary: frozenset[str]) -> bytes:
    values = {}
    for column in table.columns:
        value = getattr(row, column.name)
        if column.name in binary and value is not None:
            value = base64.b64encode(bytes(value)).decode("ascii")
        values[column.name] = value
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _decode(line: bytes, binary: frozenset[str]) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(line)
    for name in binary & values.keys():
        if values[name] is not None:
            values[name] = base64.b64decode(values[name], validate=True)
    return values


class _Sm3:
    def __init__(self) -> None:
        from cryptography.hazmat.primitives import hashes

        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


# --- backup ----------------------------------------------------------------------------------


def backup(engine: Engine, out: Path, *, node: str, keys: NodeKeys | None,
           now: datetime) -> Manifest:
    """Write every table of ``engine``'s database to ``out``; sign the manifest with the
    node's institution key when ``keys`` is given."""
    revision = current_revision(engine)
    if revision is None:
        raise BackupInvalid("the database has no schema to back up (no Alembic revision)")
    spools: list[tuple[TableEntry, IO[bytes]]] = []
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
                for table in metadata.sorted_tables:
                    spools.append(_dump(conn, table))
        manifest = Manifest(node, keys.party if keys else None, iso(now), revision,
                            int(head.seq), str(head.hash), engine.dialect.name,
                            tuple(entry for entry, _ in spools))
        raw = manifest.to_bytes()
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            _add(tar, MANIFEST, io.BytesIO(raw), len(raw))
            if keys is not None:
                signature, pem = keys.sign(raw), keys.certificate().pem
                _add(tar, SIGNATURE, io.BytesIO(signature), len(signature))
                _add(tar, SIGNER, io.BytesIO(pem), len(pem))
            for entry, spool in spools:
                size = spool.tell()
                spool.seek(0)
                _add(tar, entry.member, spool, size)
        partial.replace(out)
        return manifest
    finally:
        for _, spool in spools:
            spool.close()


def _dump(conn: Connection, table: Table) -> tuple[TableEntry, IO[bytes]]:
    binary = _binary_columns(table)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by backup)
    digest, count = _Sm3(), 0
    keys = list(table.primary_key.columns) or list(table.columns)
    for row in conn.execute(select(table).order_by(*keys)):
        line = _encode(row, table, binary)
        spool.write(line)
        digest.update(line)
        count += 1
    return TableEntry(table.name, count, digest.hexdigest()), spool


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o600
    tar.addfile(info, data)


# --- verification ----------------------------------------------------------------------------


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


def verify(path: Path, trust: TrustStore | None, *,
           require_signature: bool = False) -> tuple[Manifest, str | None]:
    """Check a backup without a database: readable, signed by a trusted institution
    certificate of its node's party (when signed), every table's rows and digest. Returns the
    manifest and the signer's subject (None when unsigned)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            manifest_raw = _read(tar, members, MANIFEST)
            manifest = Manifest.from_bytes(manifest_raw)
            signer = _check_signature(tar, members, manifest, manifest_raw, trust,
                                      require_signature)
            expected = {t.member for t in manifest.tables} | {MANIFEST, SIGNATURE, SIGNER}
            unknown = sorted(set(members) - expected)
            if unknown:
                raise BackupTampered(f"the backup holds files its manifest does not name: "
                                     f"{unknown[:5]}")
            for entry in manifest.tables:
                for _ in _rows(tar, members, entry):
                    pass
    except _READ_ERRORS as exc:
        raise BackupCorrupt(f"{path} is not a readable backup: {exc}") from exc
    return manifest, signer


def _read(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    member = members.get(name)
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        raise BackupCorrupt(f"the backup has no {name}")
    return handle.read()


def _check_signature(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
                     manifest: Manifest, raw: bytes, trust: TrustStore | None,
                     required: bool) -> str | None:
    if SIGNATURE not in members:
        if required:
            raise BackupSignatureInvalid("the backup is not signed")
        return None
    if trust is None:
        raise BackupSignatureInvalid("a signed backup is checked against trust anchors: "
                                     "give the trust directory")
    try:
        cert = Certificate.from_pem(_read(tar, members, SIGNER))
        trust.validate(cert, datetime.fromisoformat(manifest.created_at.replace("Z", "+00:00")))
    except GuokuError as exc:
        if isinstance(exc, BackupInvalid):
            raise
        raise BackupSignatureInvalid(f"the signer certificate is not trusted: {exc.message}",
                                     cause=exc.code) from exc
    holder = cert.holder
    if holder is None or holder.username is not None or holder.party_code != manifest.party:
        raise BackupSignatureInvalid(f"{cert.subject} is not the institution certificate of "
                                     f"{manifest.party}")
    if not cert.public_key.is_valid_signature(_read(tar, members, SIGNATURE), raw):
        raise BackupSignatureInvalid("the manifest's signature does not verify: the manifest "
                                     "was changed after signing")
    return cert.subject


def _rows(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
          entry: TableEntry) -> Iterator[bytes]:
    """The lines of one table, checked against the manifest as they stream."""
    member = members.get(entry.member)
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        raise BackupCorrupt(f"the backup has no {entry.member}")
    digest, count = _Sm3(), 0
    for line in handle:
        digest.update(line)
        count += 1
        yield line
    found = digest.hexdigest()
    if count != entry.rows or found != entry.sm3:
        raise BackupTampered(f"table {entry.name}: {count} rows with SM3 {found[:16]}…, the "
                             f"manifest says {entry.rows} rows, {entry.sm3[:16]}…",
                             table=entry.name)


# --- restore ---------------------------------------------------------------------------------


def restore(path: Path, engine: Engine, trust: TrustStore | None, *,
            require_signature: bool = False) -> RestoreReport:
    """Restore a verified backup into an empty database (see the module's docstring)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    manifest, signer = verify(path, trust, require_signature=require_signature)
    known = {t.name for t in metadata.sorted_tables}
    if {t.name for t in manifest.tables} - known:
        raise BackupCorrupt(f"tables unknown to this version: "
                            f"{sorted({t.name for t in manifest.tables} - known)}")
    _require_empty(engine)
    timings["verify"] = time.perf_counter() - started
    started = time.perf_counter()
    upgrade(engine, manifest.revision)
    try:
        with tarfile.open(path, "r:gz") as tar, engine.begin() as conn:
            members = {m.name: m for m in tar.getmembers()}
            _load(conn, tar, members, manifest)
    except _READ_ERRORS as exc:
        raise BackupCorrupt(f"{path} changed while it was restored: {exc}") from exc
    upgrade(engine)
    timings["load"] = time.perf_counter() - started
    return RestoreReport(manifest, signer, timings)


def _require_empty(engine: Engine) -> None:
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name not in present:
                continue
            if table.name in SEEDED_BY_MIGRATIONS:
                if conn.execute(select(func.max(audit_head.c.seq))).scalar() not in (None, 0):
                    raise RestoreTargetNotEmpty("the target's audit chain is not empty")
                continue
            if conn.execute(select(func.count()).select_from(table)).scalar_one():
                raise RestoreTargetNotEmpty(
                    f"the target database holds rows (table {table.name}): restore only into "
                    "an empty database", table=table.name)


def _load(conn: Connection, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
          manifest: Manifest) -> None:
    for name in SEEDED_BY_MIGRATIONS:
        conn.execute(metadata.tables[name].delete())
    for entry in manifest.tables:
        table = metadata.tables[entry.name]
        binary = _binary_columns(table)
        batch: list[dict[str, Any]] = []
        for line in _rows(tar, members, entry):
            batch.append(_decode(line, binary))
            if len(batch) == BATCH:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    if conn.dialect.name == "postgresql":
        _reset_sequences(conn)
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if (int(head.seq), str(head.hash)) != (manifest.audit_seq, manifest.audit_hash):
        raise BackupTampered("the restored audit head is not the manifest's")


def _reset_sequences(conn: Connection) -> None:
    """Ids were loaded explicitly: move each serial sequence past the largest."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 1), "
                    f"(SELECT MAX({column.name}) FROM {table.name}) IS NOT NULL)"))
