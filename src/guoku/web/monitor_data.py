"""What the monitoring platform (监控平台) reads from the node databases — read-only queries.

Every query is bounded (``LIMIT``) and filtered by the viewer's :class:`Scope`: the divisions at
or below the viewer's own (a county sees its county; the province sees all), over the nodes the
viewer may watch. Node-level records that carry no division (dead letters, rejected envelopes,
reconciliation runs) are shown to province-level viewers only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Engine, and_, case, func, or_, select

from guoku.domain.discrepancy import DiscrepancyStatus
from guoku.domain.errors import NotFound
from guoku.domain.lifecycle import State
from guoku.domain.parties import AdmDiv, AdmDivLevel
from guoku.library.inbound import ANSWER_LIMIT, DELIVERY_LIMIT
from guoku.library.ports import iso
from guoku.store.tables import (
    audit_log,
    dead_letters,
    discrepancies,
    reconciliation_runs,
    rejected_envelopes,
    voucher_events,
    vouchers,
)
from guoku.xml.codec import from_xml

LIST_LIMIT: Final = 200
LATENCY_SAMPLE: Final = 5000
"""Newest answered vouchers per node whose send-to-answer time the latency chart shows."""
TRAIL_DEPTH: Final = 6
NO_ADMDIV: Final = "000000"
"""Audit entries of the node itself (install, envelopes, dead letters) carry this division."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose vouchers a viewer sees: divisions at or below ``admdiv``, on ``nodes``."""

    admdiv: AdmDiv
    nodes: tuple[str, ...]

    @property
    def province_wide(self) -> bool:
        return self.admdiv.level is AdmDivLevel.PROVINCE

    def where(self, column: Any) -> ColumnElement[bool]:
        code = self.admdiv.code
        if self.admdiv.level is AdmDivLevel.PROVINCE:
            return or_(column.like(f"{code[:2]}%"), column == NO_ADMDIV)
        if self.admdiv.level is AdmDivLevel.PREFECTURE:
            return column.like(f"{code[:4]}%")  # type: ignore[no-any-return]
        return column == code  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class CountRow:
    party: str
    admdiv: str
    vt_code: str
    direction: str
    state: str
    count: int
    amount_fen: int


def voucher_counts(engine: Engine, scope: Scope | None = None) -> list[CountRow]:
    """Current voucher versions grouped by own party, division, type, direction and state."""
    party = case((vouchers.c.direction == "out", vouchers.c.sender_party),
                 else_=vouchers.c.receiver_party)
    keys = (party, vouchers.c.admdiv, vouchers.c.vt_code, vouchers.c.direction,
            vouchers.c.state)
    query = (select(*keys, func.count(), func.sum(vouchers.c.amount_fen))
             .where(vouchers.c.is_current.is_(True)).group_by(*keys))
    if scope is not None:
        query = query.where(scope.where(vouchers.c.admdiv))
    with engine.connect() as conn:
        return [CountRow(str(p), str(a), str(t), str(d), str(s), int(n), int(fen or 0))
                for p, a, t, d, s, n, fen in conn.execute(query)]


@dataclass
class Totals:
    """The counts of the overview, summed over nodes: by state, type, party and division."""

    by_state: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_party: Counter[str] = field(default_factory=Counter)
    by_admdiv: Counter[str] = field(default_factory=Counter)

    def add(self, rows: Iterable[CountRow]) -> None:
        for r in rows:
            self.by_state[r.state] += r.count
            self.by_type[r.vt_code] += r.count
            self.by_party[r.party] += r.count
            self.by_admdiv[r.admdiv] += r.count


def stuck(engine: Engine, scope: Scope, now: datetime) -> list[Any]:
    """Sent vouchers past their time limit: indeterminate, sent without a delivery receipt, or
    delivered and not answered — the rows the node's sweep queries, seen before it does."""
    overdue = or_(
        vouchers.c.state == State.INDETERMINATE.value,
        and_(vouchers.c.state == State.SENT.value,
             vouchers.c.updated_at < iso(now - DELIVERY_LIMIT)),
        and_(vouchers.c.state == State.DELIVERED.value,
             vouchers.c.updated_at < iso(now - ANSWER_LIMIT)),
    )
    with engine.connect() as conn:
        return list(conn.execute(
            select(vouchers.c.id, vouchers.c.admdiv, vouchers.c.vt_code, vouchers.c.voucher_no,
                   vouchers.c.version, vouchers.c.state, vouchers.c.amount_fen,
                   vouchers.c.sender_party, vouchers.c.receiver_party, vouchers.c.updated_at)
            .where(vouchers.c.direction == "out", overdue, scope.where(vouchers.c.admdiv))
            .order_by(vouchers.c.updated_at).limit(LIST_LIMIT)).all())


