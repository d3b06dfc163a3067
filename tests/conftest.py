"""Shared fixtures: real PostgreSQL and RabbitMQ on this machine.

A test that needs a server is skipped only when the server is unreachable AND ``CI`` is unset;
under ``CI=true`` an unreachable server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("GUOKU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("GUOKU_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} at {host}:{port} is unreachable and CI is set", pytrace=False)
    pytest.skip(f"{name} at {host}:{port} is unreachable (CI unset)")


@pytest.fixture(scope="session")
def pg_url() -> str:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    return PG_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require_server("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL of a fresh PostgreSQL schema for one test (usable by subprocesses); dropped after."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_url_with_schema(pg_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pg_url_with_schema(url: str, schema: str) -> str:
    """A URL whose connections use ``schema`` (for subprocesses such as the CLI)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"
