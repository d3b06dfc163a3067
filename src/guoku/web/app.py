"""The web application: sign-in, the self-service counter, and (from their own modules) the
monitor, the operator console, the service API and /metrics — one FastAPI app over one
:class:`~guoku.web.context.WebContext`.

HTML routes are left out of the schema, so ``/openapi.json`` describes the service API alone.
No interactive docs: they load scripts from a CDN, which the content security policy forbids.
Over a demo workspace, a background thread pumps the in-process transport every
``PUMP_INTERVAL_S`` so a voucher sent from the counter reaches the bank's node by itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Final

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from guoku.domain.errors import Conflict, GuokuError, IllegalTransition, NotFound, PermissionDenied
from guoku.domain.parties import PartyKind
from guoku.web import api, console, counter, login, metrics, monitor
from guoku.web.context import PUMP_INTERVAL_S, WebContext
from guoku.web.key_agent import DEFAULT_PORT
from guoku.web.security import CurrentUser, install, wants_html
from guoku.web.templates import STATIC_DIR, page

log = logging.getLogger(__name__)

DEFAULT_KEY_AGENT_URL: Final = f"http://127.0.0.1:{DEFAULT_PORT}"
ROUTERS: Final = (login.router, counter.router, api.router, monitor.router, console.router,
                  metrics.router)
"""Every router of the app; another app's module adds its ``router`` here, one line."""
STATUS: Final = ((NotFound, 404), (PermissionDenied, 403), (IllegalTransition, 409),
                 (Conflict, 409))
"""A GuokuError's HTTP status (first match); any other is the client's mistake: 400."""


def _pump(ctx: WebContext, stop: threading.Event) -> None:
    while not stop.wait(PUMP_INTERVAL_S):
        try:
            ctx.settle()
        except GuokuError:
            log.exception("delivering in-process messages failed; retrying")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: WebContext = app.state.ctx
    stop = threading.Event()
    thread = None
    if ctx.pump is not None:
        thread = threading.Thread(target=_pump, args=(ctx, stop), name="web-pump", daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)


def status_of(exc: GuokuError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


async def guoku_error(request: Request, exc: Exception) -> Response:
    """A refused call: the same ``code`` as the CLI and the library, as a page or as JSON."""
    assert isinstance(exc, GuokuError)
    status = status_of(exc)
    if wants_html(request):
        return page(request, "error.html", status_code=status, status=status,
                    title=HTTPStatus(status).phrase, message=exc.message, code=exc.code)
    return JSONResponse(exc.to_dict(), status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if wants_html(request):
        return page(request, "error.html", status_code=exc.status_code, status=exc.status_code,
                    title=HTTPStatus(exc.status_code).phrase, message=str(exc.detail), code="")
    return await http_exception_handler(request, exc)


def create_app(ctx: WebContext, key_agent_url: str = DEFAULT_KEY_AGENT_URL) -> FastAPI:
    app = FastAPI(title="guoku 电子凭证库服务接口", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.state.key_agent_url = key_agent_url
    install(app, key_agent_url)
    app.middleware("http")(metrics.record_request)
    app.add_exception_handler(GuokuError, guoku_error)
    app.add_exception_handler(HTTPException, http_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def home(request: Request, user: CurrentUser) -> Response:
        if ctx.province.party(user.party).kind is PartyKind.UNIT:
            return RedirectResponse("/counter", status_code=303)
        return page(request, "home.html")

    return app
