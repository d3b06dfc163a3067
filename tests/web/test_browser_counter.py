"""The counter in a real browser (Debian's chromium driven by Playwright): three clerks of the
Mangshi unit sign in with password and USB key through the local key agent, enter, review,
seal and send an authorized payment; the bank accepts it; the print clerk prints it and the
quota arrival notice to PDF; the monitor shows the payment's trail through both nodes.
Screenshots go to tests/web/artifacts/.

Never ``playwright install``: the browser is the system's (installed here when missing).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import uvicorn
from pdftext import pdf_text
from playwright.sync_api import Browser, Page, expect, sync_playwright
from web_login import BANK, COUNTY

from guoku.node.bootstrap import DEMO_PASSWORD, DEMO_SECRETS
from guoku.web.app import create_app
from guoku.web.context import WebContext
from guoku.web.key_agent import KeyAgent
from guoku.workspace import Workspace

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
UNIT = "U533103001"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium (and CJK fonts, so the pages render): installed when missing."""
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        if apt is None:
            pytest.fail("no /usr/bin/chromium and no apt-get to install it")
        subprocess.run([apt, "update"], check=True)
        subprocess.run([apt, "install", "-y", "chromium", "fonts-noto-cjk"], check=True)
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(counter_ws: Workspace, counter_ctx: WebContext) -> Iterator[str]:
    """The app on a free port (uvicorn in a thread) and the key agent for its origin."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    agent, agent_url = KeyAgent(counter_ws.security_dir, frozenset({base})).start()
    server = uvicorn.Server(uvicorn.Config(create_app(counter_ctx, agent_url), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=10)
    agent.shutdown()
    agent.server_close()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900},
                                  accept_downloads=True)
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base: str, username: str, then: str) -> None:
    """The sign-in page: password, and the USB key's PIN for the local key agent."""
    page.context.clear_cookies()
    page.goto(f"{base}{then}")
    expect(page).to_have_url(f"{base}/login?{urlencode({'next': then})}")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_label("U盾口令").fill(DEMO_SECRETS.user_pin)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{base}{then}")


def test_a_counter_payment_from_entry_to_accepted(
    live: str, page: Page, counter_ctx: WebContext,
) -> None:
    sign_in(page, live, f"unit-{COUNTY}-entry", "/counter/payments/new")
    shot(page, "01-payment-form")
    page.get_by_label("收款人账号").fill("2502010009200012345")
    page.get_by_role("button", name="查询账户信息").click()
    expect(page.locator("#payee-check")).to_contain_text("账户校验通过")
    expect(page.get_by_label("收款人全称")).to_have_value("芒市文具有限公司")
    page.get_by_label("金额（元）").fill("3200.00")
    page.get_by_label("用途").fill("购买体育器材")
    page.get_by_label("付款人账号（零余额账户）").fill("53310300000000000001")
    page.get_by_label("付款人全称").fill("芒市教育体育局零余额账户")
    page.get_by_label("付款人开户银行").fill("中国工商银行芒市支行")
    shot(page, "02-payment-filled")
    page.get_by_role("button", name="提交（录入）").click()
    expect(page.locator("#voucher-state")).to_have_text("待审核")
    voucher_url = page.url.removeprefix(live)
    voucher_id = int(voucher_url.rsplit("/", 1)[1])

    for clerk, button, state in ((f"unit-{COUNTY}-review", "审核", "已审核待盖章"),
                                 (f"unit-{COUNTY}-seal", "盖章", "已盖章待发送")):
        sign_in(page, live, clerk, voucher_url)
        page.get_by_role("button", name=button, exact=True).click()
        expect(page.locator("#voucher-state")).to_have_text(state)
    page.get_by_role("button", name="发送", exact=True).click()
    expect(page.locator("#voucher-state")).to_have_text(re.compile("已发送|银行已收到"))

    sent = counter_ctx.library(UNIT).get(f"unit-{COUNTY}-seal", voucher_id)
    bank = counter_ctx.library(BANK.party)
    copy = bank.find(BANK.receiver, "8202", sent.st_year, sent.voucher_no, 1, "in")
    bank.accept(BANK.receiver, copy.id)  # the bank's own system accepts it
    counter_ctx.settle()
    page.reload()
    expect(page.locator("#voucher-state")).to_have_text("银行已受理")
    shot(page, "03-payment-accepted")
    page.goto(f"{live}/counter")
    expect(page.get_by_role("heading", name="授权支付额度")).to_be_visible()
    expect(page.locator("body")).to_contain_text("3,200.00")
    shot(page, "04-counter-home")

    sign_in(page, live, f"unit-{COUNTY}-recv", voucher_url)
    pdf = print_to_pdf(page, "payment.pdf")
    assert "财政授权支付凭证" in pdf_text(pdf.read_bytes())
    show_pdf(page, pdf, "07-printed-payment")

    sign_in(page, live, "reconciler", f"/monitor/vouchers?no={sent.voucher_no}")
    page.get_by_role("link", name=sent.voucher_no).first.click()
    expect(page.get_by_role("heading", name="流转记录", exact=False)).to_be_visible()
    steps = page.locator("#steps + table")
    for actor in (f"unit-{COUNTY}-entry", f"unit-{COUNTY}-review", f"unit-{COUNTY}-seal",
                  BANK.receiver):
        expect(steps).to_contain_text(actor)
    shot(page, "08-monitor-trail")


def test_a_notice_is_printed_to_pdf(live: str, page: Page) -> None:
    sign_in(page, live, f"unit-{COUNTY}-recv", "/counter/notices")
    shot(page, "05-notices")
    page.get_by_role("link", name="ED-WEB-1").first.click()
    expect(page.locator("h1")).to_contain_text("财政授权支付额度到账通知书")
    pdf = print_to_pdf(page, "notice.pdf")
    assert "财政授权支付额度到账通知书" in pdf_text(pdf.read_bytes())
    show_pdf(page, pdf, "06-printed-notice")


def print_to_pdf(page: Page, name: str) -> Path:
    """The voucher page's print button: a counted, audited print, downloaded as PDF."""
    with page.expect_download() as download:
        page.locator("#do-print").click()
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / name
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    return pdf


def show_pdf(page: Page, pdf: Path, name: str) -> None:
    """The browser's own PDF viewer, for a screenshot of the printed voucher."""
    viewer = page.context.new_page()
    viewer.set_viewport_size({"width": 1366, "height": 1000})
    viewer.goto(pdf.resolve().as_uri())
    viewer.wait_for_timeout(1500)
    shot(viewer, name)
    viewer.close()
