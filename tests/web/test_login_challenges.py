"""Sign-in challenges live in the node database, so each is accepted once by whichever web
process receives it: a replay is refused by this app and by a second app instance over the same
databases, an expired challenge is refused, and when many requests race for one challenge only
one wins — on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from web_login import login_form, refusals

from guoku.bootstrap import open_engine
from guoku.library.ports import Clock, system_clock
from guoku.node.bootstrap import DEMO_SECRETS
from guoku.store.engine import make_engine
from guoku.web import sessions
from guoku.web.app import create_app
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.web.keylogin import CHALLENGE_TTL_S, Challenge, KeyLoginFailed
from guoku.web.login import redeem_challenge
from guoku.web.security import COOKIE
from guoku.workspace import Workspace

ORIGIN = "http://testserver"
RACERS = 8


def another_instance(ws: Workspace, clock: Clock = system_clock) -> FastAPI:
    """A second web app as another process would run it: its own state and its own
    connections (engines) to the same node databases."""
    nodes = {name: replace(node, engine=make_engine(
        node.engine.url.render_as_string(hide_password=False)))
        for name, node in ws.nodes.items()}
    return create_app(WebContext(ws.province, nodes, None, clock, ws))


def browser(app: FastAPI, address: str) -> TestClient:
    """A client of its own address, so these refusals count against no other test's client."""
    return TestClient(app, follow_redirects=False, client=(address, 4000))


def test_a_challenge_is_accepted_once_whichever_instance_receives_it(
    counter_app: FastAPI, counter_ws: Workspace, counter_ctx: WebContext, agent: KeyAgent,
) -> None:
    user = "unit-533102-seal"
    first = browser(counter_app, "10.9.8.1")
    second = browser(another_instance(counter_ws), "10.9.8.2")
    form = login_form(first, agent, user)  # issued by the first instance
    assert second.post("/login", data=form).status_code == 303  # used at the second
    assert COOKIE in second.cookies
    for replayed_at in (first, second):
        answer = replayed_at.post("/login", data=form)
        assert answer.status_code == 401 and "set-cookie" not in answer.headers
    reasons = [reason for _, reason in refusals(counter_ctx.engine("U533102001"), user)]
    assert reasons[-2:] == ["the sign-in challenge was used already"] * 2


def test_an_expired_challenge_is_refused(
    counter_app: FastAPI, counter_ws: Workspace, counter_ctx: WebContext, agent: KeyAgent,
) -> None:
    user = "fin-533102-seal"
    later = another_instance(
        counter_ws, lambda: datetime.now(UTC) + timedelta(seconds=CHALLENGE_TTL_S + 1))
    client = browser(counter_app, "10.9.8.3")
    form = login_form(client, agent, user)
    assert browser(later, "10.9.8.4").post("/login", data=form).status_code == 401
    reasons = [reason for _, reason in refusals(counter_ctx.engine("F533102"), user)]
    assert reasons[-1] == "the sign-in challenge has expired; sign in again"
    # the refusal used nothing up: the same challenge, in time, still signs in
    assert client.post("/login", data=form).status_code == 303


def test_a_challenge_the_server_never_issued_is_refused(
    counter_app: FastAPI, counter_ctx: WebContext, agent: KeyAgent,
) -> None:
    user = "abc-533102-recv"
    client = browser(counter_app, "10.9.8.5")
    form = login_form(client, agent, user)
    made_up = Challenge.new(ORIGIN, user, datetime.now(UTC)).text  # well-formed, never issued
    signed = agent.sign(user, DEMO_SECRETS.user_pin, made_up)  # and truly signed by the key
    forged = {**form, "challenge": made_up,
              "certificate": base64.b64encode(signed.certificate).decode(),
              "signature": base64.b64encode(signed.signature).decode()}
    assert client.post("/login", data=forged).status_code == 401
    reasons = [reason for _, reason in refusals(counter_ctx.engine("B-ABC"), user)]
    assert reasons[-1] == "the sign-in challenge was not issued here"
    assert client.post("/login", data=form).status_code == 303


def _race(make_engine_: Callable[[], Engine]) -> list[str | None]:
    """``RACERS`` requests, each on its own connection pool, consume one challenge at once."""
    now = datetime.now(UTC)
    issuer = make_engine_()
    issued = Challenge.new(ORIGIN, "someone", now)
    sessions.record_challenge(issuer, issued.nonce, "someone", ORIGIN, now, CHALLENGE_TTL_S)
    engines = [make_engine_() for _ in range(RACERS)]
    start = threading.Barrier(RACERS)
    results: list[str | None] = [""] * RACERS

    def consume(i: int) -> None:
        start.wait()
        results[i] = sessions.consume_challenge(engines[i], issued.nonce, "someone", ORIGIN,
                                                now)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in (issuer, *engines):
        engine.dispose()
    return results


def _exactly_one_wins(results: list[str | None]) -> None:
    assert results.count(None) == 1
    assert sorted(r for r in results if r is not None) == (
        ["the sign-in challenge was used already"] * (RACERS - 1))


def test_racing_requests_consume_a_challenge_once_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    open_engine(url).dispose()
    _exactly_one_wins(_race(lambda: make_engine(url)))


@pytest.mark.postgres
def test_racing_requests_consume_a_challenge_once_on_postgres(pg_schema_url: str) -> None:
    open_engine(pg_schema_url).dispose()
    _exactly_one_wins(_race(lambda: make_engine(pg_schema_url)))


def test_the_challenge_must_name_this_user_and_site(counter_ctx: WebContext) -> None:
    engine, now = counter_ctx.engine("U533102001"), datetime.now(UTC)
    issued = Challenge.new(ORIGIN, "unit-533102-entry", now)
    sessions.record_challenge(engine, issued.nonce, issued.username, ORIGIN, now,
                              CHALLENGE_TTL_S)
    for origin, user in (("http://evil.example", "unit-533102-entry"),
                         (ORIGIN, "unit-533102-review")):
        with pytest.raises(KeyLoginFailed, match="another user or site"):
            redeem_challenge(engine, issued.text, origin, user, now)
    redeem_challenge(engine, issued.text, ORIGIN, "unit-533102-entry", now)


def test_a_flood_of_challenge_requests_is_capped_and_stores_nothing_for_unknown_names(
    counter_app: FastAPI, counter_ctx: WebContext,
) -> None:
    from sqlalchemy import func, select

    from guoku.store.tables import login_challenges

    client = browser(counter_app, "10.9.8.9")
    user = "pboc-533102-recv"
    answers = [client.post("/login/challenge", data={"username": user}).status_code
               for _ in range(sessions.MAX_OPEN_CHALLENGES + 3)]
    assert answers[:sessions.MAX_OPEN_CHALLENGES] == [200] * sessions.MAX_OPEN_CHALLENGES
    assert set(answers[sessions.MAX_OPEN_CHALLENGES:]) == {429}
    engines = {id(n.engine): n.engine for n in counter_ctx.nodes.values()}.values()

    def stored(name: str) -> int:
        total = 0
        for engine in engines:
            with engine.connect() as conn:
                total += conn.execute(select(func.count()).select_from(login_challenges).where(
                    login_challenges.c.username == name)).scalar_one()
        return total

    assert stored(user) == sessions.MAX_OPEN_CHALLENGES
    for n in range(20):
        assert client.post("/login/challenge",
                           data={"username": f"nobody-{n}"}).status_code == 200
    assert all(stored(f"nobody-{n}") == 0 for n in range(20))
