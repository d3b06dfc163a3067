"""Signing in as the sign-in page does — password, and the server's challenge signed by the
user's USB key (through :class:`~guoku.web.key_agent.KeyAgent`, without HTTP) — and the
Mangshi desks and payments the web tests use."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guoku import demo_flows as world
from guoku.domain.money import Amount
from guoku.flows.desk import Desk
from guoku.flows.model import Payment
from guoku.node.bootstrap import DEMO_PASSWORD, DEMO_SECRETS
from guoku.store.tables import audit_log, login_attempts
from guoku.web.key_agent import KeyAgent

COUNTY = world.COUNTY
UNIT = Desk("U533103001", COUNTY, "unit")
FIN, BANK, PBOC = (Desk(f"F{COUNTY}", COUNTY, "fin"), Desk("B-ICBC", COUNTY, "icbc"),
                   Desk("P530000", COUNTY, "pboc"))
QUOTA = "50000.00"


def payment(no: str, amount: str) -> Payment:
    day = datetime.now(UTC).astimezone().strftime("%Y%m%d")
    return Payment(COUNTY, no, day, UNIT.party, "芒市教育体育局", world.SUPPLIER,
                   Amount.parse(amount), "购买教学用品", world._funding())


def sign_in(client: TestClient, agent: KeyAgent, username: str,
            password: str = DEMO_PASSWORD, pin: str = DEMO_SECRETS.user_pin) -> str:
    """Sign in as the page does; returns the session's CSRF token (read from a form)."""
    answer = client.post("/login", data=login_form(client, agent, username, password, pin))
    assert answer.status_code == 303, answer.text
    return csrf_of(client)


def login_form(client: TestClient, agent: KeyAgent, username: str,
               password: str = DEMO_PASSWORD, pin: str = DEMO_SECRETS.user_pin,
               key_user: str | None = None) -> dict[str, str]:
    challenge = client.post("/login/challenge", data={"username": username}).json()["challenge"]
    signed = agent.sign(key_user or username, pin, challenge)
    return {"username": username, "password": password, "challenge": challenge,
            "certificate": base64.b64encode(signed.certificate).decode(),
            "signature": base64.b64encode(signed.signature).decode()}


def csrf_of(client: TestClient) -> str:
    html = client.get("/counter", headers={"Accept": "text/html"}).text
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def refusals(engine: Engine, username: str) -> list[tuple[str, str]]:
    """The user's refused sign-ins, oldest first: (the attempt's time as recorded in
    ``login_attempts``, the reason the audit chain gives)."""
    with engine.connect() as conn:
        failed = conn.execute(select(login_attempts.c.at).where(
            login_attempts.c.username == username, login_attempts.c.ok.is_(False))
            .order_by(login_attempts.c.id)).scalars().all()
        audited = conn.execute(select(audit_log.c.at, audit_log.c.detail).where(
            audit_log.c.actor == username, audit_log.c.action == "web.login",
            audit_log.c.outcome == "refused").order_by(audit_log.c.seq)).all()
    assert list(failed) == [row.at for row in audited]
    return [(row.at, json.loads(row.detail)["reason"]) for row in audited]
