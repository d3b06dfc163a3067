"""Each security promise of the web apps, tried the way an attacker would: another county's
clerk asking for a voucher by id, a form without (or with a wrong) CSRF token, a forged or
ended session, password guessing, a stolen or replayed key signature, and the headers."""

from __future__ import annotations

import secrets
from datetime import timedelta
from itertools import count

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web_login import login_form, payment, sign_in

from guoku.flows.model import AUTHORIZED, payment_details, payment_header
from guoku.node.bootstrap import DEMO_PASSWORD
from guoku.store.repository import VoucherRow
from guoku.web import sessions
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.web.security import COOKIE

HTML = {"Accept": "text/html"}
_numbers = count(1)


@pytest.fixture
def draft(counter_ctx: WebContext) -> VoucherRow:
    """A fresh authorized payment voucher of the Mangshi unit, entered, not yet reviewed."""
    p = payment(f"SEC{next(_numbers):04d}{secrets.token_hex(2)}", "10.00")
    return counter_ctx.library("U533103001").create(
        "unit-533103-entry", "8202", payment_header(p, "8202", AUTHORIZED),
        payment_details(p), receiver="B-ICBC")


def test_a_clerk_of_another_county_gets_404_for_a_voucher_id(
    client: TestClient, agent: KeyAgent, draft: VoucherRow,
) -> None:
    csrf = sign_in(client, agent, "unit-533102-review")
    assert client.get(f"/counter/vouchers/{draft.id}").status_code == 404
    assert client.get(f"/counter/vouchers/{draft.id}/xml").status_code == 404
    refused = client.post(f"/counter/vouchers/{draft.id}/check", data={"csrf_token": csrf})
    assert refused.status_code == 404
    assert f'/counter/vouchers/{draft.id}"' not in client.get("/counter/vouchers",
                                                              headers=HTML).text


def test_a_finance_clerk_of_the_same_county_cannot_read_the_units_voucher(
    client: TestClient, agent: KeyAgent, draft: VoucherRow,
) -> None:
    sign_in(client, agent, "fin-533103-review")
    assert client.get(f"/counter/vouchers/{draft.id}").status_code == 404


def test_the_owner_county_reads_it(client: TestClient, agent: KeyAgent,
                                   draft: VoucherRow) -> None:
    sign_in(client, agent, "unit-533103-review")
    page = client.get(f"/counter/vouchers/{draft.id}", headers=HTML)
    assert page.status_code == 200 and draft.voucher_no in page.text


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(
    client: TestClient, agent: KeyAgent, draft: VoucherRow, counter_ctx: WebContext,
) -> None:
    csrf = sign_in(client, agent, "unit-533103-review")
    url = f"/counter/vouchers/{draft.id}/check"
    assert client.post(url).status_code == 403
    assert client.post(url, data={"csrf_token": "x" + csrf[1:]}).status_code == 403
    assert client.post(url, headers={"X-CSRF-Token": csrf[:-1]}).status_code == 403
    assert counter_ctx.library("U533103001").get("unit-533103-review", draft.id).state == "draft"
    assert client.post(url, data={"csrf_token": csrf}).status_code == 303
    assert counter_ctx.library("U533103001").get("unit-533103-review", draft.id).state == "checked"


def test_a_forged_session_cookie_is_sent_to_sign_in(client: TestClient) -> None:
    for forged in ("finance." + secrets.token_urlsafe(32), "nosuchnode.abc", "garbage"):
        client.cookies.set(COOKIE, forged)
        page = client.get("/counter", headers=HTML)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fcounter"
        assert client.get("/counter/vouchers").status_code == 401


def test_a_session_ended_by_logout_is_dead_for_a_copied_cookie(
    client: TestClient, agent: KeyAgent, counter_app: FastAPI,
) -> None:
    csrf = sign_in(client, agent, "unit-533103-entry")
    copied = client.cookies[COOKIE]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    thief = TestClient(counter_app, follow_redirects=False)
    thief.cookies.set(COOKIE, copied)
    assert thief.get("/counter").status_code == 401


def test_an_expired_session_is_refused(client: TestClient, agent: KeyAgent,
                                       counter_ctx: WebContext) -> None:
    sign_in(client, agent, "unit-533103-entry")
    node, token = client.cookies[COOKIE].split(".")
    engine, now = counter_ctx.nodes[node].engine, counter_ctx.clock()
    assert sessions.find(engine, node, token, now) is not None
    assert sessions.find(engine, node, token, now + timedelta(seconds=sessions.IDLE_S + 1)) is None


def test_a_post_the_user_does_not_hold_is_403(client: TestClient, agent: KeyAgent) -> None:
    sign_in(client, agent, "unit-533103-review")
    assert client.get("/counter/payments/new").status_code == 403


def test_password_guessing_is_stopped_after_five_failures(counter_app: FastAPI,
                                                          agent: KeyAgent) -> None:
    client = TestClient(counter_app, follow_redirects=False, client=("10.9.9.1", 4000))
    for _ in range(sessions.MAX_USER_FAILURES):
        form = login_form(client, agent, "unit-533102-entry", password="wrong")
        assert client.post("/login", data=form).status_code == 401
    right = login_form(client, agent, "unit-533102-entry")
    assert client.post("/login", data=right).status_code == 429


def test_one_client_guessing_many_users_is_stopped(counter_app: FastAPI, agent: KeyAgent) -> None:
    client = TestClient(counter_app, follow_redirects=False, client=("10.9.9.2", 4000))
    for i in range(sessions.MAX_CLIENT_FAILURES):
        assert client.post("/login", data={"username": f"nobody-{i}", "password": "x"}
                           ).status_code == 401
    right = login_form(client, agent, "unit-533103-seal")
    assert client.post("/login", data=right).status_code == 429


def test_a_password_without_the_key_signature_is_refused(client: TestClient) -> None:
    form = {"username": "unit-533103-entry", "password": DEMO_PASSWORD}
    assert client.post("/login", data=form).status_code == 401
    assert COOKIE not in client.cookies


def test_someone_elses_key_is_refused(client: TestClient, agent: KeyAgent) -> None:
    form = login_form(client, agent, "unit-533103-entry", key_user="unit-533103-review")
    assert client.post("/login", data=form).status_code == 401


def test_a_challenge_signed_once_cannot_be_replayed(client: TestClient, agent: KeyAgent) -> None:
    form = login_form(client, agent, "unit-533103-recv")
    assert client.post("/login", data=form).status_code == 303
    other = TestClient(client.app, follow_redirects=False)
    assert other.post("/login", data=form).status_code == 401


def test_pages_carry_the_security_headers_and_the_cookie_its_flags(
    client: TestClient, agent: KeyAgent,
) -> None:
    form = login_form(client, agent, "unit-533103-entry")
    answer = client.post("/login", data=form)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    page = client.get("/counter", headers=HTML)
    h = page.headers
    assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["referrer-policy"] == "same-origin" and h["cache-control"] == "no-store"
    assert client.get("/login").headers["x-frame-options"] == "DENY"


def test_next_never_leaves_the_site(client: TestClient, agent: KeyAgent) -> None:
    form = {**login_form(client, agent, "unit-533103-entry"), "next": "//evil.example/x"}
    assert client.post("/login", data=form).headers["location"] == "/"


def test_the_published_schema_holds_the_service_api_only(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths and all(p.startswith("/api/") for p in paths)
