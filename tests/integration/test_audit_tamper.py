"""`guoku audit verify` finds an edited, a deleted and a reordered audit row, on both engines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, delete, select, update
from typer.testing import CliRunner

from guoku.bootstrap import open_engine
from guoku.cli import app
from guoku.library.admin import install
from guoku.province import demo_province
from guoku.store.engine import sqlite_url
from guoku.store.tables import audit_log

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "node.db")
    url: str = request.getfixturevalue("pg_schema_url")
    return url


def _seeded(url: str) -> Engine:
    """A finance node after install: one audit entry per user plus the install itself."""
    engine = open_engine(url)
    spec = demo_province()
    install(engine, spec, spec.nodes[0])
    return engine


def _verify(url: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["audit", "verify", "--db", url, "--json"])
    return result.exit_code, json.loads(result.stdout)["default"]


def _edit(conn: Connection) -> None:
    conn.execute(update(audit_log).where(audit_log.c.seq == 5).values(actor="mallory"))


def _delete(conn: Connection) -> None:
    conn.execute(delete(audit_log).where(audit_log.c.seq == 5))


def _reorder(conn: Connection) -> None:
    """Swap the contents of rows 5 and 6 (keeping seq), as if their order were rewritten."""
    rows = {r.seq: r._asdict() for r in conn.execute(
        select(audit_log).where(audit_log.c.seq.in_([5, 6]))
    )}
    for seq, other in ((5, 6), (6, 5)):
        values = {k: v for k, v in rows[other].items() if k != "seq"}
        conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(**values))


def _delete_tail(conn: Connection) -> None:
    last = conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq.desc())).first()
    assert last is not None
    conn.execute(delete(audit_log).where(audit_log.c.seq == last.seq))


def test_an_untouched_chain_verifies(db_url: str) -> None:
    engine = _seeded(db_url)
    code, report = _verify(db_url)
    engine.dispose()
    assert code == 0 and report["status"] == "ok" and int(str(report["entries"])) > 10


@pytest.mark.parametrize(
    ("tamper", "position"),
    [(_edit, 5), (_delete, 5), (_reorder, 5), (_delete_tail, None)],
    ids=["edited", "deleted", "reordered", "tail-deleted"],
)
def test_a_tampered_chain_is_reported_with_its_position(
    db_url: str, tamper: Callable[[Connection], None], position: int | None
) -> None:
    engine = _seeded(db_url)
    with engine.begin() as conn:
        total = len(conn.execute(select(audit_log.c.seq)).all())
        tamper(conn)
    engine.dispose()
    code, report = _verify(db_url)
    assert code == 1 and report["status"] == "broken"
    assert report["position"] == (position if position is not None else total)
