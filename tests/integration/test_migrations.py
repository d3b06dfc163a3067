"""The Alembic migrations build exactly the schema ``guoku.store.tables`` declares, and go down
and up again — on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect

from guoku.store.migrate import downgrade, head_revision, upgrade
from guoku.store.tables import metadata


def _diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def test_sqlite_migrations_match_the_tables(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(engine)
    assert _diff(engine) == []
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert _diff(engine) == []
    assert head_revision() is not None


@pytest.mark.postgres
def test_postgres_migrations_match_the_tables(pg_schema_url: str) -> None:
    engine = create_engine(pg_schema_url)
    try:
        upgrade(engine)
        assert _diff(engine) == []
        downgrade(engine, "base")
        upgrade(engine)
        assert _diff(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_keeps_sealed_vouchers_uncompressed(pg_schema_url: str) -> None:
    """Migration 0010: the sealed XML is stored out of line without a compression attempt."""
    from sqlalchemy import text

    engine = create_engine(pg_schema_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            storage = dict(conn.execute(text(
                "SELECT a.attrelid::regclass::text || '.' || a.attname, a.attstorage "
                "FROM pg_attribute a WHERE a.attname IN ('xml', 'payload', 'body') "
                "AND a.attrelid::regclass::text IN ('vouchers', 'outbox', 'dead_letters')"
            )).all())
        assert storage == {"vouchers.xml": "e", "outbox.payload": "e", "dead_letters.body": "e"}
    finally:
        engine.dispose()
