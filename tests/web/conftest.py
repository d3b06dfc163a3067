"""A demo province for the counter and security tests: one workspace per test session (the
key ceremony is the slow part), the payees registered and a quota issued to the Mangshi unit,
as after `guoku demo`. Helpers to sign in are in ``web_login``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web_login import BANK, FIN, PBOC, QUOTA, payment

from guoku import demo_flows as world
from guoku.flows import authorized_payment
from guoku.web.app import create_app
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.workspace import EmbeddedProvince, Workspace, create


@pytest.fixture(scope="session")
def counter_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = create(tmp_path_factory.mktemp("web") / "ws", datetime.now(UTC))
    province = EmbeddedProvince(ws)
    world.register_accounts(province)
    authorized_payment.issue_quota(province, payment("ED-WEB-1", QUOTA), FIN, BANK, PBOC)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def counter_ctx(counter_ws: Workspace) -> WebContext:
    return WebContext.over_workspace(counter_ws)


@pytest.fixture(scope="session")
def counter_app(counter_ctx: WebContext) -> FastAPI:
    return create_app(counter_ctx)


@pytest.fixture(scope="session")
def agent(counter_ws: Workspace) -> KeyAgent:
    return KeyAgent(counter_ws.security_dir, frozenset({"http://testserver"}))


@pytest.fixture
def client(counter_app: FastAPI) -> TestClient:
    """A fresh browser: its own cookie jar. Accepts JSON unless a test asks for HTML."""
    return TestClient(counter_app, follow_redirects=False)

