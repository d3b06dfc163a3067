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
