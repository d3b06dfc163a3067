"""Backup and restore of a node: the same rows back on SQLite and PostgreSQL, the audit chain
intact; a changed, truncated or wrongly signed backup refused with a typed error before the
target is touched; and the drill (backup, destroy, restore, verify) run small."""

from __future__ import annotations

import importlib
import io
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select

from guoku.flows.desk import Desk, answer, issue
from guoku.ops.backup import (
    MANIFEST,
    SIGNATURE,
    BackupInvalid,
    Manifest,
    RestoreTargetNotEmpty,
    backup,
    restore,
    verify,
)
from guoku.ops.keys import node_keys
from guoku.province import demo_province
from guoku.security.certs import TrustStore
from guoku.store import audit
from guoku.store.engine import make_engine, sqlite_url
from guoku.store.tables import vouchers
from guoku.workspace import DEMO_SECRETS, EmbeddedProvince, open_workspace
from guoku.xml.samples import sample_document

REPO = Path(__file__).resolve().parents[2]
COUNTY = "533103"


@pytest.fixture
def node(tmp_path: Path, security_material: Path) -> Iterator[Path]:
    """A workspace whose bank node received and accepted a few direct payments."""
    shutil.copytree(security_material, tmp_path / "security")
    ws = open_workspace(tmp_path, DEMO_SECRETS, demo_province())
    try:
        province = EmbeddedProvince(ws)
        fin, bank = Desk(f"F{COUNTY}", COUNTY, "fin"), Desk("B-ICBC", COUNTY, "icbc")
        for i in range(4):
            doc = sample_document("5201", voucher_no=f"BK{i:04d}", amount=f"{i + 1}00.50",
                                  admdiv=COUNTY)
            sent = issue(province, fin, "5201", doc.header, doc.details, "B-ICBC")
            province.settle()
            answer(province, bank, sent)
        province.settle()
    finally:
        ws.close()
    yield tmp_path


def _engine(workdir: Path) -> Engine:
    return make_engine(sqlite_url(workdir / "nodes" / "bank-icbc.db"))


def _backup(workdir: Path, out: Path, signed: bool = True) -> Manifest:
    engine = _engine(workdir)
    try:
        if not signed:
            return backup(engine, out, node="bank-icbc", keys=None, now=datetime.now(UTC))
        with node_keys(workdir / "security", "bank-icbc") as keys:
            return backup(engine, out, node="bank-icbc", keys=keys, now=datetime.now(UTC))
    finally:
        engine.dispose()


def _trust(workdir: Path) -> TrustStore:
    return TrustStore.from_directory(workdir / "security" / "trust")


