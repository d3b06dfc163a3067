"""自助柜面 — the budget units' self-service counter, open at any hour.

A unit's clerks pay within their quota without going to the bank: the entry clerk enters an
authorized payment voucher (8202) to the agent bank, another clerk reviews it, a third seals
(unit financial seal from finance's signing server, personal seal from the clerk's USB key)
and sends it. Everyone follows its status, reads and prints the bank's notices about the unit,
and downloads the sealed XML. Every action is a ``VoucherLibrary`` call made as the signed-in
user, so posts, separation of duties, tenant isolation and the audit trail are the library's.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from guoku.domain.controls import Post
from guoku.domain.errors import ValidationError
from guoku.domain.lifecycle import State
from guoku.domain.vouchers import voucher_type
from guoku.library.service import UNIT_NOTICES, VoucherLibrary
from guoku.store.repository import VoucherRow
from guoku.web import unit
from guoku.web.context import WebContext, get_context
from guoku.web.labels import EVENTS, STATES
from guoku.web.printing import voucher_pdf
from guoku.web.security import CurrentUser, WebUser, check_csrf, require_posts
from guoku.web.templates import page
from guoku.xml.codec import from_xml

router = APIRouter(prefix="/counter", include_in_schema=False)
Ctx = Annotated[WebContext, Depends(get_context)]
Entry = Annotated[WebUser, Depends(require_posts(Post.ENTRY))]
Printer = Annotated[WebUser, Depends(require_posts(Post.PRINT))]
Csrf = Depends(check_csrf)

ACTIONS: Final = {"check": (Post.REVIEW, "审核"), "seal": (Post.SEAL, "盖章"),
                  "send": (Post.SEND, "发送")}
NEXT_ACTION: Final = {State.DRAFT: "check", State.CHECKED: "seal", State.SEALED: "send"}
"""The control step a voucher in this state waits for."""


def _lib(ctx: WebContext, user: WebUser) -> VoucherLibrary:
    return ctx.library(user.party)


def _party_names(ctx: WebContext) -> dict[str, str]:
    return {p.code: p.name for p in ctx.province.parties}


@router.get("")
def home(request: Request, ctx: Ctx, user: CurrentUser) -> Response:
    """Quotas and balances, what waits for this clerk, the latest payments."""
    lib = _lib(ctx, user)
    payments = unit.vouchers(lib, user.username, unit.PAYMENT, "out")
    waiting = [r for r in payments if (a := NEXT_ACTION.get(State(r.state))) is not None
               and user.holds(ACTIONS[a][0])]
    return page(request, "counter/home.html", states=STATES, waiting=waiting,
                payments=payments[:10], actions=ACTIONS, next_action=NEXT_ACTION,
                quotas=unit.quotas(ctx.nodes[user.node].engine, user.admdiv, user.party))


@router.get("/payments/new")
def new_payment(request: Request, ctx: Ctx, user: Entry) -> Response:
    lib = _lib(ctx, user)
    return page(request, "counter/payment_form.html",
                quotas=unit.quotas(ctx.nodes[user.node].engine, user.admdiv, user.party),
                payer=unit.payer_defaults(lib, user.username), form=None, error=None)


@router.post("/payments", dependencies=[Csrf])
def create_payment(
    request: Request, ctx: Ctx, user: Entry,
    quota: Annotated[str, Form(max_length=120)],
    payee_account: Annotated[str, Form(max_length=32)],
    payee_name: Annotated[str, Form(max_length=60)],
    payee_bank: Annotated[str, Form(max_length=60)],
    amount: Annotated[str, Form(max_length=20)],
    purpose: Annotated[str, Form(max_length=60)],
    payer_account: Annotated[str, Form(max_length=32)],
    payer_name: Annotated[str, Form(max_length=60)],
    payer_bank: Annotated[str, Form(max_length=60)],
    exp_eco: Annotated[str, Form(max_length=20)] = "30201",
) -> Response:
    """录入: the library validates, builds the XML against the XSD and checks the payee."""
    form = unit.PaymentForm(quota, payee_account, payee_name, payee_bank, amount, purpose,
                            exp_eco, payer_account, payer_name, payer_bank)
    lib = _lib(ctx, user)
    lines = unit.quotas(ctx.nodes[user.node].engine, user.admdiv, user.party)
    try:
        header, details, receiver = unit.build_payment(
            form, lines, lib, user.username, ctx.province.party(user.party).name,
            ctx.clock().astimezone())
        row = lib.create(user.username, unit.PAYMENT, header, details, receiver=receiver)
    except ValidationError as exc:
        return page(request, "counter/payment_form.html", status_code=400, quotas=lines,
                    payer=unit.payer_defaults(lib, user.username), form=form,
                    error=exc.message)
    return RedirectResponse(f"/counter/vouchers/{row.id}", status_code=303)


@router.get("/payees/check")
def payee_check(ctx: Ctx, user: Entry, account_no: str = "", name: str = "",
                bank_name: str = "") -> Response:
    """The live payee-account check the entry form calls while the clerk types."""
    if not account_no.strip() or len(account_no) > 32 or len(name) > 60 or len(bank_name) > 60:
        return JSONResponse({"code": "VALIDATION_ERROR", "message": "账号为1-32位"}, 400)
    answer = unit.check_payee_account(ctx.nodes[user.node].engine, user.admdiv, account_no,
                                      name, bank_name)
    return JSONResponse({"found": answer.found, "name": answer.name,
                         "bank_name": answer.bank_name, **answer.check.to_dict()})


@router.get("/vouchers")
def list_vouchers(request: Request, ctx: Ctx, user: CurrentUser, state: str = "") -> Response:
    rows = unit.vouchers(_lib(ctx, user), user.username, unit.PAYMENT, "out",
                         state if state in {s.value for s in State} else None)
    return page(request, "counter/vouchers.html", rows=rows, states=STATES, state=state)


@router.get("/notices")
def notices(request: Request, ctx: Ctx, user: CurrentUser) -> Response:
    """到账、入账、退款通知书 the bank sent finance about this unit."""
    lib = _lib(ctx, user)
    rows = sorted((r for vt in UNIT_NOTICES for r in unit.vouchers(lib, user.username, vt, "in")),
                  key=lambda r: r.id, reverse=True)
    return page(request, "counter/notices.html", rows=rows, names=_type_names(rows))


def _type_names(rows: list[VoucherRow]) -> dict[str, str]:
    return {r.vt_code: voucher_type(r.vt_code).name for r in rows}


@router.get("/vouchers/{voucher_id}")
def voucher(request: Request, ctx: Ctx, user: CurrentUser, voucher_id: int) -> Response:
    lib = _lib(ctx, user)
    row = lib.get(user.username, voucher_id)
    doc = from_xml(row.xml)
    action = NEXT_ACTION.get(State(row.state)) if row.direction == "out" else None
    return page(request, "counter/voucher.html", row=row, doc=doc, states=STATES,
                fields=[(f.label, doc.header[f.name]) for f in doc.vtype.fields
                        if doc.header.get(f.name)],
                check=lib.payee_check(user.username, voucher_id),
                history=lib.history(user.username, voucher_id), parties=_party_names(ctx),
                events=EVENTS,
                action=action if action and user.holds(ACTIONS[action][0]) else None,
                actions=ACTIONS, can_print=user.holds(Post.PRINT))


@router.get("/vouchers/{voucher_id}/xml")
def download_xml(ctx: Ctx, user: CurrentUser, voucher_id: int) -> Response:
    """The sealed voucher (回单) as XML, verifiable offline with ``guoku verify``."""
    row = _lib(ctx, user).get(user.username, voucher_id)
    name = f"{row.vt_code}-{row.voucher_no}-v{row.version}.xml"
    return Response(row.xml, media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/vouchers/{voucher_id}/print", dependencies=[Csrf])
def print_voucher(ctx: Ctx, user: Printer, voucher_id: int) -> Response:
    """Count and audit the print (PRINT post), then draw it: 1 = original, then 副本."""
    lib = _lib(ctx, user)
    number = lib.print_(user.username, voucher_id)
    row = lib.get(user.username, voucher_id)
    pdf = voucher_pdf(row, number, f"{user.name}（{user.username}）", ctx.clock(),
                      _party_names(ctx))
    name = f"{row.vt_code}-{row.voucher_no}-{number}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/vouchers/{voucher_id}/{action}", dependencies=[Csrf])
def act(  # declared last: /print above takes its own path first
        ctx: Ctx, user: CurrentUser, voucher_id: int, action: str) -> Response:
    """审核, 盖章, 发送 — the library checks post, separation of duties and state."""
    lib = _lib(ctx, user)
    if action == "check":
        lib.check(user.username, voucher_id)
    elif action == "seal":
        lib.seal(user.username, voucher_id)
    elif action == "send":
        lib.send(user.username, voucher_id)
        ctx.settle()
    else:
        return JSONResponse({"code": "NOT_FOUND"}, 404)
    return RedirectResponse(f"/counter/vouchers/{voucher_id}", status_code=303)
