"""Sign-in and sign-out: password, then the USB key's signature over a server challenge.

Every failure looks the same to the client (one message, status 401) so the form tells an
attacker nothing about which half failed or whether the user exists; the audit log and the
``login_attempts`` table record the reason. Too many failures answer 429 before any password
is checked (:mod:`guoku.web.sessions`).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import Engine

from guoku.domain.errors import GuokuError
from guoku.library.admin import check_password
from guoku.province import UserSpec
from guoku.security.certs import TrustStore
from guoku.security.sealing import VoucherVerifier
from guoku.web import sessions
from guoku.web.context import WebContext, get_context
from guoku.web.keylogin import (
    CHALLENGE_TTL_S,
    Challenge,
    KeyLoginFailed,
    KeySignature,
    verify_key_signature,
)
from guoku.web.security import COOKIE, check_csrf
from guoku.web.templates import page

router = APIRouter(include_in_schema=False)
Ctx = Annotated[WebContext, Depends(get_context)]
FAILED = "用户名、密码或U盾验证未通过"


def origin_of(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def user_engine(ctx: WebContext, username: str) -> tuple[UserSpec | None, Engine]:
    """The user's record and the node database that holds the user, their challenges, their
    sign-in attempts and sessions (an unknown name: the first node's, so it looks the same)."""
    spec = ctx.user_spec(username)
    if spec is not None:
        return spec, ctx.engine(spec.party)
    return None, next(iter(ctx.nodes.values())).engine


def redeem_challenge(engine: Engine, text: str, origin: str, username: str,
                     now: datetime) -> None:
    """The challenge was issued for this user and site, is fresh, and this call used it up
    (no other request, in this process or another, can use it again) — else KeyLoginFailed."""
    challenge = Challenge.parse(text)
    challenge.require_for(origin, username)
    refused = sessions.consume_challenge(engine, challenge.nonce, username, origin, now)
    if refused is not None:
        raise KeyLoginFailed(refused)


def trust_of(ctx: WebContext, party: str) -> TrustStore:
    """The trust anchors the party's node verifies seals with (CA roots and CRLs)."""
    if ctx.workspace is not None:
        return ctx.workspace.trust
    verifier = ctx.library(party).verifier
    if not isinstance(verifier, VoucherVerifier):
        raise KeyLoginFailed("this node has no trust store to check USB keys against")
    return verifier.trust


def safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect through ``next``)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return page(request, "login.html", next=safe_next(next),
                agent_url=request.app.state.key_agent_url)


@router.post("/login/challenge")
def challenge(request: Request, ctx: Ctx,
              username: Annotated[str, Form(max_length=64)]) -> Response:
    now = ctx.clock()
    try:
        issued = Challenge.new(origin_of(request), username, now)
    except KeyLoginFailed as exc:
        return JSONResponse({"code": exc.code, "message": exc.message}, 400)
    spec, engine = user_engine(ctx, username)
    if spec is None:
        # Nothing stored for a name no node knows: its sign-in fails like any other, and a
        # flood of made-up names cannot fill the table.
        return JSONResponse({"challenge": issued.text})
    if not sessions.record_challenge(engine, issued.nonce, username, issued.origin, now,
                                     CHALLENGE_TTL_S):
        return JSONResponse({"code": "TOO_MANY_CHALLENGES",
                             "message": "too many open sign-in challenges; wait a minute"}, 429)
    return JSONResponse({"challenge": issued.text})


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLoginFailed("the key's answer is not base64") from None


@router.post("/login")
def login(
    request: Request, ctx: Ctx,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    challenge: Annotated[str, Form(max_length=512)] = "",
    certificate: Annotated[str, Form(max_length=8192)] = "",
    signature: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    now = ctx.clock()
    client = request.client.host if request.client else "unknown"
    engines = list({id(n.engine): n.engine for n in ctx.nodes.values()}.values())
    spec, engine = user_engine(ctx, username)

    def refuse(status: int, message: str) -> Response:
        return page(request, "login.html", status_code=status, error=message,
                    next=safe_next(next), agent_url=request.app.state.key_agent_url)

    if sessions.blocked(engines, username, client, now):
        return refuse(429, "尝试次数过多，请十五分钟后再试")
    try:
        if spec is None or not check_password(password, sessions.password_hash(engine,
                                                                                username)):
            raise KeyLoginFailed("wrong user name or password")
        redeem_challenge(engine, challenge, origin_of(request), username, now)
        verify_key_signature(trust_of(ctx, spec.party), challenge,
                             KeySignature(_b64(certificate), _b64(signature)), username,
                             spec.party, now)
    except GuokuError as exc:
        sessions.record_attempt(engine, username, client, False, now,
                                spec.admdiv if spec else "000000", exc.message)
        return refuse(401, FAILED)
    sessions.record_attempt(engine, username, client, True, now, spec.admdiv)
    node = ctx.province.node_of(spec.party).name
    cookie, _ = sessions.start(engine, node, username, spec.party, spec.admdiv, now)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=sessions.ABSOLUTE_S, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request, ctx: Ctx) -> Response:
    """Ends the session server-side: a copied cookie is dead from now on too."""
    session: sessions.Session = request.state.session
    sessions.end(ctx.nodes[session.node].engine, session, ctx.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
