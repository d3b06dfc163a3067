"""The voucher library service interface over HTTP (凭证库服务接口), for business systems.

Finance's and the banks' business systems, in any language, create, check, seal, send, query and
receive vouchers and receipts with JSON over ``/api/v1`` (OpenAPI at ``/openapi.json``). Each
call carries ``Authorization: Bearer <token>``; the token names a service user of one node
(``guoku api-token issue``), and every call goes through that node's
:class:`~guoku.library.service.VoucherLibrary` as that user — the same posts, separation of
duties and tenant rules as the counter and the CLI, nothing re-implemented here.

Errors: a :class:`~guoku.domain.errors.GuokuError` becomes a 4xx JSON body
``{"error": code, "message": ...}`` (:data:`STATUS` is the one table); a request the models
refuse is 422 with ``error`` = ``REQUEST_INVALID``. Bad input never yields a 5xx.
docs/decisions/0019-service-api.md gives the reasons and the fuzzing figures.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from guoku.domain.errors import (
    Conflict,
    GuokuError,
    IllegalTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
    XmlRejected,
)
from guoku.domain.fields import PATTERNS, FieldKind
from guoku.domain.lifecycle import State
from guoku.domain.money import Amount
from guoku.domain.vouchers import all_types, voucher_type
from guoku.library.service import MAX_PAGE_SIZE, VoucherLibrary
from guoku.store import api_tokens
from guoku.store import repository as repo
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.web.api_models import (
    ErrorOut,
    EventOut,
    PageOut,
    ReceiptsOut,
    ReturnIn,
    VoucherDetailOut,
    VoucherIn,
    VoucherOut,
    VoucherTypeOut,
    WhoAmIOut,
)
from guoku.web.context import WebContext, get_context

MAX_PAGE: Final = 100_000
RECEIPT_SCAN_PAGES: Final = 20
"""A voucher's 回单 are looked for in at most this many pages of MAX_PAGE_SIZE received ones."""
SETTLEMENT_EVENTS: Final = frozenset({"deliver", "accept", "return", "fail", "time_out",
                                      "resend"})


class Unauthenticated(PermissionDenied):
    """No token, an unknown or revoked one, or one whose user no longer matches its scope."""

    code = "UNAUTHENTICATED"


STATUS: Final[tuple[tuple[type[GuokuError], int], ...]] = (
    (Unauthenticated, 401),
    (NotFound, 404),
    (PermissionDenied, 403),
    (IllegalTransition, 409),
    (Conflict, 409),
    (ValidationError, 422),
    (XmlRejected, 422),
    (GuokuError, 400),
)
"""Typed error -> HTTP status, first match wins (subclasses before their bases)."""


def status_of(exc: GuokuError) -> int:
    return next(status for kind, status in STATUS if isinstance(exc, kind))


def error_response(exc: GuokuError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(ErrorOut(error=exc.code, message=exc.message).model_dump(),
                        status_code=status_of(exc), headers=headers)


def _invalid_request(exc: RequestValidationError) -> JSONResponse:
    problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                for e in list(exc.errors())[:10]]
    return JSONResponse(ErrorOut(error="REQUEST_INVALID",
                                 message="; ".join(problems)[:2000]).model_dump(),
                        status_code=422)


