"""`guoku api-token issue|list|revoke` over a workspace: the token is printed once, only its
hash is kept, it works until revoked, and only an administrator issues or revokes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from service_fixtures import app_over, bearer, workspace
from sqlalchemy import select
from typer.testing import CliRunner

from guoku.cli import app as cli
from guoku.store.tables import api_tokens, audit_log
from guoku.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("tokens") / "ws")
    yield w
    w.close()


def run(*args: str) -> dict[str, object] | list[dict[str, object]]:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    data: dict[str, object] | list[dict[str, object]] = json.loads(result.stdout)
    return data


def test_a_token_is_issued_listed_used_and_revoked(ws: Workspace) -> None:
    workdir = str(ws.workdir)
    issued = run("api-token", "issue", "bank-core", "--user", "icbc-533103-recv",
                 "--admin", "admin-icbc", "--workdir", workdir, "--json")
    assert isinstance(issued, dict)
    value = str(issued["token"])
    assert (issued["party"], issued["admdiv"]) == ("B-ICBC", "533103")
    with ws.nodes["bank-icbc"].engine.connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalars().all()
        actions = conn.execute(select(audit_log.c.action)).scalars().all()
    assert value not in stored and len(stored) == 1 and "api_token.issue" in actions
    listed = run("api-token", "list", "--workdir", workdir, "--json")
    assert [(t["node"], t["system"]) for t in listed if isinstance(t, dict)] == \
        [("bank-icbc", "bank-core")]
    with TestClient(app_over(ws)) as client:
        assert client.get("/api/v1/whoami", headers=bearer(value)).json()["username"] == \
            "icbc-533103-recv"
        run("api-token", "revoke", str(issued["id"]), "--node", "bank-icbc", "--admin",
            "admin-icbc", "--workdir", workdir, "--json")
        assert client.get("/api/v1/whoami", headers=bearer(value)).status_code == 401


def test_only_an_administrator_issues_tokens(ws: Workspace) -> None:
    result = runner.invoke(cli, ["api-token", "issue", "x", "--user", "icbc-533103-recv",
                                 "--admin", "icbc-533103-entry", "--workdir",
                                 str(ws.workdir)])
    assert result.exit_code != 0
    assert "not an administrator" in str(result.exception)
