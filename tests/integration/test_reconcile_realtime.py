"""Real-time reconciliation (issue 7, item 4): each voucher is reconciled as its counterpart
arrives, and a discrepancy is raised within 1 s of the counterpart's arrival.

The counterpart is the receiving node's *delivered* receipt: it carries the SM3 of the copy
the receiver stored and the amount it read, and the sender compares them with its own copy in
the transaction that applies the receipt (``reconcile.realtime``). Here the sender's copy is
changed after sending — a real mismatch, not a mocked one — and the time is measured on the
wall clock, on SQLite files and on PostgreSQL schemas:

* *arrival -> raised*: from the moment the envelope carrying the receipt is handed to the
  sender's node (``Messenger.handle``) to the moment that call returns, the discrepancy
  committed (it is then read back through another connection);
* *stored -> raised*: from the moment the voucher's envelope is handed to the receiver's node,
  through storing its copy, the receipt's way back over the embedded transport, to the same
  commit.

The figures are printed (``pytest -s``) and recorded as test properties. The assertion is the
issue's own bound, 1 s; an idle embedded workspace takes tens of milliseconds (figures in
docs/decisions/0015), so the bound leaves a margin of well over ten times for a busy machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, update

from guoku.store.tables import discrepancies, vouchers
from guoku.workspace import Workspace
from tests.integration.test_middleware_embedded import _send

ROUNDS = 8
BOUND_S = 1.0
"""The issue's requirement (item 4 / item 7: within 1 s of the counterpart's arrival)."""


def _raised(ws: Workspace) -> set[str]:
    with ws.nodes["finance"].engine.connect() as conn:
        return set(conn.execute(select(discrepancies.c.voucher_no)).scalars())


def test_a_mismatch_is_raised_within_a_second_of_the_counterparts_arrival(
    province: Workspace, monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    sender = province.network.messengers["finance"]
    receiver = province.network.messengers["bank-icbc"]
    stored_from: list[float] = []
    raised: list[tuple[float, float]] = []
    """(handed to the sender, discrepancy committed) of each envelope whose handling raised."""

    def receiving(handle: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def timed(body: bytes) -> None:
            stored_from.append(time.perf_counter())
            handle(body)
        return timed

    def sending(handle: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def timed(body: bytes) -> None:
            before = _raised(province)
            start = time.perf_counter()
            handle(body)
            end = time.perf_counter()
            if _raised(province) - before:  # read through another connection: committed
                raised.append((start, end))
        return timed

    monkeypatch.setattr(receiver, "handle", receiving(receiver.handle))
    monkeypatch.setattr(sender, "handle", sending(sender.handle))

    arrival_to_raised, stored_to_raised = [], []
    for i in range(ROUNDS):
        no = f"RT{i:04d}"
        row = _send(province, no, "500.00")
        with province.nodes["finance"].engine.begin() as conn:  # our copy changes after sending
            conn.execute(update(vouchers).where(vouchers.c.id == row.id).values(amount_fen=50))
        stored_from.clear()
        raised.clear()
        before = _raised(province)
        province.network.pump()
        assert _raised(province) - before == {no}
        [(arrived, committed)] = raised
        arrival_to_raised.append(committed - arrived)
        stored_to_raised.append(committed - stored_from[0])

    with province.nodes["finance"].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(discrepancies).where(
            discrepancies.c.kind == "amount_mismatch", discrepancies.c.layer == 1,
            discrepancies.c.left_amount_fen == 50, discrepancies.c.right_amount_fen == 50_000,
        )).scalar_one() == ROUNDS
    figures = {
        "arrival_to_raised_ms": _summary(arrival_to_raised),
        "stored_to_raised_ms": _summary(stored_to_raised),
    }
    backend = province.nodes["finance"].engine.dialect.name
    print(f"\nreal-time reconciliation on {backend}, {ROUNDS} mismatches: {figures}")
    record_property(f"realtime_{backend}", figures)
    assert max(stored_to_raised) < BOUND_S, figures


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"median": round(statistics.median(ms), 1), "max": round(ms[-1], 1),
            "min": round(ms[0], 1)}
