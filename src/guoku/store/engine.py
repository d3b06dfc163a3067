"""Engines for the embedded default (SQLite file) and production (PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

DEFAULT_DB_ENV = "GUOKU_DB_URL"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def resolve_url(url: str | None, default_path: Path | None = None) -> str:
    """``--db`` wins, then ``GUOKU_DB_URL``, then a SQLite file at ``default_path``."""
    if url:
        return normalize(url)
    env = os.environ.get(DEFAULT_DB_ENV)
    if env:
        return normalize(env)
    return sqlite_url(default_path or Path("guoku.db"))


def normalize(url: str) -> str:
    """Accept ``postgresql://`` and use the psycopg 3 driver for it."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from pysqlite so BEGIN IMMEDIATE below is what actually runs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    """Writers serialize at BEGIN, so read-then-write (audit head, quotas) never interleaves."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")
