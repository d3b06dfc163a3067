"""Signed archives from the demo: made with `guoku archive`, verified offline with only the
trust anchors, refused when one byte changes anywhere; --purge removes the archived rows in one
transaction and the audit chain still verifies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from guoku.ops.archive import ArchiveStale, make_archive, purge
from guoku.ops.keys import node_keys
from guoku.security.ca import CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.store import audit
from guoku.store.engine import make_engine, sqlite_url
from guoku.store.tables import archives, audit_log, vouchers

GUOKU = [sys.executable, "-m", "guoku"]
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%d")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GUOKU, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("archive-demo") / "ws"
    result = _run("demo", "--workdir", str(workdir), "--json")
    assert result.returncode == 0, result.stderr
    return workdir


@pytest.fixture(scope="module")
def made(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("archives") / "finance"
    result = _run("archive", "--before", TOMORROW, "--out", str(out), "--node", "finance",
                  "--workdir", str(demo), "--json")
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout.strip().splitlines()[-1])


def _verify(directory: Path, trust: Path) -> tuple[int, dict[str, object]]:
    result = _run("archive", "verify", str(directory), "--trust", str(trust), "--json")
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def test_an_archive_of_the_demo_verifies_offline(
    demo: Path, made: tuple[Path, dict[str, object]], tmp_path: Path,
) -> None:
    directory, report = made
    assert isinstance(report["vouchers"], int) and report["vouchers"] >= 10
    assert isinstance(report["stamps_checked"], int) and report["stamps_checked"] > 0
    offline = tmp_path / "elsewhere"  # years later, somewhere else: the files and the anchors
    shutil.copytree(directory, offline / "archive")
    shutil.copytree(demo / "trust", offline / "trust")
    code, verdict = _verify(offline / "archive", offline / "trust")
    assert code == 0 and verdict["valid"] is True
    assert verdict["vouchers"] == report["vouchers"]
    assert verdict["amount_fen"] == report["amount_fen"]
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"]["vouchers"] == len(manifest["files"]) == report["vouchers"]


def _one_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("where", "code"), [
    ("voucher", "ARCHIVE_DIGEST_MISMATCH"),
    ("manifest", "ARCHIVE_SEAL_INVALID"),
    ("signature", "ARCHIVE_SEAL_INVALID"),
    ("trail", "ARCHIVE_DIGEST_MISMATCH"),
    ("missing file", "ARCHIVE_INCOMPLETE"),
    ("foreign trust", "ARCHIVE_SEAL_INVALID"),
])
def test_one_byte_changed_anywhere_is_refused_with_its_reason(
    demo: Path, made: tuple[Path, dict[str, object]], tmp_path: Path, where: str, code: str,
) -> None:
    directory = tmp_path / "archive"
    shutil.copytree(made[0], directory)
    trust = demo / "trust"
    first_voucher = sorted((directory / "vouchers").rglob("*.xml"))[0]
    if where == "voucher":
        _one_byte(first_voucher, 700)
    elif where == "manifest":
        _one_byte(directory / "manifest.json", 300)
    elif where == "signature":
        _one_byte(directory / "manifest.sig", 200)
    elif where == "trail":
        _one_byte(directory / "trail.jsonl", 50)
    elif where == "missing file":
        first_voucher.unlink()
    else:
        now = datetime.now(UTC)  # another key ceremony's anchors
        other = CertificateAuthority.create(tmp_path / "ca", "另一个 CA", "pass-phrase", now,
                                            kdf_iterations=1000)
        trust = tmp_path / "other-trust"
        other.export_trust(trust, now)
    status, verdict = _verify(directory, trust)
    assert status == 1 and verdict["valid"] is False
    assert verdict["code"] == code


def test_purge_removes_exactly_the_archived_rows_and_the_chain_still_verifies(
    demo: Path, tmp_path: Path,
) -> None:
    workdir = tmp_path / "ws"
    shutil.copytree(demo, workdir)
    db = workdir / "nodes" / "bank-icbc.db"
    engine = make_engine(sqlite_url(db))
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(vouchers)).scalar_one()
    engine.dispose()
    out = tmp_path / "icbc-archive"
    result = _run("archive", "--before", TOMORROW, "--out", str(out), "--node", "bank-icbc",
                  "--workdir", str(workdir), "--purge", "--user", "archivist", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["purged"] == report["vouchers"] > 0
    assert _run("audit", "verify", "--db", sqlite_url(db)).returncode == 0
    engine = make_engine(sqlite_url(db))
    try:
        with engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(vouchers)).scalar_one()
            purged = conn.execute(select(audit_log.c.voucher_ref).where(
                audit_log.c.action == "archive.purge", audit_log.c.actor == "archivist"))
            refs = [r for (r,) in purged]
            assert conn.execute(select(archives.c.purged_at)).scalar_one() is not None
        assert left == before - report["vouchers"]
        assert len(refs) == report["vouchers"] + 1 and refs[-1] is None  # each, then the sum
        with pytest.raises(ArchiveStale):  # once only
            purge(engine, out, TrustStore.from_directory(workdir / "trust"), party="B-ICBC",
                  actor="archivist", now=datetime.now(UTC))
    finally:
        engine.dispose()
    assert _verify(out, workdir / "trust")[0] == 0  # the archive outlives the rows


def test_purge_changes_nothing_when_a_row_moved_since_it_was_archived(
    demo: Path, tmp_path: Path,
) -> None:
    workdir = tmp_path / "ws"
    shutil.copytree(demo, workdir)
    engine = make_engine(sqlite_url(workdir / "nodes" / "pboc.db"))
    try:
        with node_keys(workdir / "security", "pboc") as keys:
            report = make_archive(engine, keys, tmp_path / "a", before=TOMORROW,
                                  now=datetime.now(UTC), made_by="archivist")
        manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
        with engine.begin() as conn:
            conn.execute(update(vouchers).where(vouchers.c.id == manifest["files"][0]["id"])
                         .values(xml=b"<changed/>"))
            count = conn.execute(select(func.count()).select_from(vouchers)).scalar_one()
        with pytest.raises(ArchiveStale):
            purge(engine, tmp_path / "a", TrustStore.from_directory(workdir / "trust"),
                  party="P530000", actor="archivist", now=datetime.now(UTC))
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == count
        assert report.vouchers > 0
        assert audit.verify(engine)[1] is None
    finally:
        engine.dispose()
