"""The service API for business systems: a direct payment entered, reviewed, sealed and sent by
finance's systems and accepted by the bank's, the receipts of an authorized payment, and every
refusal as a typed 4xx — separation of duties, tenant scope, tokens, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_fixtures import ADMINS, app_over, bearer, direct_payment, token, workspace

from guoku import demo_flows as world
from guoku.bank.paying import CorePayer
from guoku.domain.money import Amount
from guoku.flows import authorized_payment
from guoku.flows.desk import Desk
from guoku.flows.model import Payment
from guoku.library.service import VoucherLibrary
from guoku.store import api_tokens
from guoku.web.context import WebContext
from guoku.workspace import Workspace

C = world.COUNTY
DAY = datetime.now(UTC).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("api") / "ws")
    yield w
    w.close()


@pytest.fixture(scope="module")
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(app_over(ws)) as c:
        yield c


@pytest.fixture(scope="module")
def tokens(ws: Workspace) -> dict[str, dict[str, str]]:
    users = [f"fin-{C}-entry", f"fin-{C}-review", f"fin-{C}-seal", f"icbc-{C}-recv",
             f"icbc-{C}-entry", "fin-533102-entry", "fin-533102-recv"]
    return {u: bearer(token(ws, u)) for u in users}


class SharedPump:
    """The flows' province over the app's context: deliveries go through ``ctx.settle`` and
    its lock, never beside the app's own pump thread."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def library(self, party: str) -> VoucherLibrary:
        return self.ctx.library(party)

    def settle(self) -> None:
        self.ctx.settle()


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def issued(client: TestClient, t: dict[str, dict[str, str]], no: str) -> dict[str, Any]:
    """Entered, reviewed, sealed and sent by three of finance's service users."""
    row = ok(client.post("/api/v1/vouchers", json=direct_payment(no),
                         headers=t[f"fin-{C}-entry"]), 201)
    ok(client.post(f"/api/v1/vouchers/{row['id']}/check", headers=t[f"fin-{C}-review"]))
    ok(client.post(f"/api/v1/vouchers/{row['id']}/seal", headers=t[f"fin-{C}-seal"]))
    return ok(client.post(f"/api/v1/vouchers/{row['id']}/send", headers=t[f"fin-{C}-seal"]))


def bank_copy(client: TestClient, t: dict[str, dict[str, str]], no: str) -> dict[str, Any]:
    page = ok(client.get("/api/v1/received", params={"state": "received", "vt_code": "5201"},
                         headers=t[f"icbc-{C}-recv"]))
    return next(i for i in page["items"] if i["voucher_no"] == no)


