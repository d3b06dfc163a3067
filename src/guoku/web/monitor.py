"""监控平台 — the monitoring platform: every voucher's trail through its flow, counts, vouchers
stuck past their time limit, error receipts, dead letters, reconciliation discrepancies, and
throughput and latency charts (server-rendered SVG: no script, nothing from a CDN).

Who may look: holders of the administrator or reconciliation post. What they see
(:func:`scope_of`): the divisions at or below their own — a county's administrator sees only
that county — on the nodes they may watch: finance's users watch every node (the platform
follows a payment from the unit through the bank to the treasury), anyone else only their own
party's node.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from markupsafe import Markup

from guoku.domain.controls import Post
from guoku.domain.lifecycle import State
from guoku.domain.parties import AdmDiv, PartyKind
from guoku.domain.vouchers import CATALOGUE
from guoku.web import monitor_data as data
from guoku.web.context import WebContext, get_context
from guoku.web.security import WebUser, require_posts
from guoku.web.templates import page, templates

MONITOR_POSTS: Final = (Post.ADMIN, Post.RECONCILE)
STATE_NAMES: Final = {
    "draft": "草稿", "checked": "已审核", "sealed": "已签章", "sent": "已发送",
    "delivered": "已送达", "failed": "发送失败", "indeterminate": "状态不明", "received": "待签收",
    "accepted": "已签收", "returned": "已退回", "void": "已作废", "superseded": "已更正",
}

router = APIRouter(prefix="/monitor", include_in_schema=False)
Viewer = Annotated[WebUser, Depends(require_posts(*MONITOR_POSTS))]
Context = Annotated[WebContext, Depends(get_context)]


def scope_of(user: WebUser, ctx: WebContext) -> data.Scope:
    kind = ctx.province.party(user.party).kind
    nodes = tuple(ctx.nodes) if kind is PartyKind.FINANCE else (user.node,)
    return data.Scope(AdmDiv(user.admdiv), nodes)


def _engines(ctx: WebContext) -> dict[str, Any]:
    return {name: node.engine for name, node in ctx.nodes.items()}


@router.get("")
def overview(request: Request, user: Viewer, ctx: Context) -> Response:
    scope = scope_of(user, ctx)
    now = ctx.clock()
    totals = data.Totals()
    stuck: list[tuple[str, Any]] = []
    failed: list[tuple[str, Any]] = []
    troubles: dict[str, list[tuple[str, Any]]] = {"dead_letters": [], "rejected": []}
    open_breaks: list[tuple[str, Any]] = []
    per_hour: dict[str, int] = {}
    waits: dict[str, list[float]] = {}
    for name in scope.nodes:
        engine = ctx.nodes[name].engine
        totals.add(data.voucher_counts(engine, scope))
        stuck += [(name, r) for r in data.stuck(engine, scope, now)]
        failed += [(name, r) for r in data.error_receipts(engine, scope)]
        for kind, rows in data.node_troubles(engine, scope).items():
            troubles[kind] += [(name, r) for r in rows]
        open_breaks += [(name, r) for r in data.open_discrepancies(engine, scope)]
        for hour, n in data.throughput(engine, scope, now).items():
            per_hour[hour] = per_hour.get(hour, 0) + n
        for vt_code, seconds in data.latencies(engine, scope).items():
            waits.setdefault(vt_code, []).extend(seconds)
    hours = [(now - timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(23, -1, -1)]
    latency = [(code, data.percentile(v, 50), data.percentile(v, 99), len(v))
               for code, v in sorted(waits.items())]
    return page(
        request, "monitor/overview.html", scope=scope, totals=totals, stuck=stuck,
        failed=failed, troubles=troubles, discrepancies=open_breaks,
        throughput_chart=bar_chart([(h[11:13], per_hour.get(h, 0)) for h in hours],
                                   "近24小时每小时发送凭证数", "笔"),
        latency_chart=bar_chart([(code, p99) for code, _, p99, _ in latency],
                                "各类凭证从发送到签收/退回的P99时延", "秒"),
        latency=latency, names=STATE_NAMES, types=CATALOGUE, now=now,
    )


@router.get("/vouchers")
def vouchers(
    request: Request, user: Viewer, ctx: Context,
    no: Annotated[str | None, Query(max_length=42)] = None,
    vt_code: Annotated[str | None, Query(pattern="^[0-9]{4}$")] = None,
    state: State | None = None,
) -> Response:
    scope = scope_of(user, ctx)
    rows = data.search(_engines(ctx), scope, no or None, vt_code, state.value if state else None)
    return page(request, "monitor/vouchers.html", rows=rows, no=no or "", vt_code=vt_code or "",
                state=state.value if state else "", names=STATE_NAMES, types=CATALOGUE)


@router.get("/trail/{node}/{voucher_id}")
def trail(request: Request, user: Viewer, ctx: Context, node: str,
          voucher_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    found = data.trail(_engines(ctx), scope_of(user, ctx), node, voucher_id)
    return page(request, "monitor/trail.html", trail=found, names=STATE_NAMES,
                types=CATALOGUE, start=(node, voucher_id))


@router.get("/reconciliation")
def reconciliation(request: Request, user: Viewer, ctx: Context) -> Response:
    scope = scope_of(user, ctx)
    runs = [(n, r) for n in scope.nodes for r in data.recent_runs(ctx.nodes[n].engine, scope)]
    breaks = [(n, r) for n in scope.nodes
              for r in data.open_discrepancies(ctx.nodes[n].engine, scope)]
    return page(request, "monitor/reconciliation.html", runs=runs, discrepancies=breaks)


# --- charts ----------------------------------------------------------------------------------

CHART_W: Final = 640
CHART_H: Final = 180
PAD: Final = 28


def bar_chart(points: list[tuple[str, float]], title: str, unit: str) -> Markup:
    """An accessible inline SVG bar chart (role=img, a title, each bar titled with its value);
    the page shows the same numbers in a table beside it."""
    top = max((v for _, v in points), default=0) or 1
    width = (CHART_W - 2 * PAD) / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = (CHART_H - 2 * PAD) * value / top
        x = PAD + i * width
        y = CHART_H - PAD - h
        text = f"{escape(label)}: {value:g} {escape(unit)}"
        bars.append(
            f'<g><title>{text}</title><rect class="bar" x="{x:.1f}" y="{y:.1f}" '
            f'width="{max(width - 2, 1):.1f}" height="{h:.1f}"></rect>'
            f'<text x="{x + width / 2:.1f}" y="{CHART_H - PAD + 14}" text-anchor="middle" '
            f'class="tick">{escape(label)}</text></g>')
    return Markup(
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f'<title>{escape(title)}</title>'
        f'<text x="{PAD}" y="16" class="axis">最大 {top:g} {escape(unit)}</text>'
        f'<line x1="{PAD}" y1="{CHART_H - PAD}" x2="{CHART_W - PAD}" y2="{CHART_H - PAD}" '
        f'class="baseline"></line>{"".join(bars)}</svg>')


def fmt_time(value: str | None) -> str:
    """ISO UTC as stored -> ``YYYY-MM-DD HH:MM:SS`` (UTC) for tables."""
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["utc"] = fmt_time
