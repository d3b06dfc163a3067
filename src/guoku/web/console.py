"""运维控制台 — the operator console: users and posts, seal authorizations, review of account
changes, dead-letter replay, day close and reconciliation runs.

Every action is one of the services the CLI calls (``Administration``, the signing server,
``AccountDirectory``, ``transport.dead_letters.replay``, ``flows.day_close.close_day``,
``reconcile.province_breaks`` + ``record_run``, ``reconcile.workflow.handle``): the console adds
forms, CSRF and a post check, never its own rules. Every POST needs the CSRF token and the
administrator post — the reconciliation post for reconciliation, the review post for account
changes (the directory itself refuses a reviewer who entered the change). Tenancy as in the
monitor: an operator acts on the divisions at or below their own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from guoku.domain.controls import Post
from guoku.domain.discrepancy import DiscrepancyStep
from guoku.domain.errors import NotFound, PermissionDenied, ValidationError
from guoku.domain.parties import AdmDiv, PartyKind
from guoku.flows.day_close import close_day
from guoku.flows.desk import Desk
from guoku.library.admin import Administration
from guoku.library.service import VoucherLibrary
from guoku.reconcile.province import province_breaks
from guoku.reconcile.workflow import handle, record_run
from guoku.security.signing_server import SigningService
from guoku.store import accounts
from guoku.store import repository as repo
from guoku.store.accounts import AccountDirectory
from guoku.transport import dead_letters
from guoku.web import monitor_data as data
from guoku.web.context import WebContext, get_context
from guoku.web.monitor import scope_of
from guoku.web.security import WebUser, check_csrf, require_posts
from guoku.web.templates import page

CONSOLE_POSTS: Final = (Post.ADMIN, Post.REVIEW, Post.RECONCILE)

router = APIRouter(prefix="/console", include_in_schema=False)
Context = Annotated[WebContext, Depends(get_context)]
Viewer = Annotated[WebUser, Depends(require_posts(*CONSOLE_POSTS))]
Admin = Annotated[WebUser, Depends(require_posts(Post.ADMIN))]
Reviewer = Annotated[WebUser, Depends(require_posts(Post.REVIEW))]
Reconciler = Annotated[WebUser, Depends(require_posts(Post.RECONCILE, Post.ADMIN))]
Csrf = Depends(check_csrf)
Id = Annotated[int, Path(ge=1, le=2**62)]
Text = Annotated[str, Form(max_length=200)]


def _back(notice: str) -> Response:
    return RedirectResponse(f"/console?notice={quote(notice)}", status_code=303)


def _covers(user: WebUser, admdiv: str) -> None:
    if not AdmDiv(user.admdiv).contains(AdmDiv(admdiv)):
        raise PermissionDenied(f"{user.username} 不负责行政区划 {admdiv}")


def signing_of(ctx: WebContext, user: WebUser) -> SigningService | None:
    """The signing server of the operator's node (held in-process over a demo workspace)."""
    if ctx.workspace is None:
        return None
    wanted = set(ctx.nodes[user.node].spec.parties)
    return next((s for s in ctx.workspace.signing
                 if wanted & {p.code for p in s.parties()}), None)


@router.get("")
def index(request: Request, user: Viewer, ctx: Context, notice: str = "") -> Response:
    scope = scope_of(user, ctx)
    engine = ctx.nodes[user.node].engine
    with engine.connect() as conn:
        users = [u for u in repo.list_users(conn)
                 if AdmDiv(user.admdiv).contains(u.admdiv)] if user.holds(Post.ADMIN) else []
        pending = [e for e in accounts.pending(conn)
                   if AdmDiv(user.admdiv).contains(AdmDiv(e.admdiv))]
    signing = signing_of(ctx, user) if user.holds(Post.ADMIN) else None
    letters = [(n, r) for n in scope.nodes
               for r in data.node_troubles(ctx.nodes[n].engine, scope)["dead_letters"]]
    finance = "finance" if "finance" in scope.nodes else None
    return page(
        request, "console/index.html", notice=notice[:200], users=users, posts=list(Post),
        pending=pending, signing=signing, letters=letters,
        runs=data.recent_runs(ctx.nodes[finance].engine, scope) if finance else [],
        discrepancies=data.open_discrepancies(ctx.nodes[finance].engine, scope)
        if finance else [],
        banks=[p for p in ctx.province.parties if p.kind is PartyKind.BANK],
        counties=sorted(c for c in ctx.province.admdivs
                        if AdmDiv(user.admdiv).contains(AdmDiv(c))),
        today=ctx.clock().strftime("%Y%m%d"), steps=list(DiscrepancyStep),
        province_wide=scope.province_wide, is_admin=user.holds(Post.ADMIN),
        is_reviewer=user.holds(Post.REVIEW), is_reconciler=user.holds(Post.RECONCILE),
    )


# --- users, posts and seal authorizations -------------------------------------------------------


@router.post("/users/grant", dependencies=[Csrf])
def grant(user: Admin, ctx: Context, username: Annotated[str, Form(max_length=64)],
          post: Annotated[Post, Form()],
          vt_code: Annotated[str, Form(pattern=r"^(\*|[0-9]{4})$")] = "*") -> Response:
    engine = ctx.nodes[user.node].engine
    with engine.connect() as conn:
        target = repo.get_user(conn, username)
    _covers(user, target.admdiv.code)
    Administration(engine, ctx.clock).grant(user.username, username, post, vt_code)
    return _back(f"已授予 {username} {post.value} 岗（{vt_code}）")


