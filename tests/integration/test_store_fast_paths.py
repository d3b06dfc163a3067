"""The store's fast paths keep their promises on both engines: the party cache never outlives a
rolled-back insert, and audit entries kept for one multi-row insert per transaction roll back
with their savepoint and chain exactly as one append at a time would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select

from guoku.domain.errors import NotFound
from guoku.domain.parties import AdmDiv, Party, PartyKind
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.engine import make_engine
from guoku.store.migrate import upgrade
from guoku.store.tables import audit_log

AT = "2026-11-23T09:00:00.000000Z"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated node database on each engine."""
    url = (f"sqlite:///{tmp_path}/node.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


def test_a_party_added_in_a_rolled_back_transaction_is_not_remembered(engine: Engine) -> None:
    with engine.begin() as conn:
        repo.add_admdiv(conn, AdmDiv("533103"), "芒市")
    party = Party("B-TEST", PartyKind.BANK, "测试银行", AdmDiv("533103"))
    with engine.connect() as conn, conn.begin() as tx:
        repo.add_party(conn, party)
        assert repo.get_party(conn, "B-TEST") == party  # seen inside, never cached
        tx.rollback()
    with engine.connect() as conn, pytest.raises(NotFound):
        repo.get_party(conn, "B-TEST")
    with engine.begin() as conn:
        repo.add_party(conn, party)
    with engine.connect() as conn:
        assert repo.get_party(conn, "B-TEST") == party
        assert repo.get_party(conn, "B-TEST") is repo.get_party(conn, "B-TEST")  # cached now


def _append(conn: Connection, actor: str) -> None:
    audit.append(conn, admdiv="533103", at=AT, actor=actor, action="test")


def test_batched_audit_entries_roll_back_with_their_savepoint(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin(), audit.batched(conn):
        _append(conn, "kept-1")
        savepoint = conn.begin_nested()
        _append(conn, "dropped")
        savepoint.rollback()
        _append(conn, "kept-2")
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 0
    with engine.connect() as conn:
        actors = conn.execute(select(audit_log.c.actor).order_by(audit_log.c.seq)).scalars()
        assert list(actors) == ["kept-1", "kept-2"]
    count, broken = audit.verify(engine)
    assert (count, broken) == (2, None)


def test_a_batch_that_fails_writes_no_entry_and_the_next_one_chains_on(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.connect() as conn, conn.begin(), \
            audit.batched(conn):
        _append(conn, "lost")
        raise RuntimeError("the work failed")
    with engine.connect() as conn, conn.begin(), audit.batched(conn):
        for i in range(5):
            _append(conn, f"n{i}")
    assert audit.verify(engine) == (5, None)