def error_receipts(engine: Engine, scope: Scope) -> list[Any]:
    """Vouchers the receiving node refused with an error receipt (错误回执), with its reason."""
    with engine.connect() as conn:
        return list(conn.execute(
            select(vouchers.c.id, vouchers.c.admdiv, vouchers.c.vt_code, vouchers.c.voucher_no,
                   vouchers.c.receiver_party, voucher_events.c.reason, voucher_events.c.at)
            .join(voucher_events, voucher_events.c.voucher_id == vouchers.c.id)
            .where(voucher_events.c.event == "fail", scope.where(vouchers.c.admdiv))
            .order_by(voucher_events.c.id.desc()).limit(LIST_LIMIT)).all())


def node_troubles(engine: Engine, scope: Scope) -> dict[str, list[Any]]:
    """Dead letters and rejected envelopes: node-level, for province-level viewers only."""
    if not scope.province_wide:
        return {"dead_letters": [], "rejected": []}
    with engine.connect() as conn:
        return {
            "dead_letters": list(conn.execute(
                select(dead_letters.c.id, dead_letters.c.envelope_id, dead_letters.c.queue,
                       dead_letters.c.reason, dead_letters.c.attempts, dead_letters.c.dead_at,
                       dead_letters.c.replayed_at)
                .order_by(dead_letters.c.id.desc()).limit(LIST_LIMIT)).all()),
            "rejected": list(conn.execute(
                select(rejected_envelopes.c.id, rejected_envelopes.c.claimed_sender,
                       rejected_envelopes.c.code, rejected_envelopes.c.reason,
                       rejected_envelopes.c.rejected_at)
                .order_by(rejected_envelopes.c.id.desc()).limit(LIST_LIMIT)).all()),
        }


def open_discrepancies(engine: Engine, scope: Scope) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(discrepancies).where(
                discrepancies.c.status != DiscrepancyStatus.RESOLVED.value,
                scope.where(discrepancies.c.admdiv))
            .order_by(discrepancies.c.id).limit(LIST_LIMIT)).all())


def discrepancy_admdiv(engine: Engine, discrepancy_id: int) -> str:
    with engine.connect() as conn:
        found = conn.execute(select(discrepancies.c.admdiv).where(
            discrepancies.c.id == discrepancy_id)).scalar()
    if found is None:
        raise NotFound(f"no discrepancy {discrepancy_id}")
    return str(found)


def recent_runs(engine: Engine, scope: Scope, limit: int = 20) -> list[Any]:
    if not scope.province_wide:
        return []
    with engine.connect() as conn:
        return list(conn.execute(select(reconciliation_runs)
                                 .order_by(reconciliation_runs.c.id.desc()).limit(limit)).all())


def throughput(engine: Engine, scope: Scope, now: datetime, hours: int = 24) -> Counter[str]:
    """Vouchers sent per hour (``YYYY-MM-DDTHH``) over the last ``hours``."""
    since = iso(now - timedelta(hours=hours))
    hour = func.substr(voucher_events.c.at, 1, 13)
    with engine.connect() as conn:
        rows = conn.execute(select(hour, func.count()).where(
            voucher_events.c.event == "send", voucher_events.c.at >= since,
            scope.where(voucher_events.c.admdiv)).group_by(hour)).all()
    return Counter({str(h): int(n) for h, n in rows})


def latencies(engine: Engine, scope: Scope) -> dict[str, list[float]]:
    """Seconds from send to the receiver's answer (accept or return), by voucher type."""
    sent = select(voucher_events.c.voucher_id, func.min(voucher_events.c.at).label("at")).where(
        voucher_events.c.event == "send", scope.where(voucher_events.c.admdiv)
    ).group_by(voucher_events.c.voucher_id).subquery()
    answered = select(voucher_events.c.voucher_id, func.max(voucher_events.c.at).label("at")).where(
        voucher_events.c.event.in_(("accept", "return"))
    ).group_by(voucher_events.c.voucher_id).subquery()
    with engine.connect() as conn:
        rows = conn.execute(
            select(vouchers.c.vt_code, sent.c.at, answered.c.at)
            .join(sent, sent.c.voucher_id == vouchers.c.id)
            .join(answered, answered.c.voucher_id == vouchers.c.id)
            .where(vouchers.c.direction == "out")
            .order_by(vouchers.c.id.desc()).limit(LATENCY_SAMPLE)).all()
    out: dict[str, list[float]] = defaultdict(list)
    for vt_code, start, end in rows:
        out[str(vt_code)].append((_ts(end) - _ts(start)).total_seconds())
    return dict(out)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def search(engines: Mapping[str, Engine], scope: Scope, voucher_no: str | None,
           vt_code: str | None, state: str | None) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name in scope.nodes:
        conditions = [scope.where(vouchers.c.admdiv), vouchers.c.is_current.is_(True)]
        if voucher_no:
            conditions.append(vouchers.c.voucher_no.contains(voucher_no, autoescape=True))
        if vt_code:
            conditions.append(vouchers.c.vt_code == vt_code)
        if state:
            conditions.append(vouchers.c.state == state)
        with engines[name].connect() as conn:
            found += [(name, r) for r in conn.execute(
                select(*[c for c in vouchers.c if c.name != "xml"]).where(*conditions)
                .order_by(vouchers.c.id.desc()).limit(LIST_LIMIT))]
    return found[:LIST_LIMIT]


