"""Signed archives (电子凭证归档, decision 0022): settled vouchers older than a cut-off leave
for a directory that verifies offline, years later, with nothing but the trust anchors.

Layout of an archive directory::

    manifest.json                    node, party, cut-off, when, by whom; counts and amounts by
                                     type; every file with its SM3 and size; every voucher's
                                     key, state, amount, date, parties, whether it is sealed
    manifest.sig                     GB/T 38540 SES_Signature over manifest.json: the node
                                     party's official seal, signed by its institution key
    vouchers/<out|in>/<file>.xml     each voucher version exactly as stored (with its stamps)
    trail.jsonl                      the voucher events (凭证轨迹) of every archived version

``verify`` checks the manifest's seal and certificate chain (at its signing time), that the
files are exactly those named, every SM3, the totals, and every sealed voucher's stamps
(VoucherVerifier, as ``guoku verify`` does). ``purge`` removes the archived rows from the live
database in one transaction after the archive verified and only if every row is still what
was archived; each voucher that left is written to the audit chain.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, delete, insert, select, update

from guoku.domain.errors import GuokuError
from guoku.domain.lifecycle import FINAL_STATES, State
from guoku.library.ports import iso
from guoku.ops.keys import NodeKeys
from guoku.security.certs import TrustStore
from guoku.security.crypto import sm3_hex
from guoku.security.sealing import VoucherVerifier
from guoku.security.seals import verify_seal_signature
from guoku.store import audit
from guoku.store.repository import VoucherRow, get_voucher
from guoku.store.tables import (
    account_checks,
    archives,
    outbox,
    paper_vouchers,
    voucher_events,
    vouchers,
)
from guoku.store.uow import UnitOfWork
from guoku.xml.codec import from_xml

FORMAT: Final = "guoku-voucher-archive/1"
MANIFEST: Final = "manifest.json"
SEAL: Final = "manifest.sig"
TRAIL: Final = "trail.jsonl"
SETTLED: Final = {"out": frozenset(s.value for s in FINAL_STATES),
                  "in": frozenset({State.ACCEPTED.value})}
"""What is archived: versions with no move left — the sender's accepted or superseded copies,
the receiver's accepted ones (a returned copy waits for the sender's correction)."""


class ArchiveInvalid(GuokuError):
    code = "ARCHIVE_INVALID"


class ArchiveSealInvalid(ArchiveInvalid):
    code = "ARCHIVE_SEAL_INVALID"


class ArchiveIncomplete(ArchiveInvalid):
    code = "ARCHIVE_INCOMPLETE"


class ArchiveDigestMismatch(ArchiveInvalid):
    code = "ARCHIVE_DIGEST_MISMATCH"


class ArchiveVoucherInvalid(ArchiveInvalid):
    code = "ARCHIVE_VOUCHER_INVALID"


class ArchiveStale(ArchiveInvalid):
    """The live rows are no longer what was archived: nothing is purged."""

    code = "ARCHIVE_STALE"


@dataclass(frozen=True)
class ArchiveReport:
    archive_id: str
    node: str
    party: str
    cutoff: str
    vouchers: int
    amount_fen: int
    sealed_by: str
    seal_name: str
    signed_at: str
    stamps_checked: int


def _name(row: VoucherRow) -> str:
    return (f"vouchers/{row.direction}/{row.vt_code}_{row.admdiv}_{row.st_year}_"
            f"{row.voucher_no}_v{row.version}.xml")


def _entry(row: VoucherRow, path: str) -> dict[str, Any]:
    return {"path": path, "sm3": sm3_hex(row.xml), "size": len(row.xml), "id": row.id,
            "ref": row.ref, "admdiv": row.admdiv, "direction": row.direction,
            "state": row.state, "amount_fen": row.amount_fen, "vou_date": row.vou_date,
            "sender": row.sender_party, "receiver": row.receiver_party,
            "sealed": bool(from_xml(row.xml).stamps)}


def _totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    count: Counter[str] = Counter()
    amount: Counter[str] = Counter()
    for e in entries:
        vt = e["ref"].split("/", 1)[0]
        count[vt] += 1
        amount[vt] += int(e["amount_fen"])
    return {"vouchers": len(entries), "amount_fen": sum(amount.values()),
            "by_type": {vt: {"vouchers": count[vt], "amount_fen": amount[vt]}
                        for vt in sorted(count)}}


# --- making an archive -----------------------------------------------------------------------


def make_archive(engine: Engine, keys: NodeKeys, out: Path, *, before: str, now: datetime,
                 made_by: str) -> ArchiveReport:
    """Export the settled vouchers dated before ``before`` (yyyymmdd) to ``out`` (which must
    not exist or be empty), seal the manifest, record the archive; then verify it."""
    if len(before) != 8 or not before.isdigit():
        raise ArchiveInvalid(f"the cut-off is a date yyyymmdd, not {before!r}")
    if out.exists() and any(out.iterdir()):
        raise ArchiveInvalid(f"{out} is not empty")
    archive_id = uuid.uuid4().hex
    entries: list[dict[str, Any]] = []
    with UnitOfWork(engine) as uow:
        ids = uow.conn.execute(select(vouchers.c.id, vouchers.c.direction, vouchers.c.state)
                               .where(vouchers.c.vou_date < before).order_by(vouchers.c.id)).all()
        chosen = [int(i) for i, direction, state in ids if state in SETTLED[direction]]
        for voucher_id in chosen:
            row = get_voucher(uow.conn, voucher_id, None)
            path = _name(row)
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            (out / path).write_bytes(row.xml)
            entries.append(_entry(row, path))
        trail = b"".join(
            json.dumps({k: getattr(e, k) for k in e._fields}, ensure_ascii=False,
                       sort_keys=True).encode() + b"\n"
            for e in uow.conn.execute(select(voucher_events)
                                      .where(voucher_events.c.voucher_id.in_(chosen))
                                      .order_by(voucher_events.c.id)))
    out.mkdir(parents=True, exist_ok=True)
    (out / TRAIL).write_bytes(trail)
    totals = _totals(entries)
    manifest: dict[str, Any] = {
        "format": FORMAT, "archive_id": archive_id, "node": keys.spec.name,
        "party": keys.party, "cutoff": before, "made_at": iso(now), "made_by": made_by,
        "totals": totals, "files": entries,
        "trail": {"path": TRAIL, "sm3": sm3_hex(trail), "size": len(trail)},
    }
    raw = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    (out / MANIFEST).write_bytes(raw)
    (out / SEAL).write_bytes(keys.seal(raw, now, f"archive={archive_id}"))
    with UnitOfWork(engine) as uow:
        uow.conn.execute(insert(archives).values(
            archive_id=archive_id, cutoff=before, manifest_sm3=sm3_hex(raw),
            vouchers=len(entries), amount_fen=totals["amount_fen"],
            made_at=iso(now), made_by=made_by))
        uow.commit()
    return verify_archive(out, TrustStore.from_directory(_trust_of(keys)))


def _trust_of(keys: NodeKeys) -> Path:
    return keys.home / "trust"


# --- verifying -------------------------------------------------------------------------------


def verify_archive(directory: Path, trust: TrustStore) -> ArchiveReport:
    """Everything an auditor checks, offline; the first failure raises a typed error."""
    try:
        raw = (directory / MANIFEST).read_bytes()
        seal = (directory / SEAL).read_bytes()
    except OSError as exc:
        raise ArchiveIncomplete(f"{directory} has no manifest or no seal: {exc}") from exc
    try:
        info = verify_seal_signature(seal, raw, None, trust)
    except GuokuError as exc:
        raise ArchiveSealInvalid(f"the manifest's seal does not verify: {exc.message}",
                                 cause=exc.code) from exc
    try:
        manifest = json.loads(raw)
        files: list[dict[str, Any]] = manifest["files"]
        trail: dict[str, Any] = manifest["trail"]
        if manifest["format"] != FORMAT:
            raise ArchiveInvalid(f"not a {FORMAT} manifest")
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveInvalid(f"the manifest is not readable: {exc}") from exc
    holder = info.signer_cert.holder
    if holder is None or holder.username is not None or holder.party_code != manifest["party"]:
        raise ArchiveSealInvalid(f"the manifest was sealed by {info.signer_cert.subject}, not "
                                 f"by the institution of {manifest['party']}")
    named = {f["path"] for f in files} | {trail["path"]}
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    missing, extra = sorted(named - present), sorted(present - named - {MANIFEST, SEAL})
    if missing or extra:
        raise ArchiveIncomplete(f"files missing {missing[:5]}, files not in the manifest "
                                f"{extra[:5]}")
    for item in [*files, trail]:
        data = (directory / item["path"]).read_bytes()
        if len(data) != item["size"] or sm3_hex(data) != item["sm3"]:
            raise ArchiveDigestMismatch(f"{item['path']}: its SM3 is not the manifest's",
                                        path=item["path"])
    if _totals(files) != manifest["totals"]:
        raise ArchiveInvalid("the manifest's totals are not the sum of its vouchers")
    verifier, stamps = VoucherVerifier(trust), 0
    for item in files:
        stamps += _check_voucher(verifier, directory, item)
    return ArchiveReport(manifest["archive_id"], manifest["node"], manifest["party"],
                         manifest["cutoff"], len(files), int(manifest["totals"]["amount_fen"]),
                         info.signer_cert.subject, info.seal.name, iso(info.signed_at), stamps)


def _check_voucher(verifier: VoucherVerifier, directory: Path, item: dict[str, Any]) -> int:
    try:
        doc = from_xml((directory / item["path"]).read_bytes())
        ref = f"{doc.vt_code}/{doc.year}/{doc.voucher_no}/v{doc.version}"
        if ref != item["ref"] or doc.amount.fen != item["amount_fen"]:
            raise ArchiveVoucherInvalid(f"{item['path']} is {ref} of {doc.amount.fen} fen, the "
                                        f"manifest says {item['ref']} of {item['amount_fen']}")
        if not item["sealed"]:
            if doc.stamps:
                raise ArchiveVoucherInvalid(f"{item['path']} carries stamps the manifest "
                                            "does not declare")
            return 0
        return len(verifier.report(doc, item["sender"], None))
    except ArchiveInvalid:
        raise
    except GuokuError as exc:
        raise ArchiveVoucherInvalid(f"{item['path']}: {exc.code}: {exc.message}",
                                    path=item["path"], cause=exc.code) from exc


# --- purging ---------------------------------------------------------------------------------


def purge(engine: Engine, directory: Path, trust: TrustStore, *, party: str, actor: str,
          now: datetime) -> int:
    """Remove the archived rows from the live database, in one transaction, after the archive
    verified; every voucher that left is an entry of the audit chain. Returns how many."""
    report = verify_archive(directory, trust)
    if report.party != party:
        raise ArchiveInvalid(f"the archive is {report.party}'s, not this node's ({party})")
    raw = (directory / MANIFEST).read_bytes()
    files: list[dict[str, Any]] = json.loads(raw)["files"]
    at = iso(now)
    with UnitOfWork(engine) as uow:
        made = uow.conn.execute(select(archives).where(
            archives.c.archive_id == report.archive_id)).first()
        if made is None or made.manifest_sm3 != sm3_hex(raw) or made.purged_at is not None:
            raise ArchiveStale("this node did not make this archive, or purged it already")
        ids = [int(item["id"]) for item in files]
        for item in files:
            row = get_voucher(uow.conn, int(item["id"]), None)
            if (row.ref, row.direction, row.state, sm3_hex(row.xml)) != (
                    item["ref"], item["direction"], item["state"], item["sm3"]):
                raise ArchiveStale(f"voucher {item['ref']} changed since it was archived")
            audit.append(uow.conn, admdiv=row.admdiv, at=at, actor=actor,
                         action="archive.purge", voucher_ref=row.ref, state_before=row.state,
                         detail={"archive": report.archive_id, "direction": row.direction,
                                 "xml_sm3": item["sm3"], "amount_fen": row.amount_fen})
        uow.conn.execute(update(outbox).where(outbox.c.voucher_id.in_(ids))
                         .values(voucher_id=None))
        uow.conn.execute(update(paper_vouchers).where(paper_vouchers.c.voucher_id.in_(ids))
                         .values(voucher_id=None))
        uow.conn.execute(delete(account_checks).where(account_checks.c.voucher_id.in_(ids)))
        uow.conn.execute(delete(voucher_events).where(voucher_events.c.voucher_id.in_(ids)))
        uow.conn.execute(delete(vouchers).where(vouchers.c.id.in_(ids)))
        uow.conn.execute(update(archives).where(archives.c.archive_id == report.archive_id)
                         .values(purged_at=at))
        audit.append(uow.conn, admdiv="000000", at=at, actor=actor, action="archive.purge",
                     detail={"archive": report.archive_id, "cutoff": report.cutoff,
                             "vouchers": report.vouchers, "amount_fen": report.amount_fen,
                             "manifest_sm3": sm3_hex(raw)})
        uow.commit()
    return len(ids)