def test_finance_systems_issue_a_direct_payment_and_the_bank_system_accepts_it(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    created = ok(client.post("/api/v1/vouchers", json=direct_payment("API0001"),
                             headers=tokens[f"fin-{C}-entry"]), 201)
    assert (created["state"], created["amount"], created["direction"]) == \
        ("draft", "1234.50", "out")
    vid = created["id"]
    assert ok(client.post(f"/api/v1/vouchers/{vid}/check",
                          headers=tokens[f"fin-{C}-review"]))["state"] == "checked"
    sealed = ok(client.post(f"/api/v1/vouchers/{vid}/seal", headers=tokens[f"fin-{C}-seal"]))
    assert sealed["sealed_by"] == f"fin-{C}-seal"
    sent = ok(client.post(f"/api/v1/vouchers/{vid}/send", headers=tokens[f"fin-{C}-seal"]))
    assert sent["state"] in ("sent", "delivered")

    copy = bank_copy(client, tokens, "API0001")
    accepted = ok(client.post(f"/api/v1/vouchers/{copy['id']}/accept",
                              headers=tokens[f"icbc-{C}-recv"]))
    assert accepted["state"] == "accepted"

    mine = ok(client.get(f"/api/v1/vouchers/{vid}", headers=tokens[f"fin-{C}-entry"]))
    assert mine["state"] == "accepted" and mine["amount"] == "1234.50"
    assert mine["header"]["PayAmt"] == "1234.50" and mine["stamps"] == ["1", "2"]
    assert mine["xml"].count("<Stamp No=") == 2
    xml = client.get(f"/api/v1/vouchers/{vid}/xml", headers=tokens[f"fin-{C}-entry"])
    assert xml.headers["content-type"].startswith("application/xml")
    assert xml.content == mine["xml"].encode()
    events = [e["event"] for e in ok(client.get(f"/api/v1/vouchers/{vid}/history",
                                                headers=tokens[f"fin-{C}-entry"]))]
    assert events[:4] == ["create", "check", "seal", "send"] and events[-1] == "accept"
    answers = ok(client.get(f"/api/v1/vouchers/{vid}/receipts",
                            headers=tokens[f"fin-{C}-entry"]))
    assert [e["event"] for e in answers["settlement"]][-1] == "accept"


def test_a_bank_system_returns_a_voucher_with_its_reason(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    vid = issued(client, tokens, "API0002")["id"]
    copy = bank_copy(client, tokens, "API0002")
    assert ok(client.post(f"/api/v1/vouchers/{copy['id']}/return", json={"reason": "账号有误"},
                          headers=tokens[f"icbc-{C}-recv"]))["state"] == "returned"
    mine = ok(client.get(f"/api/v1/vouchers/{vid}", headers=tokens[f"fin-{C}-entry"]))
    assert (mine["state"], mine["return_reason"]) == ("returned", "账号有误")


def test_the_entry_system_may_not_also_review_its_own_voucher(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    vid = ok(client.post("/api/v1/vouchers", json=direct_payment("API0003"),
                         headers=tokens[f"fin-{C}-entry"]), 201)["id"]
    body = client.post(f"/api/v1/vouchers/{vid}/check", headers=tokens[f"fin-{C}-entry"])
    assert body.status_code == 403
    assert body.json()["error"] == "PERMISSION_DENIED"


def test_a_token_of_another_county_neither_reads_nor_lists_the_voucher(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    vid = ok(client.post("/api/v1/vouchers", json=direct_payment("API0004"),
                         headers=tokens[f"fin-{C}-entry"]), 201)["id"]
    other = tokens["fin-533102-entry"]
    for path in (f"/api/v1/vouchers/{vid}", f"/api/v1/vouchers/{vid}/xml",
                 f"/api/v1/vouchers/{vid}/history", f"/api/v1/vouchers/{vid}/receipts"):
        refused = client.get(path, headers=other)
        assert refused.status_code == 404, path
        assert refused.json()["error"] == "NOT_FOUND"
    assert client.post(f"/api/v1/vouchers/{vid}/check",
                       headers=tokens["fin-533102-recv"]).status_code == 404
    listed = ok(client.get("/api/v1/vouchers", headers=other))
    assert all(i["admdiv"] == "533102" for i in listed["items"])
    assert "API0004" not in {i["voucher_no"] for i in listed["items"]}


def test_a_county_token_cannot_create_for_another_county(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    refused = client.post("/api/v1/vouchers", json=direct_payment("API0005"),
                          headers=tokens["fin-533102-entry"])
    assert refused.status_code == 403 and refused.json()["error"] == "PERMISSION_DENIED"


def test_missing_unknown_and_revoked_tokens_are_refused_with_401(
    ws: Workspace, client: TestClient,
) -> None:
    assert client.get("/api/v1/vouchers").status_code == 401
    assert client.get("/api/v1/vouchers", headers=bearer("gkt_not-a-token")).status_code == 401
    value = token(ws, f"fin-{C}-entry", "short-lived")
    assert client.get("/api/v1/whoami", headers=bearer(value)).json()["system"] == "short-lived"
    finance = ws.nodes["finance"].engine
    record = next(t for t in api_tokens.list_tokens(finance) if t.system == "short-lived")
    api_tokens.revoke(finance, ADMINS["finance"], record.id)
    refused = client.get("/api/v1/whoami", headers=bearer(value))
    assert refused.status_code == 401 and refused.json()["error"] == "UNAUTHENTICATED"
    assert refused.headers["www-authenticate"] == "Bearer"


def test_bad_input_is_a_typed_4xx_never_a_server_error(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    entry = tokens[f"fin-{C}-entry"]
    as_float = direct_payment("API0006")
    as_float["header"]["PayAmt"] = 1234.5
    cases: list[tuple[Any, int, str]] = [
        (as_float, 422, "REQUEST_INVALID"),
        ({**direct_payment("API0007"), "vt_code": "9999"}, 422, "UNKNOWN_VOUCHER_TYPE"),
        ({**direct_payment("API0008"), "receiver": "B-NOBODY"}, 404, "NOT_FOUND"),
        ({**direct_payment("API0009"), "extra": 1}, 422, "REQUEST_INVALID"),
    ]
    wrong_amount = direct_payment("API0010")
    wrong_amount["header"]["PayAmt"] = "1234.5"
    cases.append((wrong_amount, 422, "VALIDATION_ERROR"))
    for body, status, error in cases:
        answer = client.post("/api/v1/vouchers", json=body, headers=entry)
        assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    broken = client.post("/api/v1/vouchers", content=b"{not json", headers={
        **entry, "content-type": "application/json"})
    assert broken.status_code == 422
    draft = ok(client.post("/api/v1/vouchers", json=direct_payment("API0011"), headers=entry),
               201)
    illegal = client.post(f"/api/v1/vouchers/{draft['id']}/send", headers=tokens[f"fin-{C}-seal"])
    assert (illegal.status_code, illegal.json()["error"]) == (409, "ILLEGAL_TRANSITION")
    duplicate = client.post("/api/v1/vouchers", json=direct_payment("API0011"), headers=entry)
    assert (duplicate.status_code, duplicate.json()["error"]) == (409, "CONFLICT")
    assert client.get("/api/v1/vouchers", params={"amount_min": "12.5"},
                      headers=entry).status_code == 422


def test_query_filters_by_amount_strings_and_pages(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    entry = tokens[f"fin-{C}-entry"]
    for no, amount in (("APIQ01", "10.00"), ("APIQ02", "20.00"), ("APIQ03", "30.00")):
        ok(client.post("/api/v1/vouchers", json=direct_payment(no, amount), headers=entry), 201)
    page = ok(client.get("/api/v1/vouchers", headers=entry, params={
        "amount_min": "15.00", "amount_max": "30.00", "vt_code": "5201", "state": "draft"}))
    assert {i["voucher_no"] for i in page["items"]} == {"APIQ02", "APIQ03"}
    assert all(isinstance(i["amount"], str) for i in page["items"])
    first = ok(client.get("/api/v1/vouchers", headers=entry, params={"page_size": 1}))
    assert len(first["items"]) <= 1 and first["page_size"] == 1


def test_the_bank_system_reads_the_treasury_receipts_of_its_transfer_application(
    ws: Workspace, client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    province = SharedPump(client.app.state.ctx)  # type: ignore[attr-defined]
    world.register_accounts(province)
    desks = (Desk(f"F{C}", C, "fin"), Desk("U533103001", C, "unit"), Desk("B-ICBC", C, "icbc"),
             Desk("P530000", C, "pboc"))
    fin, unit, bank, pboc = desks

    def pay(no: str, amount: str) -> Payment:
        return Payment(C, no, DAY, "U533103001", "芒市教育体育局", world.SUPPLIER,
                       Amount.parse(amount), "购买教学用品", world._funding())

    authorized_payment.issue_quota(province, pay("APIE01", "500.00"), fin, bank, pboc)
    paid = authorized_payment.pay(province, pay("APIA01", "200.00"), unit, bank, pboc, fin,
                                  CorePayer(world._core(), world.CLEARING))
    assert paid.completed
    transfer = paid.vouchers["2301"]
    answers = ok(client.get(f"/api/v1/vouchers/{transfer.id}/receipts",
                            headers=tokens[f"icbc-{C}-entry"]))
    assert answers["voucher"]["vt_code"] == "2301"
    assert [r["vt_code"] for r in answers["receipts"]] == ["9301"]
    assert answers["receipts"][0]["state"] == "accepted"


def test_the_catalogue_names_every_field_a_create_needs(
    client: TestClient, tokens: dict[str, dict[str, str]],
) -> None:
    types = ok(client.get("/api/v1/catalogue", headers=tokens[f"fin-{C}-entry"]))
    assert len(types) == 28
    direct = ok(client.get("/api/v1/catalogue/5201", headers=tokens[f"fin-{C}-entry"]))
    required = {f["name"] for f in direct["fields"] if f["required"]}
    assert {"PayAmt", "PayeeAcctNo", "VoucherNo"} <= required
    assert required <= set(direct_payment("X")["header"]) | {"VtCode"}
