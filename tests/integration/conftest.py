"""A whole province for integration tests, on SQLite files or on PostgreSQL schemas.

The key ceremony runs once per test session (it is the slow part); each test gets a copy of the
security material and fresh databases.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from guoku.province import demo_province
from guoku.security.provision import provision
from guoku.workspace import DEMO_SECRETS, Workspace, open_workspace
from tests.conftest import pg_url_with_schema


@pytest.fixture(scope="session")
def security_material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security-master")
    provision(root / "security", demo_province(), DEMO_SECRETS, datetime.now(UTC))
    return root / "security"


class Clock:
    """A clock the test moves by hand (time limits, fallback waits, replay windows)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ws(tmp_path: Path, security_material: Path, clock: Clock) -> Iterator[Workspace]:
    """The demo province on SQLite files in ``tmp_path``, on the test's hand-moved clock."""
    shutil.copytree(security_material, tmp_path / "security")
    workspace = open_workspace(tmp_path, DEMO_SECRETS, demo_province(), clock=clock)
    yield workspace
    workspace.close()


def _schemas(pg_url: str, names: list[str]) -> tuple[dict[str, str], list[str]]:
    admin = create_engine(pg_url)
    created = []
    urls = {}
    with admin.begin() as conn:
        for name in names:
            schema = f"t_{uuid.uuid4().hex[:10]}_{name.replace('-', '_')}"
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            created.append(schema)
            urls[name] = pg_url_with_schema(pg_url, schema)
    admin.dispose()
    return urls, created


@pytest.fixture(params=["sqlite", "postgres"])
def province(
    request: pytest.FixtureRequest, tmp_path: Path, security_material: Path
) -> Iterator[Workspace]:
    """Four nodes of the demo province, wired by the embedded network, on the given engine."""
    shutil.copytree(security_material, tmp_path / "security")
    spec = demo_province()
    urls: dict[str, str] | None = None
    schemas: list[str] = []
    pg_url = ""
    if request.param == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        urls, schemas = _schemas(pg_url, [n.name for n in spec.nodes])
    ws = open_workspace(tmp_path, DEMO_SECRETS, spec, urls=urls)
    try:
        yield ws
    finally:
        ws.close()
        if schemas:
            admin = create_engine(pg_url)
            with admin.begin() as conn:
                for schema in schemas:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
