"""locust users for ``bench/web_load.py`` — run only by the ``locust`` command, in its own
process (locust patches the standard library with gevent when imported: never import this
module from guoku, the benchmarks' runner or the test suite).

Sessions and tokens come from the environment, prepared by ``web_load.py``:
``GUOKU_LOAD_SESSIONS`` (JSON list of {cookie, csrf} of signed-in counter clerks) and
``GUOKU_LOAD_TOKEN`` (a service-API bearer token of a finance entry clerk).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from datetime import UTC, datetime
from typing import Any

from locust import HttpUser, between, task

SESSIONS: list[dict[str, str]] = json.loads(os.environ.get("GUOKU_LOAD_SESSIONS", "[]"))
TOKEN = os.environ.get("GUOKU_LOAD_TOKEN", "")
PAYMENT: dict[str, str] = json.loads(os.environ.get("GUOKU_LOAD_PAYMENT", "{}"))
API_VOUCHER: dict[str, Any] = json.loads(os.environ.get("GUOKU_LOAD_API_VOUCHER", "{}"))
_numbers = itertools.count(1)
_lock = threading.Lock()
_QUOTA = re.compile(r'name="quota"[^>]*>\s*<option value="([^"]+)"')


def _next_no(prefix: str) -> str:
    with _lock:
        return f"{prefix}{os.getpid() % 1000:03d}{next(_numbers):06d}"


class CounterClerk(HttpUser):
    """A budget unit's entry clerk at the self-service counter (自助柜面)."""

    weight = 3
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        session = SESSIONS[hash(id(self)) % len(SESSIONS)]
        self.client.cookies.set("guoku_session", session["cookie"])
        self.csrf = session["csrf"]
        self.html = {"Accept": "text/html"}
        form = self.client.get("/counter/payments/new", headers=self.html,
                               name="/counter/payments/new").text
        found = _QUOTA.search(form)
        self.quota = found.group(1) if found else ""

    @task(3)
    def home(self) -> None:
        self.client.get("/counter", headers=self.html)

    @task(3)
    def vouchers(self) -> None:
        self.client.get("/counter/vouchers", headers=self.html)

    @task(2)
    def notices(self) -> None:
        self.client.get("/counter/notices", headers=self.html)

    @task(1)
    def entry_form(self) -> None:
        self.client.get("/counter/payments/new", headers=self.html)

    @task(2)
    def submit_payment(self) -> None:
        data = {**PAYMENT, "quota": self.quota, "csrf_token": self.csrf}
        with self.client.post("/counter/payments", data=data, headers=self.html,
                              allow_redirects=False, catch_response=True) as answer:
            if answer.status_code != 303:
                answer.failure(f"payment not entered: {answer.status_code}")


class BusinessSystem(HttpUser):
    """A finance business system on the service API: create a draft, then query."""

    weight = 1
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {TOKEN}"

    @task(1)
    def create(self) -> None:
        body = json.loads(json.dumps(API_VOUCHER))
        body["header"]["VoucherNo"] = _next_no("L")
        body["header"]["VouDate"] = datetime.now(UTC).strftime("%Y%m%d")
        self.client.post("/api/v1/vouchers", json=body)

    @task(2)
    def query(self) -> None:
        self.client.get("/api/v1/vouchers", params={"vt_code": "5201", "page_size": 20},
                        name="/api/v1/vouchers?query")
