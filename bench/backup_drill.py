"""Backup drill: back a node up, destroy it, restore it, verify — and time each step.

``python -m bench backup_drill [--workdir DIR] [--node finance] [--extra N] [--pg URL]``

1. set-up: the demo province (every flow) in ``--workdir``, plus ``--extra`` direct payments
   finance -> ICBC, sealed, sent, delivered and accepted; with ``--pg`` the node is first moved
   onto a fresh PostgreSQL schema by a restore (the format is the same on both engines);
2. backup: every table, signed with the node's institution key;
3. destroy: the node's database is deleted (SQLite file, or the PostgreSQL schema dropped);
4. restore: verify the file completely, then load it into the empty database;
5. verify: ``audit verify`` on the restored node; layer-1 reconciliation with every other node
   and layer 2 on every node, all clean; a second backup of the restored node has the same
   digest, table by table, as the first.

Prints one line per step and ends with one JSON line of figures; exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from guoku.bootstrap import node_db_path
from guoku.ops.backup import backup, restore
from guoku.ops.keys import node_keys
from guoku.province import demo_province
from guoku.reconcile.layer1 import layer1
from guoku.reconcile.layer2 import layer2
from guoku.security.certs import TrustStore
from guoku.store import audit
from guoku.store.engine import make_engine, sqlite_url

COUNTY = "533103"


def make_demo(workdir: Path) -> None:
    """``guoku demo`` in its own process (it leaves its signing servers open)."""
    subprocess.run([sys.executable, "-m", "guoku", "demo", "--workdir", str(workdir), "--json"],
                   check=True, capture_output=True, timeout=900)


def extra_payments(workdir: Path, count: int) -> None:
    """``count`` direct payments finance -> ICBC through the embedded network, accepted."""
    from guoku.flows.desk import Desk, answer, issue
    from guoku.workspace import EmbeddedProvince, open_workspace
    from guoku.xml.samples import sample_document

    ws = open_workspace(workdir)
    try:
        province = EmbeddedProvince(ws)
        fin, bank = Desk(f"F{COUNTY}", COUNTY, "fin"), Desk("B-ICBC", COUNTY, "icbc")
        stamp = uuid.uuid4().hex[:6].upper()
        for i in range(count):
            doc = sample_document("5201", voucher_no=f"DRILL{stamp}{i:05d}",
                                  amount=f"{i % 900 + 100}.25", admdiv=COUNTY,
                                  vou_date=datetime.now(UTC).strftime("%Y%m%d"))
            sent = issue(province, fin, "5201", doc.header, doc.details, "B-ICBC")
            province.settle()
            answer(province, bank, sent)
        province.settle()
    finally:
        ws.close()


def engines(workdir: Path, node: str, node_url: str) -> dict[str, Engine]:
    spec = demo_province()
    return {n.name: make_engine(node_url if n.name == node else
                                sqlite_url(node_db_path(workdir, n))) for n in spec.nodes}


def reconcile(found: dict[str, Engine]) -> int:
    """Layer 1 between every pair of nodes, layer 2 on every node: the number of breaks."""
    parties = {n.name: n.parties for n in demo_province().nodes}
    names = sorted(found)
    breaks = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            breaks += sum(1 for _ in layer1(found[a], parties[a], found[b], parties[b]))
    for name in names:
        breaks += sum(1 for _ in layer2(found[name]))
    return breaks


class Pg:
    """A throw-away PostgreSQL schema for the node."""

    def __init__(self, url: str) -> None:
        self.admin = create_engine(url)
        self.schema = f"drill_{uuid.uuid4().hex[:10]}"
        sep = "&" if "?" in url else "?"
        self.url = f"{url}{sep}options=-csearch_path%3D{self.schema}"
        self.create()

    def create(self) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))

    def drop(self) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))


def drill(workdir: Path, node: str, extra: int, pg_url: str | None, keep: bool,
          log: Any = print) -> dict[str, Any]:
    times: dict[str, float] = {}
    started = time.perf_counter()
    if not (workdir / "nodes").is_dir():
        make_demo(workdir)
    if extra:
        extra_payments(workdir, extra)
    spec = next(n for n in demo_province().nodes if n.name == node)
    sqlite_file = node_db_path(workdir, spec)
    trust = TrustStore.from_directory(workdir / "trust")
    files = workdir / "backups"
    files.mkdir(exist_ok=True)
    pg = Pg(pg_url) if pg_url else None
    url = pg.url if pg else sqlite_url(sqlite_file)
    try:
        if pg:  # move the node onto PostgreSQL first: a restore of its SQLite backup
            with node_keys(workdir / "security", node) as keys:
                source = make_engine(sqlite_url(sqlite_file))
                backup(source, files / "seed.tar.gz", node=node, keys=keys,
                       now=datetime.now(UTC))
                source.dispose()
            target = make_engine(url)
            restore(files / "seed.tar.gz", target, trust)
            target.dispose()
        times["setup"] = time.perf_counter() - started
        log(f"set-up        {times['setup']:8.2f} s  ({'postgresql' if pg else 'sqlite'})")

        step = time.perf_counter()
        engine = make_engine(url)
        with node_keys(workdir / "security", node) as keys:
            first = backup(engine, files / f"{node}.tar.gz", node=node, keys=keys,
                           now=datetime.now(UTC))
        engine.dispose()
        times["backup"] = time.perf_counter() - step
        size = (files / f"{node}.tar.gz").stat().st_size
        log(f"backup        {times['backup']:8.2f} s  {first.rows} rows, {size} bytes")

        step = time.perf_counter()
        if pg:
            pg.drop()
            pg.create()
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
        times["destroy"] = time.perf_counter() - step
        log(f"destroy       {times['destroy']:8.2f} s")

        step = time.perf_counter()
        engine = make_engine(url)
        report = restore(files / f"{node}.tar.gz", engine, trust, require_signature=True)
        engine.dispose()
        times["restore"] = time.perf_counter() - step
        log(f"restore       {times['restore']:8.2f} s  (verify {report.timings['verify']:.2f} s, "
            f"load {report.timings['load']:.2f} s)")

        step = time.perf_counter()
        found = engines(workdir, node, url)
        try:
            checked, broken = audit.verify(found[node])
            breaks = reconcile(found)
            again = backup(found[node], files / f"{node}-again.tar.gz", node=node, keys=None,
                           now=datetime.now(UTC))
        finally:
            for e in found.values():
                e.dispose()
        same = {t.name: t.sm3 for t in again.tables} == {t.name: t.sm3 for t in first.tables}
        times["verify"] = time.perf_counter() - step
        log(f"verify        {times['verify']:8.2f} s  audit {checked} entries "
            f"{'intact' if broken is None else 'BROKEN'}, {breaks} reconciliation breaks, "
            f"digests {'identical' if same else 'DIFFER'}")
    finally:
        if pg and not keep:
            pg.drop()
    times["total"] = time.perf_counter() - started
    ok = broken is None and breaks == 0 and same and again.audit_seq == first.audit_seq
    return {"bench": "backup_drill", "engine": "postgresql" if pg else "sqlite", "node": node,
            "rows": first.rows, "audit_entries": checked, "breaks": breaks, "ok": ok,
            "seconds": {k: round(v, 3) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Workspace to use (a demo is made there when empty)")
    parser.add_argument("--node", default="finance")
    parser.add_argument("--extra", type=int, default=100, help="Extra direct payments")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL: drill the node there")
    parser.add_argument("--keep", action="store_true", help="Keep the PostgreSQL schema")
    args = parser.parse_args()
    workdir = args.workdir or Path("bench-drill-workspace")
    fresh = args.workdir is None
    try:
        result = drill(workdir, args.node, args.extra, args.pg, args.keep)
    finally:
        if fresh:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    if not result["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