class ApiRoute(APIRoute):
    """Turns typed errors — from the handler, its dependencies or request validation — into
    the API's JSON error bodies, on these routes only (the HTML apps render their own)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except GuokuError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return _invalid_request(exc)

        return guarded


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", tags=["voucher library service (凭证库服务接口)"],
                   route_class=ApiRoute, responses=_ERRORS)

_bearer = HTTPBearer(auto_error=False, description="Token from `guoku api-token issue`")


@dataclass(frozen=True, slots=True)
class ApiClient:
    """The business system behind a token: which service user it acts as, on which node."""

    token_id: int
    system: str
    username: str
    party: str
    admdiv: str
    posts: tuple[str, ...]
    library: VoucherLibrary


def api_client(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ctx: Annotated[WebContext, Depends(get_context)],
) -> ApiClient:
    """The caller, from its bearer token; its scope is checked against its user every call."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send Authorization: Bearer <token>")
    for node in ctx.nodes.values():
        with node.engine.connect() as conn:
            token = api_tokens.resolve(conn, credentials.credentials)
            if token is None:
                continue
            user = repo.get_user(conn, token.username)
        if not user.active or (user.party.code, user.admdiv.code) != (token.party, token.admdiv):
            raise Unauthenticated(f"token {token.id} no longer matches its user's scope")
        return ApiClient(token.id, token.system, token.username, token.party, token.admdiv,
                         tuple(sorted({g.post.value for g in user.grants})), node.library)
    raise Unauthenticated("unknown or revoked token")


Client = Annotated[ApiClient, Depends(api_client)]
Context = Annotated[WebContext, Depends(get_context)]
VoucherId = Annotated[int, Path(ge=1, le=2**62)]
_AMOUNT = Annotated[str | None, Query(pattern=f"^{PATTERNS[FieldKind.AMOUNT]}$",
                                      description='e.g. "1234.50"')]
_DATE = Annotated[str | None, Query(pattern=f"^{PATTERNS[FieldKind.DATE]}$",
                                    description="yyyymmdd")]


def _fen(amount: str | None) -> int | None:
    return None if amount is None else Amount.parse(amount).fen


def _page(result: Any) -> PageOut:
    return PageOut(items=[VoucherOut.of(r) for r in result.items], total=result.total,
                   page=result.page, page_size=result.page_size)


# --- reference -------------------------------------------------------------------------------


@router.get("/whoami", summary="The token's system, service user, party, division and posts")
def whoami(client: Client) -> WhoAmIOut:
    return WhoAmIOut(system=client.system, username=client.username, party=client.party,
                     admdiv=client.admdiv, posts=list(client.posts))


@router.get("/catalogue", summary="Every voucher type with its fields (凭证目录)")
def catalogue(client: Client) -> list[VoucherTypeOut]:
    return [VoucherTypeOut.of(t) for t in all_types()]


@router.get("/catalogue/{vt_code}", summary="One voucher type with its fields")
def catalogue_type(client: Client, vt_code: str) -> VoucherTypeOut:
    return VoucherTypeOut.of(voucher_type(vt_code))


# --- sender side -----------------------------------------------------------------------------


@router.post("/vouchers", status_code=201, summary="录入: create a voucher in draft")
def create(client: Client, body: VoucherIn) -> VoucherOut:
    return VoucherOut.of(client.library.create(client.username, body.vt_code, body.header,
                                               body.details, receiver=body.receiver))


def _step(client: ApiClient, ctx: WebContext, action: str, voucher_id: VoucherId) -> VoucherOut:
    row: VoucherRow = getattr(client.library, action)(client.username, voucher_id)
    ctx.settle()
    return VoucherOut.of(row)


@router.post("/vouchers/{voucher_id}/check", summary="审核: review a draft")
def check(client: Client, ctx: Context, voucher_id: VoucherId) -> VoucherOut:
    return _step(client, ctx, "check", voucher_id)


@router.post("/vouchers/{voucher_id}/seal", summary="盖章: stamp every seal position")
def seal(client: Client, ctx: Context, voucher_id: VoucherId) -> VoucherOut:
    return _step(client, ctx, "seal", voucher_id)


@router.post("/vouchers/{voucher_id}/send", summary="发送: send a sealed voucher")
def send(client: Client, ctx: Context, voucher_id: VoucherId) -> VoucherOut:
    return _step(client, ctx, "send", voucher_id)


# --- reading ---------------------------------------------------------------------------------


