"""Prometheus metrics at ``/metrics``: the vouchers of every node, counted when scraped, and
the web process's own requests.

Voucher counts are not kept in counters that could drift from the truth: a custom collector
reads them from the node databases at scrape time (one grouped query per node, on an index),
by node, party, division, voucher type, direction and state (the monitor's own query,
:func:`guoku.web.monitor_data.voucher_counts`). Requests are counted by a
middleware function the app installs (``app.middleware("http")(record_request)``), labelled by
the route *template* (``/api/v1/vouchers/{voucher_id}``), never the raw path, so a scanner
cannot blow up the label space.

Each app gets its own registry (``app.state.metrics``): two apps in one process (tests) never
share or double-register a collector.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from guoku.domain.discrepancy import DiscrepancyStatus
from guoku.store.tables import dead_letters, discrepancies, outbox, rejected_envelopes
from guoku.web.context import WebContext
from guoku.web.monitor_data import voucher_counts

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED: Final = "<unmatched>"
VOUCHER_LABELS: Final = ("node", "party", "admdiv", "vt_code", "direction", "state")

_lock = threading.Lock()


class VoucherCollector(Collector):
    """Counts and amounts of current voucher versions, and the middleware's backlog, per node."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily("guoku_vouchers", "Current voucher versions",
                                  labels=VOUCHER_LABELS)
        amount = GaugeMetricFamily("guoku_voucher_amount_fen",
                                   "Sum of the amounts of current voucher versions, in fen",
                                   labels=VOUCHER_LABELS)
        up = GaugeMetricFamily("guoku_node_db_up", "1 when the node database answered the "
                               "scrape", labels=("node",))
        backlog = GaugeMetricFamily("guoku_node_backlog", "Unpublished outbox rows, dead "
                                    "letters not replayed, rejected envelopes, open "
                                    "discrepancies", labels=("node", "kind"))
        ctx: WebContext | None = getattr(self.app.state, "ctx", None)
        for name, node in sorted(ctx.nodes.items() if ctx is not None else ()):
            try:
                self._node(name, node.engine, count, amount, backlog)
            except SQLAlchemyError:
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
        yield from (count, amount, up, backlog)

    @staticmethod
    def _node(name: str, engine: Engine, count: GaugeMetricFamily, amount: GaugeMetricFamily,
              backlog: GaugeMetricFamily) -> None:
        rows = voucher_counts(engine)
        with engine.connect() as conn:
            pending = {
                "outbox": select(func.count()).select_from(outbox)
                .where(outbox.c.published_at.is_(None)),
                "dead_letters": select(func.count()).select_from(dead_letters)
                .where(dead_letters.c.replayed_at.is_(None)),
                "rejected_envelopes": select(func.count()).select_from(rejected_envelopes),
                "open_discrepancies": select(func.count()).select_from(discrepancies)
                .where(discrepancies.c.status != DiscrepancyStatus.RESOLVED.value),
            }
            sizes = {kind: int(conn.execute(q).scalar_one()) for kind, q in pending.items()}
        for r in rows:
            labels = [name, r.party, r.admdiv, r.vt_code, r.direction, r.state]
            count.add_metric(labels, r.count)
            amount.add_metric(labels, r.amount_fen)
        for kind, size in sizes.items():
            backlog.add_metric([name, kind], size)


@dataclass
class AppMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram


def metrics_of(app: FastAPI) -> AppMetrics:
    """The app's registry, made on first use; the collector reads ``app.state.ctx`` when
    scraped."""
    existing: AppMetrics | None = getattr(app.state, "metrics", None)
    if existing is not None:
        return existing
    with _lock:
        existing = getattr(app.state, "metrics", None)
        if existing is None:
            registry = CollectorRegistry()
            registry.register(VoucherCollector(app))
            existing = AppMetrics(
                registry,
                Counter("guoku_http_requests", "HTTP requests answered",
                        ("method", "route", "status"), registry=registry),
                Histogram("guoku_http_request_duration_seconds", "Time to answer a request",
                          ("method", "route"), buckets=LATENCY_BUCKETS, registry=registry),
            )
            app.state.metrics = existing
    return existing


async def record_request(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: count every request and time it, by route template and status."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        m = metrics_of(request.app)
        m.requests.labels(request.method, template, str(status)).inc()
        m.latency.labels(request.method, template).observe(time.perf_counter() - started)


router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format; voucher counts are read from the node databases now."""
    return Response(generate_latest(metrics_of(request.app).registry),
                    media_type=CONTENT_TYPE_LATEST)
