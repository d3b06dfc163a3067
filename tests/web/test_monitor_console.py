"""The monitoring platform and the operator console, signed in as the demo's operators.

The monitor follows an authorized payment from the unit's 8202 through the bank's 2301 to the
treasury's 9301 receipts across three nodes, counts and charts it, and flags a voucher past its
time limit; a county administrator sees only their county. The console's forms each call the
service the CLI calls — grant, seal authorization, account review, dead-letter replay, day
close, reconciliation — and refuse a form without its CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from service_fixtures import workspace
from sqlalchemy import insert, select, update
from web_login import login_form

from guoku import demo_flows as world
from guoku.bank.paying import CorePayer
from guoku.domain.controls import Post
from guoku.domain.money import Amount
from guoku.flows import authorized_payment
from guoku.flows.desk import Desk
from guoku.flows.model import Payment
from guoku.library.admin import Administration
from guoku.library.ports import iso
from guoku.store import repository as repo
from guoku.store.accounts import AccountDirectory, EntryStatus
from guoku.store.tables import audit_log, dead_letters, reconciliation_runs, vouchers
from guoku.web.app import create_app
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.workspace import EmbeddedProvince, Workspace

C = world.COUNTY
DAY = datetime.now(UTC).strftime("%Y%m%d")
FIN, UNIT = Desk(f"F{C}", C, "fin"), Desk("U533103001", C, "unit")
BANK, PBOC = Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")
HTML = {"Accept": "text/html"}


def _payment(no: str, amount: str) -> Payment:
    return Payment(C, no, DAY, UNIT.party, "芒市教育体育局", world.SUPPLIER, Amount.parse(amount),
                   "购买教学用品", world._funding())


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("monitor") / "ws")
    province = EmbeddedProvince(w)
    world.register_accounts(province)
    authorized_payment.issue_quota(province, _payment("MQ001", "900.00"), FIN, BANK, PBOC)
    paid = authorized_payment.pay(province, _payment("MA001", "300.00"), UNIT, BANK, PBOC, FIN,
                                  CorePayer(world._core(), world.CLEARING))
    assert paid.completed
    yield w
    w.close()


@pytest.fixture(scope="module")
def app_and_agent(ws: Workspace) -> tuple[TestClient, KeyAgent]:
    app = create_app(WebContext.over_workspace(ws))
    return TestClient(app, follow_redirects=False), KeyAgent(ws.security_dir,
                                                             frozenset({"http://testserver"}))


def signed_in(app_and_agent: tuple[TestClient, KeyAgent], username: str) -> tuple[TestClient,
                                                                                  str]:
    """A fresh browser signed in as ``username``, and its CSRF token."""
    shared, agent = app_and_agent
    client = TestClient(shared.app, follow_redirects=False)
    assert client.post("/login", data=login_form(client, agent, username)).status_code == 303
    html = client.get("/monitor" if username != "fin-533103-review" else "/console",
                      headers=HTML).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return client, found.group(1)


def _id(ws: Workspace, node: str, vt_code: str, voucher_no_end: str) -> int:
    with ws.nodes[node].engine.connect() as conn:
        return int(conn.execute(select(vouchers.c.id).where(
            vouchers.c.vt_code == vt_code, vouchers.c.voucher_no.endswith(voucher_no_end))
            .order_by(vouchers.c.id)).scalars().first() or 0)


def test_the_trail_follows_a_payment_across_the_unit_bank_and_treasury_nodes(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    client, _ = signed_in(app_and_agent, "admin-finance")
    page = client.get(f"/monitor/trail/finance/{_id(ws, 'finance', '8202', 'MA001')}",
                      headers=HTML)
    assert page.status_code == 200, page.text
    text = page.text
    for number in ("MA001", "2301-MA001", "9301-B-ICBC-2301-MA001", "9301-F533103-2301-MA001"):
        assert number in text
    for node in ("finance", "bank-icbc", "pboc"):
        assert f"<td>{node}</td>" in text
    for actor in ("unit-533103-entry", "unit-533103-review", "icbc-533103-recv",
                  "pboc-533103-recv"):
        assert actor in text
    assert "MQ001" not in text  # the quota notice is another business


def test_the_overview_counts_charts_and_flags_a_voucher_past_its_time_limit(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    stale = iso(datetime.now(UTC) - timedelta(days=3))
    voucher_id = _id(ws, "bank-icbc", "2301", "MA001")
    with ws.nodes["bank-icbc"].engine.begin() as conn:
        conn.execute(update(vouchers).where(vouchers.c.id == voucher_id)
                     .values(state="delivered", updated_at=stale))
    try:
        client, _ = signed_in(app_and_agent, "admin-finance")
        text = client.get("/monitor", headers=HTML).text
    finally:
        with ws.nodes["bank-icbc"].engine.begin() as conn:
            conn.execute(update(vouchers).where(vouchers.c.id == voucher_id)
                         .values(state="accepted"))
    stuck = text[text.index('id="stuck"'):text.index('id="errors"')]
    assert "2301-MA001" in stuck and "已送达" in stuck
    assert text.count('role="img"') == 2 and "已签收" in text and "8202 财政授权支付凭证" in text


def test_a_county_administrator_sees_only_their_county(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    Administration(ws.nodes["finance"].engine).grant("admin-finance", "fin-533102-review",
                                                     Post.ADMIN)
    client, _ = signed_in(app_and_agent, "fin-533102-review")
    found = client.get("/monitor/vouchers", params={"no": "MA001"}, headers=HTML).text
    assert "/monitor/trail/" not in found and "没有符合条件的凭证" in found
    voucher_id = _id(ws, "finance", "8202", "MA001")
    assert client.get(f"/monitor/trail/finance/{voucher_id}", headers=HTML).status_code == 404
    assert client.get("/monitor", headers=HTML).status_code == 200
    assert 'id="dead"' not in client.get("/monitor", headers=HTML).text


def test_a_clerk_without_a_monitor_post_is_refused(
    app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    shared, agent = app_and_agent
    client = TestClient(shared.app, follow_redirects=False)
    client.post("/login", data=login_form(client, agent, "icbc-533103-entry"))
    assert client.get("/monitor", headers=HTML).status_code == 403
    assert client.get("/console", headers=HTML).status_code == 403


def test_a_console_form_needs_its_csrf_token_and_grants_a_post(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    client, csrf = signed_in(app_and_agent, "admin-finance")
    form = {"username": "fin-533103-recv", "post": "print", "vt_code": "5201"}
    assert client.post("/console/users/grant", data=form).status_code == 403
    assert client.post("/console/users/grant",
                       data={**form, "csrf_token": csrf}).status_code == 303
    with ws.nodes["finance"].engine.connect() as conn:
        grants = repo.get_user(conn, "fin-533103-recv").grants
    assert any(g.post is Post.PRINT and g.vt_code == "5201" for g in grants)


def test_a_seal_authorization_is_made_and_revoked_on_the_signing_server(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    client, csrf = signed_in(app_and_agent, "admin-finance")
    service = next(s for s in ws.signing if "F533103" in {p.code for p in s.parties()})
    before = {a.id for a in service.authorizations()}
    es_id = service.seals()[0].es_id
    made = client.post("/console/seals/authorize", data={
        "csrf_token": csrf, "es_id": es_id, "post": "seal", "valid_from": "2026-01-01",
        "valid_to": "2026-12-31"})
    assert made.status_code == 303, made.text
    (new,) = [a for a in service.authorizations() if a.id not in before]
    assert client.post(f"/console/seals/{new.id}/revoke",
                       data={"csrf_token": csrf}).status_code == 303
    assert next(a for a in service.authorizations() if a.id == new.id).revoked_at


def test_a_reviewer_approves_an_account_change_in_the_console(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    directory = AccountDirectory(ws.nodes["finance"].engine)
    entry = directory.enter_new(f"fin-{C}-entry", C, "2502010009200055555", "芒市新书店",
                                "中国工商银行芒市支行")
    client, csrf = signed_in(app_and_agent, "fin-533103-review")
    assert "2502010009200055555" in client.get("/console", headers=HTML).text
    assert client.post(f"/console/accounts/{entry.id}/approve",
                       data={"csrf_token": csrf}).status_code == 303
    found = directory.lookup(C, "2502010009200055555")
    assert found is not None and found.status is EntryStatus.ACTIVE


def test_a_dead_letter_is_replayed_and_the_replay_audited(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    engine = ws.nodes["bank-icbc"].engine
    with engine.begin() as conn:
        letter = conn.execute(insert(dead_letters).values(
            envelope_id="E-DEAD", queue="guoku.bank-icbc", body=b"not an envelope",
            reason="delivery limit", attempts=5, dead_at=iso(datetime.now(UTC)),
        )).inserted_primary_key[0]
    client, csrf = signed_in(app_and_agent, "admin-finance")
    assert client.post(f"/console/dead-letters/bank-icbc/{letter}/replay",
                       data={"csrf_token": csrf}).status_code == 303
    with engine.connect() as conn:
        assert conn.execute(select(dead_letters.c.replayed_at).where(
            dead_letters.c.id == letter)).scalar()
        assert "mq.replay" in conn.execute(select(audit_log.c.action)).scalars().all()
    again = client.post(f"/console/dead-letters/bank-icbc/{letter}/replay",
                        data={"csrf_token": csrf}, headers=HTML)
    assert again.status_code == 409


def test_day_close_and_a_reconciliation_run_from_the_console(
    ws: Workspace, app_and_agent: tuple[TestClient, KeyAgent],
) -> None:
    client, csrf = signed_in(app_and_agent, "admin-finance")
    closed = client.post("/console/day-close", data={
        "csrf_token": csrf, "bank": "B-ICBC", "county": C, "day": DAY})
    assert closed.status_code == 303, closed.text
    assert _id(ws, "bank-icbc", "2205", DAY + "-1") > 0  # 授权支付日报表, fund type 1
    reconciler, token = signed_in(app_and_agent, "reconciler")
    ran = reconciler.post("/console/reconciliation/run",
                          data={"csrf_token": token, "day": DAY, "layers": "12"})
    assert ran.status_code == 303, ran.text
    with ws.nodes["finance"].engine.connect() as conn:
        run = conn.execute(select(reconciliation_runs)).all()[-1]
    assert (run.started_by, run.layers, run.scope) == ("reconciler", "12", DAY)