# --- a voucher's trail across nodes ------------------------------------------------------------


@dataclass
class Trail:
    """Every voucher of one payment across the nodes (8202 -> 2301 -> 9301 ...), linked by
    OriVoucherNo, and everything that happened to them, oldest first."""

    root: str
    vouchers: list[tuple[str, Any]]
    steps: list[dict[str, Any]]


def trail(engines: Mapping[str, Engine], scope: Scope, node: str, voucher_id: int) -> Trail:
    start = _one(engines, scope, node, voucher_id)
    root = _root(engines, scope, start)
    linked = _linked(engines, scope, root)
    steps: list[dict[str, Any]] = []
    for name, row in linked:
        ref = f"{row.vt_code}/{row.st_year}/{row.voucher_no}/v{row.version}"
        with engines[name].connect() as conn:
            for e in conn.execute(select(voucher_events).where(
                    voucher_events.c.voucher_id == row.id).order_by(voucher_events.c.id)):
                steps.append({"at": e.at, "node": name, "ref": ref, "direction": row.direction,
                              "event": e.event, "from": e.from_state, "to": e.to_state,
                              "actor": e.actor, "post": e.post, "reason": e.reason,
                              "source": "voucher_events"})
            for a in conn.execute(select(audit_log).where(
                    audit_log.c.voucher_ref == ref, audit_log.c.outcome != "ok")
                    .order_by(audit_log.c.seq)):
                steps.append({"at": a.at, "node": name, "ref": ref, "direction": row.direction,
                              "event": a.action, "from": a.state_before, "to": a.state_after,
                              "actor": a.actor, "post": a.post, "reason": a.detail,
                              "source": "audit_log"})
    steps.sort(key=lambda s: (s["at"], s["node"]))
    return Trail(root, linked, steps)


def _one(engines: Mapping[str, Engine], scope: Scope, node: str, voucher_id: int) -> Any:
    if node not in scope.nodes or node not in engines:
        raise NotFound(f"no voucher {node}/{voucher_id}")
    with engines[node].connect() as conn:
        row = conn.execute(select(vouchers).where(
            vouchers.c.id == voucher_id, scope.where(vouchers.c.admdiv))).first()
    if row is None:
        raise NotFound(f"no voucher {node}/{voucher_id}")
    return row


def _origins(row: Any) -> set[str]:
    """The voucher numbers ``row`` answers: its OriVoucherNo, or those of its detail lines
    (a transfer application lists the payments it asks the treasury to reimburse)."""
    doc = from_xml(row.xml)
    found = {doc.header.get("OriVoucherNo", "")} | {d.get("OriVoucherNo", "")
                                                     for d in doc.details}
    return found - {""}


def _root(engines: Mapping[str, Engine], scope: Scope, row: Any) -> str:
    """Follow the origins back to the first voucher of the payment (while there is one)."""
    for _ in range(TRAIL_DEPTH):
        origins = _origins(row)
        if len(origins) != 1:
            break
        parent = _by_number(engines, scope, origins.pop())
        if parent is None:
            break
        row = parent
    return str(row.voucher_no)


def _by_number(engines: Mapping[str, Engine], scope: Scope, number: str) -> Any:
    for name in scope.nodes:
        with engines[name].connect() as conn:
            row = conn.execute(select(vouchers).where(
                vouchers.c.voucher_no == number, scope.where(vouchers.c.admdiv))
                .order_by(vouchers.c.id).limit(1)).first()
        if row is not None:
            return row
    return None


def _linked(engines: Mapping[str, Engine], scope: Scope, root: str) -> list[tuple[str, Any]]:
    """The root's vouchers and, level by level, those whose origins name a linked one
    (answering vouchers number themselves ``<type>-...-<original no>``)."""
    candidates: list[tuple[str, Any]] = []
    for name in scope.nodes:
        with engines[name].connect() as conn:
            candidates += [(name, r) for r in conn.execute(select(vouchers).where(
                scope.where(vouchers.c.admdiv),
                or_(vouchers.c.voucher_no == root,
                    vouchers.c.voucher_no.endswith(f"-{root}", autoescape=True)))
                .order_by(vouchers.c.created_at).limit(LIST_LIMIT))]
    numbers = {root}
    linked = [(n, r) for n, r in candidates if r.voucher_no == root]
    rest = [(n, r, _origins(r)) for n, r in candidates if r.voucher_no != root]
    for _ in range(TRAIL_DEPTH):
        level = [(n, r) for n, r, ori in rest if ori & numbers]
        if not level:
            break
        linked += level
        numbers |= {r.voucher_no for _, r in level}
        taken = {id(r) for _, r in level}
        rest = [(n, r, ori) for n, r, ori in rest if id(r) not in taken]
    linked.sort(key=lambda pair: (pair[1].created_at, pair[0]))
    return linked