@router.post("/seals/authorize", dependencies=[Csrf])
def authorize(user: Admin, ctx: Context, es_id: Annotated[str, Form(max_length=64)],
              post: Annotated[Post, Form()], valid_from: Annotated[date, Form()],
              valid_to: Annotated[date, Form()]) -> Response:
    service = _signing(ctx, user)
    auth_id = service.authorize(es_id, post, _utc(valid_from), _utc(valid_to),
                                admin=user.username)
    return _back(f"印章授权 {auth_id} 已建立")


@router.post("/seals/{authorization_id}/revoke", dependencies=[Csrf])
def revoke(user: Admin, ctx: Context,
           authorization_id: Annotated[str, Path(pattern=r"^A[0-9]{1,12}$")]) -> Response:
    _signing(ctx, user).revoke_authorization(authorization_id, ctx.clock(), admin=user.username)
    return _back(f"印章授权 {authorization_id} 已撤销")


def _signing(ctx: WebContext, user: WebUser) -> SigningService:
    service = signing_of(ctx, user)
    if service is None:
        raise NotFound("本节点的签名服务器不在本进程中：请在签名服务器上用 guoku signing 管理授权")
    return service


def _utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- account changes (账户信息维护审核) ---------------------------------------------------------


@router.post("/accounts/{entry_id}/approve", dependencies=[Csrf])
def approve(user: Reviewer, ctx: Context, entry_id: Id, note: Text = "") -> Response:
    entry = AccountDirectory(ctx.nodes[user.node].engine, ctx.clock).approve(
        user.username, entry_id, note or None)
    return _back(f"账户 {entry.account_no} 的变更已生效")


@router.post("/accounts/{entry_id}/reject", dependencies=[Csrf])
def reject(user: Reviewer, ctx: Context, entry_id: Id, reason: Text) -> Response:
    entry = AccountDirectory(ctx.nodes[user.node].engine, ctx.clock).reject(
        user.username, entry_id, reason)
    return _back(f"账户 {entry.account_no} 的变更已驳回")


# --- dead letters, day close -------------------------------------------------------------------


@router.post("/dead-letters/{node}/{letter_id}/replay", dependencies=[Csrf])
def replay(user: Admin, ctx: Context, node: Annotated[str, Path(max_length=64)],
           letter_id: Id, force: Annotated[bool, Form()] = False) -> Response:
    scope = scope_of(user, ctx)
    if not scope.province_wide or node not in scope.nodes:
        raise NotFound(f"no dead letter {node}/{letter_id}")
    if ctx.workspace is None:
        raise NotFound("部署环境中请用 guoku mq dead-letters replay 经消息队列重放")
    messenger = ctx.workspace.network.messengers[node]

    def publish(queue: str, body: bytes, envelope_id: str | None) -> None:
        messenger.handle(body)

    at = dead_letters.replay(ctx.nodes[node].engine, letter_id, publish, user.username,
                             force=force, clock=ctx.clock)
    return _back(f"死信 {node}/{letter_id} 已于 {at} 重放")


class _Province:
    """The flows' view of the web context: each party's library, and delivery."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def library(self, party: str) -> VoucherLibrary:
        return self.ctx.library(party)

    def settle(self) -> None:
        self.ctx.settle()


def desk_of(ctx: WebContext, party: str, admdiv: str) -> Desk:
    """The desks of ``party`` in ``admdiv``: clerks named ``<prefix>-<admdiv>-entry`` ..."""
    for spec in ctx.province.users:
        if spec.party == party and spec.admdiv == admdiv and Post.ENTRY in spec.posts:
            return Desk(party, admdiv, spec.username.removesuffix(f"-{admdiv}-entry"))
    raise NotFound(f"{party} 在 {admdiv} 没有录入岗")


@router.post("/day-close", dependencies=[Csrf])
def day_close(user: Admin, ctx: Context, bank: Annotated[str, Form(max_length=42)],
              county: Annotated[str, Form(pattern=r"^[0-9]{6}$")],
              day: Annotated[str, Form(pattern=r"^[0-9]{8}$")]) -> Response:
    _covers(user, county)
    if ctx.province.party(bank).kind is not PartyKind.BANK:
        raise ValidationError(f"{bank} 不是代理银行")
    result = close_day(_Province(ctx), desk_of(ctx, bank, county),
                       desk_of(ctx, f"F{county}", county), day)
    return _back(f"{day} 日终：{len(result.reports)} 份日报，{result.accepted} 份已签收，"
                 f"{len(result.returned)} 份退回")


# --- reconciliation -----------------------------------------------------------------------------


@router.post("/reconciliation/run", dependencies=[Csrf])
def run_reconciliation(user: Reconciler, ctx: Context,
                       day: Annotated[str, Form(pattern=r"^[0-9]{8}$")],
                       layers: Annotated[str, Form(pattern=r"^[123]{1,3}$")] = "123") -> Response:
    if not scope_of(user, ctx).province_wide:
        raise PermissionDenied("三层对账覆盖全省各节点：需省级对账岗")
    wanted = sorted({int(c) for c in layers})
    engines = {name: node.engine for name, node in ctx.nodes.items()}
    summary = record_run(engines["finance"],
                         province_breaks(engines, ctx.province, wanted, day, None),
                         mode="on_demand", layers="".join(map(str, wanted)), scope=day,
                         user=user.username, now=ctx.clock())
    return _back(f"对账 {summary.run_id}：{summary.breaks} 条差异")


@router.post("/discrepancies/{discrepancy_id}/{step}", dependencies=[Csrf])
def discrepancy_step(user: Reconciler, ctx: Context, discrepancy_id: Id,
                     step: DiscrepancyStep, note: Text = "") -> Response:
    _covers(user, data.discrepancy_admdiv(ctx.nodes["finance"].engine, discrepancy_id))
    status = handle(ctx.nodes["finance"].engine, user.username, discrepancy_id, step,
                    note or None, now=ctx.clock())
    return _back(f"差异 {discrepancy_id}：{status.value}")