@router.get("/vouchers", summary="Query the vouchers of the token's party and division, paged")
def query(
    client: Client,
    vt_code: Annotated[str | None, Query(pattern="^[0-9]{4}$")] = None,
    state: State | None = None,
    direction: Literal["in", "out"] | None = None,
    date_from: _DATE = None,
    date_to: _DATE = None,
    amount_min: _AMOUNT = None,
    amount_max: _AMOUNT = None,
    counterparty: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z._\-]{1,42}$")] = None,
    current_only: bool = True,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> PageOut:
    q = VoucherQuery(vt_code=vt_code, state=state.value if state else None, date_from=date_from,
                     date_to=date_to, amount_min_fen=_fen(amount_min),
                     amount_max_fen=_fen(amount_max), counterparty=counterparty,
                     direction=direction, current_only=current_only)
    return _page(client.library.query(client.username, q, page, page_size))


@router.get("/vouchers/{voucher_id}", summary="One voucher: fields, seals and its sealed XML")
def get(client: Client, voucher_id: VoucherId) -> VoucherDetailOut:
    return VoucherDetailOut.of_full(client.library.get(client.username, voucher_id))


@router.get("/vouchers/{voucher_id}/xml", summary="The sealed voucher XML itself",
            response_class=Response,
            responses={200: {"content": {"application/xml": {}}}})
def get_xml(client: Client, voucher_id: VoucherId) -> Response:
    row = client.library.get(client.username, voucher_id)
    return Response(row.xml, media_type="application/xml")


@router.get("/vouchers/{voucher_id}/history", summary="Every event of every version (凭证版本)")
def history(client: Client, voucher_id: VoucherId) -> list[EventOut]:
    return [EventOut.of(e) for e in client.library.history(client.username, voucher_id)]


# --- receiver side ---------------------------------------------------------------------------


@router.get("/received", summary="Vouchers received by the token's party (state=received: "
            "not yet answered)")
def received(
    client: Client,
    state: State | None = None,
    vt_code: Annotated[str | None, Query(pattern="^[0-9]{4}$")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> PageOut:
    q = VoucherQuery(vt_code=vt_code, state=state.value if state else None, direction="in")
    return _page(client.library.query(client.username, q, page, page_size))


@router.post("/vouchers/{voucher_id}/accept", summary="签收: accept a received voucher")
def accept(client: Client, ctx: Context, voucher_id: VoucherId) -> VoucherOut:
    return _step(client, ctx, "accept", voucher_id)


@router.post("/vouchers/{voucher_id}/return", summary="退回: return a received voucher")
def return_(client: Client, ctx: Context, voucher_id: VoucherId, body: ReturnIn) -> VoucherOut:
    row = client.library.return_(client.username, voucher_id, body.reason)
    ctx.settle()
    return VoucherOut.of(row)


@router.get("/vouchers/{voucher_id}/receipts",
            summary="回执与回单: the receiver's answer and the sealed receipts of a voucher")
def receipts(client: Client, voucher_id: VoucherId) -> ReceiptsOut:
    lib, user = client.library, client.username
    row = lib.get(user, voucher_id)
    settlement = [EventOut.of(e) for e in lib.history(user, voucher_id)
                  if e["event"] in SETTLEMENT_EVENTS and e["version"] == row.version]
    return ReceiptsOut(voucher=VoucherOut.of(row), settlement=settlement,
                       receipts=[VoucherOut.of(r) for r in _receipt_vouchers(client, row)])


def _receipt_vouchers(client: ApiClient, original: VoucherRow) -> list[VoucherRow]:
    """Received 回单 whose OriVtCode/OriVoucherNo name ``original``."""
    from guoku.xml.codec import from_xml

    found: list[VoucherRow] = []
    for rtype in (t for t in all_types() if t.receipt_of == original.vt_code):
        for page in range(1, RECEIPT_SCAN_PAGES + 1):
            result = client.library.query(client.username, VoucherQuery(
                vt_code=rtype.code, direction="in"), page, MAX_PAGE_SIZE)
            found += [r for r in result.items
                      if from_xml(r.xml).header.get("OriVoucherNo") == original.voucher_no]
            if page * MAX_PAGE_SIZE >= result.total:
                break
    return found
