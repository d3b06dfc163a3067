"""The web apps' security layer: who is signed in, what they may do, and the headers.

Every route that shows or changes data depends on :func:`current_user` (or
:func:`require_posts`), and every form POST on :func:`check_csrf`. Tenant isolation is the
library's: every read goes through ``VoucherLibrary`` with the signed-in username, which sees
only its party's vouchers of its own admdiv and answers ``NotFound`` (404 here) for any other
id, so another tenant's ids cannot even be told apart from ids that do not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import URL

from guoku.domain.controls import Post
from guoku.domain.errors import NotFound
from guoku.store import repository as repo
from guoku.store.uow import UnitOfWork
from guoku.web import sessions
from guoku.web.context import WebContext, get_context

COOKIE: Final = "guoku_session"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"


@dataclass(frozen=True)
class WebUser:
    """The signed-in user, read afresh on every request (a revoked post takes effect now)."""

    username: str
    name: str
    party: str
    admdiv: str
    posts: frozenset[Post]
    node: str

    def holds(self, *posts: Post) -> bool:
        return bool(self.posts & set(posts))


class LoginRequired(Exception):
    """No live session: a page goes to the sign-in form, a JSON client gets 401."""


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def session_of(request: Request, ctx: WebContext) -> sessions.Session:
    parts = sessions.split_cookie(request.cookies.get(COOKIE))
    if parts is None or parts[0] not in ctx.nodes:
        raise LoginRequired()
    found = sessions.find(ctx.nodes[parts[0]].engine, parts[0], parts[1], ctx.clock())
    if found is None:
        raise LoginRequired()
    return found


def current_user(request: Request, ctx: Annotated[WebContext, Depends(get_context)]) -> WebUser:
    """FastAPI dependency: the user of the request's live session (else LoginRequired)."""
    session = session_of(request, ctx)
    try:
        with UnitOfWork(ctx.nodes[session.node].engine) as uow:
            user = repo.get_user(uow.conn, session.username)
    except NotFound:
        raise LoginRequired() from None
    if not user.active or user.party.code != session.party or user.admdiv.code != session.admdiv:
        raise LoginRequired()
    request.state.session = session
    web_user = WebUser(user.username, user.name, user.party.code, user.admdiv.code,
                       frozenset(g.post for g in user.grants), session.node)
    request.state.user = web_user
    return web_user


CurrentUser = Annotated[WebUser, Depends(current_user)]


def require_posts(*posts: Post) -> Callable[[WebUser], WebUser]:
    """A dependency admitting users who hold at least one of ``posts``; 403 for the others."""
    wanted = frozenset(posts)

    def dependency(user: CurrentUser) -> WebUser:
        if not user.posts & wanted:
            raise HTTPException(403, f"需要以下岗位之一：{'、'.join(sorted(wanted))}")
        return user

    return dependency


async def check_csrf(request: Request, user: CurrentUser) -> None:
    """Every state-changing form: the session's token, from the form or the header."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected: str = request.state.session.csrf_token
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "CSRF 校验失败：请刷新页面后重试")


def csrf_token(request: Request) -> str:
    """For templates: the hidden ``csrf_token`` field of every form."""
    session = getattr(request.state, "session", None)
    return "" if session is None else str(session.csrf_token)


def content_security_policy(key_agent_url: str) -> str:
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {key_agent_url}; frame-ancestors 'none'; form-action 'self'; "
            "base-uri 'none'; object-src 'none'")


def install(app: FastAPI, key_agent_url: str) -> None:
    """The headers on every response, and what LoginRequired becomes."""
    policy = content_security_policy(key_agent_url)

    @app.middleware("http")
    async def security_headers(request: Request,
                               call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers["Content-Security-Policy"] = policy
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if wants_html(request):
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target = URL("/login").include_query_params(next=here)
            response: Response = RedirectResponse(str(target), status_code=303)
        else:
            response = JSONResponse({"code": "LOGIN_REQUIRED", "message": "请先登录"}, 401)
        response.delete_cookie(COOKIE, path="/")
        return response
