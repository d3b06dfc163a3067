"""``guoku mq dead-letters`` on a node database, and ``guoku node run``'s option checks.

Replaying through a real broker is in tests/integration/test_amqp_transport.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner, Result

from guoku.bootstrap import open_engine
from guoku.cli import mq, node
from guoku.domain.errors import Conflict, NotFound
from guoku.store.engine import sqlite_url
from guoku.store.tables import dead_letters

runner = CliRunner()
ENV = {"COLUMNS": "200"}


def mq_cli(*args: str | Path) -> Result:
    return runner.invoke(mq.app, [str(a) for a in args], env=ENV)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich tables fit the terminal; make it wide whatever runs the tests."""
    monkeypatch.setattr(mq.console, "width", 200)


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, Engine]:
    url = sqlite_url(tmp_path / "node.db")
    return url, open_engine(url)


def add_letter(engine: Engine, body: bytes, replayed_at: str | None = None) -> int:
    with engine.begin() as conn:
        result = conn.execute(insert(dead_letters).values(
            envelope_id="env-1", queue="guoku.node.pboc", body=body,
            reason="delivery_limit in guoku.node.pboc", attempts=6,
            dead_at="2026-01-02T03:04:05.000000Z", replayed_at=replayed_at,
        ))
        return int(result.inserted_primary_key[0])


def test_list_shows_every_dead_letter_and_pending_hides_the_replayed(
    db: tuple[str, Engine],
) -> None:
    url, engine = db
    add_letter(engine, b"<MOF>one</MOF>")
    add_letter(engine, b"<MOF>two</MOF>", replayed_at="2026-01-03T00:00:00.000000Z")
    everything = json.loads(mq_cli("dead-letters", "list", "--db", url, "--json").output)
    assert [d["id"] for d in everything["dead_letters"]] == [1, 2]
    assert everything["dead_letters"][0]["attempts"] == 6
    assert everything["dead_letters"][0]["size"] == len(b"<MOF>one</MOF>")
    pending = json.loads(mq_cli("dead-letters", "list", "--db", url, "--json",
                                "--pending").output)
    assert [d["id"] for d in pending["dead_letters"]] == [1]
    text = mq_cli("dead-letters", "list", "--db", url).output
    assert "dead letters (2)" in text and "delivery_limit in guoku.node.pboc" in text


def test_show_gives_the_reason_the_digest_and_the_raw_body(
    db: tuple[str, Engine], tmp_path: Path,
) -> None:
    url, engine = db
    letter = add_letter(engine, b"not an envelope")
    out = tmp_path / "body.bin"
    result = mq_cli("dead-letters", "show", str(letter), "--db", url, "--json", "--out", out)
    document = json.loads(result.output)
    assert document["head"] is None
    assert base64.b64decode(document["body_base64"]) == b"not an envelope"
    assert len(document["sm3"]) == 64
    assert out.read_bytes() == b"not an envelope"
    text = mq_cli("dead-letters", "show", str(letter), "--db", url).output
    assert "(not an envelope)" in text and "env-1" in text


def test_show_of_an_unknown_id_is_not_found(db: tuple[str, Engine]) -> None:
    url, _ = db
    result = mq_cli("dead-letters", "show", "99", "--db", url)
    assert isinstance(result.exception, NotFound)


def test_replaying_twice_needs_force(db: tuple[str, Engine]) -> None:
    url, engine = db
    letter = add_letter(engine, b"<MOF/>", replayed_at="2026-01-03T00:00:00.000000Z")
    result = mq_cli("dead-letters", "replay", str(letter), "--db", url,
                    "--broker", "amqp://guest:guest@127.0.0.1:1/")
    assert isinstance(result.exception, Conflict)


def test_node_run_needs_a_broker_and_a_home(tmp_path: Path) -> None:
    result = runner.invoke(node.app, ["run", "--party", "finance", "--home", str(tmp_path)],
                           env={"GUOKU_BROKER_URL": ""})
    assert result.exit_code == 2 and "--broker" in result.output
    result = runner.invoke(node.app, ["run", "--party", "finance", "--broker", "amqp://x/",
                                      "--home", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "--home" in result.output
