"""What the service-API tests share: a demo province, an app serving the API over it, and
tokens issued the way an administrator issues them (``guoku api-token issue``)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from guoku import demo_flows as world
from guoku.domain.money import Amount
from guoku.flows.model import DIRECT, Payment, payment_details, payment_header
from guoku.store import api_tokens
from guoku.web import api, metrics
from guoku.web.context import WebContext
from guoku.workspace import Workspace, create

ADMINS = {"finance": "admin-finance", "pboc": "admin-pboc", "bank-icbc": "admin-icbc",
          "bank-abc": "admin-abc"}


def workspace(path: Path) -> Workspace:
    return create(path, datetime.now(UTC))


def app_over(ws: Workspace) -> FastAPI:
    """The real app when the web foundation is there; else the API and metrics routers alone."""
    ctx = WebContext.over_workspace(ws)
    try:
        module = importlib.import_module("guoku.web.app")
    except ModuleNotFoundError:
        module = None
    if module is not None and hasattr(module, "create_app"):
        app: FastAPI = module.create_app(ctx)
        return app
    return bare_app(ctx)


def bare_app(ctx: WebContext | None) -> FastAPI:
    """The API and metrics routers alone; ``ctx`` may be attached later (``app.state.ctx``)."""
    app = FastAPI(title="guoku")
    app.state.ctx = ctx
    app.middleware("http")(metrics.record_request)
    app.include_router(api.router)
    app.include_router(metrics.router)
    return app


def token(ws: Workspace, username: str, system: str = "test-system") -> str:
    """A token for ``username``, issued by the administrator of the user's node."""
    for name, node in ws.nodes.items():
        if any(u.username == username for u in ws.province.users_of(node.spec)):
            issued, _ = api_tokens.issue(node.engine, ADMINS[name], system, username)
            return issued
    raise KeyError(username)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def direct_payment(no: str, amount: str = "1234.50") -> dict[str, Any]:
    """The JSON a finance system sends to create a 5201 direct payment of Mangshi."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    p = Payment(world.COUNTY, no, day, "U533103001", "芒市教育体育局", world.SUPPLIER,
                Amount.parse(amount), "购买教学用品", world._funding())
    return {"vt_code": "5201", "receiver": "B-ICBC",
            "header": payment_header(p, "5201", DIRECT), "details": payment_details(p)}