def _rewrite(src: Path, dst: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin.getmembers():
            handle = tin.extractfile(info)
            assert handle is not None
            data = handle.read()
            if info.name == member:
                data = change(data)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def _flip(offset: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        i = offset % len(data)
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]

    return change


def _same_rows(a: Engine, b: Engine) -> None:
    for engine in (a, b):
        assert audit.verify(engine)[1] is None
    with a.connect() as ca, b.connect() as cb:
        rows = select(vouchers).order_by(vouchers.c.id)
        assert ca.execute(rows).all() == cb.execute(rows).all()


def test_a_restored_sqlite_node_has_the_same_rows_and_an_intact_chain(
    node: Path, tmp_path: Path,
) -> None:
    made = _backup(node, tmp_path / "b.tar.gz")
    assert made.party == "B-ICBC" and made.rows > 0 and made.audit_seq > 0
    target = make_engine(sqlite_url(tmp_path / "restored.db"))
    report = restore(tmp_path / "b.tar.gz", target, _trust(node), require_signature=True)
    assert report.signed_by is not None and "B-ICBC" in report.signed_by
    source = _engine(node)
    try:
        _same_rows(source, target)
        with target.connect() as conn:
            assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == 4
    finally:
        source.dispose()
        target.dispose()


@pytest.mark.postgres
def test_a_node_restored_onto_postgresql_backs_up_to_the_same_digests(
    node: Path, tmp_path: Path, pg_schema_url: str,
) -> None:
    first = _backup(node, tmp_path / "b.tar.gz")
    target = make_engine(pg_schema_url)
    try:
        restore(tmp_path / "b.tar.gz", target, _trust(node))
        source = _engine(node)
        _same_rows(source, target)
        source.dispose()
        again = backup(target, tmp_path / "again.tar.gz", node="bank-icbc", keys=None,
                       now=datetime.now(UTC))
        assert [(t.name, t.rows, t.sm3) for t in again.tables] == \
            [(t.name, t.rows, t.sm3) for t in first.tables]
        with target.begin() as conn:  # the id sequences moved past the restored ids
            new_id = conn.execute(vouchers.insert().values(
                admdiv=COUNTY, st_year=2025, vt_code="5201", voucher_no="AFTER", version=1,
                direction="in", state="received", amount_fen=1, vou_date="20250101",
                sender_party="F533103", receiver_party="B-ICBC", xml=b"<x/>", print_count=0,
                is_current=True, created_at="t", updated_at="t")).inserted_primary_key
            assert new_id is not None and new_id[0] == 5
    finally:
        target.dispose()


@pytest.mark.parametrize(("what", "code"), [
    ("one byte of a voucher row", "BACKUP_TAMPERED"),
    ("one byte of the manifest", "BACKUP_SIGNATURE_INVALID"),
    ("one byte of the signature", "BACKUP_SIGNATURE_INVALID"),
    ("the file cut short", "BACKUP_CORRUPT"),
    ("a file added", "BACKUP_TAMPERED"),
])
def test_a_changed_backup_is_refused_and_the_target_stays_untouched(
    node: Path, tmp_path: Path, what: str, code: str,
) -> None:
    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    _backup(node, good)
    if what == "one byte of a voucher row":
        _rewrite(good, bad, "tables/vouchers.jsonl", _flip(1234))
    elif what == "one byte of the manifest":
        _rewrite(good, bad, MANIFEST, lambda d: d.replace(b'"rows": 4', b'"rows": 5', 1))
    elif what == "one byte of the signature":
        _rewrite(good, bad, SIGNATURE, _flip(20))
    elif what == "the file cut short":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    else:
        with tarfile.open(good, "r:gz") as tin, tarfile.open(bad, "w:gz") as tout:
            for info in tin.getmembers():
                tout.addfile(info, tin.extractfile(info))
            extra = tarfile.TarInfo("tables/extra.jsonl")
            extra.size = 3
            tout.addfile(extra, io.BytesIO(b"{}\n"))
    target = make_engine(sqlite_url(tmp_path / "target.db"))
    try:
        with pytest.raises(BackupInvalid) as caught:
            restore(bad, target, _trust(node))
        assert caught.value.code == code
        assert inspect(target).get_table_names() == []  # nothing was created or loaded
    finally:
        target.dispose()


def test_restore_refuses_a_database_that_is_not_empty_and_an_unsigned_file_when_asked(
    node: Path, tmp_path: Path,
) -> None:
    _backup(node, tmp_path / "b.tar.gz")
    source = _engine(node)
    try:
        with pytest.raises(RestoreTargetNotEmpty):
            restore(tmp_path / "b.tar.gz", source, _trust(node))
    finally:
        source.dispose()
    _backup(node, tmp_path / "unsigned.tar.gz", signed=False)
    manifest, signer = verify(tmp_path / "unsigned.tar.gz", None)
    assert signer is None and manifest.party is None
    with pytest.raises(BackupInvalid) as caught:
        verify(tmp_path / "unsigned.tar.gz", _trust(node), require_signature=True)
    assert caught.value.code == "BACKUP_SIGNATURE_INVALID"
    with pytest.raises(BackupInvalid):  # a signed file is checked against trust anchors
        verify(tmp_path / "b.tar.gz", None)


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(REPO))
    try:
        drill = importlib.import_module("bench.backup_drill")
    finally:
        sys.path.remove(str(REPO))
    workdir = tmp_path_factory.mktemp("drill") / "ws"
    drill.make_demo(workdir)
    return workdir


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_backup_drill_runs_small_and_everything_checks_out(
    demo_workspace: Path, engine: str, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    drill = importlib.import_module("bench.backup_drill")
    pg = request.getfixturevalue("pg_url") if engine == "postgres" else None
    lines: list[str] = []
    result = drill.drill(demo_workspace, "bank-icbc", 2, pg, False, log=lines.append)
    assert result["ok"] is True and result["breaks"] == 0
    assert result["engine"] == ("postgresql" if pg else "sqlite")
    assert set(result["seconds"]) == {"setup", "backup", "destroy", "restore", "verify", "total"}
    assert [line.split()[0] for line in lines] == ["set-up", "backup", "destroy", "restore",
                                                   "verify"]
