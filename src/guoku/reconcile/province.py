"""The layers over a whole province's node databases — what ``guoku reconcile`` and the
operator console run: layer 1 between finance and each bank, finance and the treasury, each
bank and the treasury; layer 2 on every node; layer 3 across finance, the banks and the
treasury. Node names follow the province spec (``finance``, ``pboc``, ``bank-*``).

The layers run side by side (:func:`guoku.reconcile.merge.concurrently`, each on its own
connections): most of a layer's time is its database working on a join, and the joins of
different layers overlap on the server's cores. The breaks come out in the same order as one
layer after the other (10^6 vouchers a side: 7.6 s side by side against 9.5 s in sequence,
docs/decisions/0015)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial

from sqlalchemy import Engine

from guoku.province import ProvinceSpec
from guoku.reconcile.breaks import Break
from guoku.reconcile.layer1 import layer1
from guoku.reconcile.layer2 import layer2
from guoku.reconcile.layer3 import layer3
from guoku.reconcile.merge import concurrently


def province_breaks(engines: Mapping[str, Engine], spec: ProvinceSpec, layers: Sequence[int],
                    day: str | None, month: str | None) -> Iterator[Break]:
    parties = {n.name: n.parties for n in spec.nodes if n.name in engines}
    banks = [n for n in parties if n.startswith("bank")]
    streams: list[Iterable[Break]] = []
    if 1 in layers:
        pairs = [("finance", b) for b in banks] + [("finance", "pboc")] + \
            [(b, "pboc") for b in banks]
        streams += [layer1(engines[a], parties[a], engines[b], parties[b], day=day,
                           month=month) for a, b in pairs]
    if 2 in layers:
        streams += [layer2(engines[name], day=day, month=month) for name in engines]
    if 3 in layers:
        streams.append(layer3(engines["finance"], [engines[b] for b in banks],
                              engines["pboc"], day=day, month=month))
    return concurrently([partial(iter, stream) for stream in streams])
