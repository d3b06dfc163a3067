"""Reconciliation (对账) in three layers — the engine the reconciliation runs call.

1. :func:`layer1` — library to library: what one node sent against what another received,
   voucher by voucher (missing, extra, amount and status mismatches);
2. :func:`layer2` — a library against its business ledger, both ways (unbooked, booked without
   a voucher, amount and status mismatches, duplicate and misbooked postings);
3. :func:`layer3` — finance's payments against the agent banks' advances and the treasury's
   clearing, and the refunds (2302 / 2203 / 2204 / 3208) across the same three books, one by
   one and in total by unit, fund type and day.

Each returns an iterator of :class:`Break` — streamed, never a list of everything — so a run of
any size holds one chunk of rows per side. Where the sides are separate databases, a layer
merges streams sorted by its key (``reconcile.merge``); where they are schemas of one
PostgreSQL database it joins them in SQL (``method="auto"`` picks, ``"sql"``/``"merge"``
insist). :func:`concurrently` runs independent layers side by side, still yielding their breaks
in order. docs/decisions/0015-reconciliation-engine.md gives the reasons and the figures.
"""

from guoku.reconcile.breaks import Break, BreakKind, Layer, Period
from guoku.reconcile.layer1 import DEFAULT_GRACE, layer1
from guoku.reconcile.layer2 import layer2
from guoku.reconcile.layer3 import layer3
from guoku.reconcile.merge import Method, NotColocated, StreamOutOfOrder, concurrently

__all__ = [
    "DEFAULT_GRACE",
    "Break",
    "BreakKind",
    "Layer",
    "Method",
    "NotColocated",
    "Period",
    "StreamOutOfOrder",
    "concurrently",
    "layer1",
    "layer2",
    "layer3",
]
