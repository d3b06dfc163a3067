"""The counter end to end through HTTP: a payment entered, reviewed, sealed and sent by three
clerks of the Mangshi unit, accepted by the bank, its quota spent; a notice read, printed
(original, then 副本) and downloaded; and the entry form's live payee check."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from pdftext import pdf_text
from sqlalchemy import select
from web_login import BANK, COUNTY, sign_in

from guoku.domain.errors import NotFound
from guoku.security.sealing import VoucherVerifier
from guoku.store.tables import audit_log
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.workspace import Workspace
from guoku.xml.codec import from_xml

HTML = {"Accept": "text/html"}
UNIT = "U533103001"


def _quota_choice(page: str) -> str:
    marker = '<option value="'
    start = page.index(marker) + len(marker)
    return page[start:page.index('"', start)]


def _payment_form(client: TestClient, agent: KeyAgent, amount: str) -> dict[str, str]:
    csrf = sign_in(client, agent, f"unit-{COUNTY}-entry")
    page = client.get("/counter/payments/new", headers=HTML).text
    return {"csrf_token": csrf, "quota": _quota_choice(page),
            "payee_account": "2502010009200012345", "payee_name": "芒市文具有限公司",
            "payee_bank": "中国工商银行芒市支行", "amount": amount, "purpose": "购买教学用品",
            "payer_account": "53310300000000000001", "payer_name": "芒市教育体育局零余额账户",
            "payer_bank": "中国工商银行芒市支行", "exp_eco": "30201"}


def _act(client: TestClient, agent: KeyAgent, user: str, voucher_id: int, action: str) -> None:
    client.cookies.clear()
    csrf = sign_in(client, agent, user)
    answer = client.post(f"/counter/vouchers/{voucher_id}/{action}", data={"csrf_token": csrf})
    assert answer.status_code == 303, answer.text


def test_a_payment_goes_from_entry_to_accepted_through_three_clerks(
    client: TestClient, agent: KeyAgent, counter_ctx: WebContext,
) -> None:
    form = _payment_form(client, agent, "1,280.5")
    created = client.post("/counter/payments", data=form)
    assert created.status_code == 303
    voucher_id = int(created.headers["location"].rsplit("/", 1)[1])
    lib = counter_ctx.library(UNIT)
    row = lib.get(f"unit-{COUNTY}-entry", voucher_id)
    assert (row.state, row.amount_fen, row.receiver_party) == ("draft", 128050, "B-ICBC")
    header = from_xml(row.xml).header
    assert header["PayTypeCode"] == "12" and header["FundTypeCode"] == "1"
    assert lib.payee_check(f"unit-{COUNTY}-entry", voucher_id).passed  # type: ignore[union-attr]

    refused = client.post(f"/counter/vouchers/{voucher_id}/check",
                          data={"csrf_token": form["csrf_token"]})
    assert refused.status_code == 403  # the entry clerk holds no review post
    _act(client, agent, f"unit-{COUNTY}-review", voucher_id, "check")
    _act(client, agent, f"unit-{COUNTY}-seal", voucher_id, "seal")
    sealed = from_xml(lib.get(f"unit-{COUNTY}-seal", voucher_id).xml)
    assert len(sealed.stamps) == 2
    _act(client, agent, f"unit-{COUNTY}-seal", voucher_id, "send")

    bank = counter_ctx.library(BANK.party)
    copy = bank.find(BANK.receiver, "8202", row.st_year, row.voucher_no, 1, "in")
    VoucherVerifier(counter_ctx.workspace.trust).verify(  # type: ignore[union-attr]
        from_xml(copy.xml), counter_ctx.province.party(UNIT), counter_ctx.clock())
    bank.accept(BANK.receiver, copy.id)
    counter_ctx.settle()

    page = client.get(f"/counter/vouchers/{voucher_id}", headers=HTML).text
    assert "银行已受理" in page
    events = [e["event"] for e in lib.history(f"unit-{COUNTY}-seal", voucher_id)]
    assert events[:4] == ["create", "check", "seal", "send"] and "accept" in events
    home = client.get("/counter", headers=HTML).text
    assert "1,280.50" in home


def test_the_entry_form_checks_the_payee_account_live(client: TestClient,
                                                      agent: KeyAgent) -> None:
    sign_in(client, agent, f"unit-{COUNTY}-entry")
    known = client.get("/counter/payees/check", params={"account_no": "2502010009200012345"})
    assert known.json()["found"] and known.json()["passed"]
    assert known.json()["name"] == "芒市文具有限公司"
    wrong = client.get("/counter/payees/check", params={
        "account_no": "2502010009200012345", "name": "别的公司",
        "bank_name": "中国工商银行芒市支行"})
    assert not wrong.json()["passed"]
    assert "NAME_MISMATCH" in {p["code"] for p in wrong.json()["problems"]}
    unknown = client.get("/counter/payees/check", params={"account_no": "2502010009200099999"})
    assert not unknown.json()["found"] and not unknown.json()["passed"]


def test_an_amount_over_the_available_quota_is_refused_at_entry(
    client: TestClient, agent: KeyAgent,
) -> None:
    answer = client.post("/counter/payments", data=_payment_form(client, agent, "50000.01"),
                         headers=HTML)
    assert answer.status_code == 400 and "exceeds the available quota" in answer.text


def test_a_notice_is_read_printed_as_original_then_copy_and_downloaded(
    client: TestClient, agent: KeyAgent, counter_ctx: WebContext, counter_ws: Workspace,
) -> None:
    csrf = sign_in(client, agent, f"unit-{COUNTY}-recv")
    listing = client.get("/counter/notices", headers=HTML).text
    assert "财政授权支付额度到账通知书" in listing
    notice_id = int(listing.split('href="/counter/vouchers/')[1].split('"')[0])
    # The workspace is shared by the session (the browser test may have printed it already).
    before = counter_ctx.library(UNIT).get(f"unit-{COUNTY}-recv", notice_id).print_count
    first = client.post(f"/counter/vouchers/{notice_id}/print", data={"csrf_token": csrf})
    assert first.status_code == 200 and first.content.startswith(b"%PDF")
    text = pdf_text(first.content)
    assert "财政授权支付额度到账通知书" in text
    if before == 0:
        assert "正本" in text and "副本" not in text
    again = client.post(f"/counter/vouchers/{notice_id}/print", data={"csrf_token": csrf})
    assert "副本" in pdf_text(again.content)
    assert f"第{before + 2}次打印" in pdf_text(again.content)
    with counter_ws.nodes["finance"].engine.connect() as conn:
        prints = conn.execute(select(audit_log.c.detail).where(
            audit_log.c.action == "print", audit_log.c.actor == f"unit-{COUNTY}-recv",
            audit_log.c.voucher_ref.like("5105/%")).order_by(audit_log.c.seq)).scalars().all()
    assert [json.loads(d)["print_no"] for d in prints][-2:] == [before + 1, before + 2]
    xml = client.get(f"/counter/vouchers/{notice_id}/xml")
    assert xml.headers["content-type"].startswith("application/xml")
    assert from_xml(xml.content).vt_code == "5105"


def test_printing_needs_the_print_post(client: TestClient, agent: KeyAgent,
                                       counter_ctx: WebContext) -> None:
    csrf = sign_in(client, agent, f"unit-{COUNTY}-entry")
    notices = counter_ctx.library(UNIT).query(f"unit-{COUNTY}-entry").items
    notice = next(r for r in notices if r.vt_code == "5105")
    assert client.post(f"/counter/vouchers/{notice.id}/print",
                       data={"csrf_token": csrf}).status_code == 403


def test_another_unit_does_not_see_this_units_notices(counter_ctx: WebContext) -> None:
    lib = counter_ctx.library("U533102001")
    assert [r for r in lib.query("unit-533102-recv").items if r.vt_code == "5105"] == []
    mine = next(r for r in counter_ctx.library(UNIT).query(f"unit-{COUNTY}-recv").items
                if r.vt_code == "5105")
    try:
        lib.get("unit-533102-recv", mine.id)
    except NotFound:
        return
    raise AssertionError("a unit of another county read the notice")


def test_the_first_print_is_the_original_and_every_later_one_a_numbered_copy(
    counter_ctx: WebContext,
) -> None:
    """The layout alone (the counter test above may find the notice printed already)."""
    from datetime import UTC, datetime

    from guoku.web.printing import voucher_pdf

    row = next(r for r in counter_ctx.library(UNIT).query(f"unit-{COUNTY}-recv").items
               if r.vt_code == "5105")
    parties = {p.code: p.name for p in counter_ctx.province.parties}
    original = pdf_text(voucher_pdf(row, 1, "测试", datetime.now(UTC), parties))
    copy = pdf_text(voucher_pdf(row, 3, "测试", datetime.now(UTC), parties))
    assert "正本" in original and "副本" not in original
    assert "副本" in copy and "第3次打印" in copy and "正本" not in copy
