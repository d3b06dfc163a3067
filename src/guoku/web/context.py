"""What every web route works on: the province's nodes, and how sent vouchers travel.

Over a demo workspace (``guoku web --workdir DIR``) all nodes live in this process and a
background thread pumps the in-process transport, so a voucher sent from the counter reaches
the bank as it would through a node process. Over a deployment, the node processes relay the
outbox themselves and ``pump`` is ``None``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine

from guoku.bootstrap import Node
from guoku.library.ports import Clock, system_clock
from guoku.library.service import VoucherLibrary
from guoku.province import ProvinceSpec, UserSpec
from guoku.workspace import Workspace

PUMP_INTERVAL_S = 0.3


@dataclass
class WebContext:
    province: ProvinceSpec
    nodes: dict[str, Node]
    pump: Callable[[], int] | None = None
    clock: Clock = system_clock
    workspace: Workspace | None = None
    _pump_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def over_workspace(cls, ws: Workspace, clock: Clock = system_clock) -> WebContext:
        return cls(ws.province, ws.nodes, ws.network.pump, clock, ws)

    def node_for_party(self, party: str) -> Node:
        return self.nodes[self.province.node_of(party).name]

    def library(self, party: str) -> VoucherLibrary:
        return self.node_for_party(party).library

    def engine(self, party: str) -> Engine:
        return self.node_for_party(party).engine

    def user_spec(self, username: str) -> UserSpec | None:
        """The province's record of a user (their party decides which node holds them)."""
        return next((u for u in self.province.users if u.username == username), None)

    def settle(self) -> int:
        """Deliver what is waiting in the in-process transport (no-op on a deployment)."""
        if self.pump is None:
            return 0
        with self._pump_lock:
            return self.pump()


def get_context(request: Request) -> WebContext:
    """FastAPI dependency: the app's :class:`WebContext` (``app.state.ctx``)."""
    ctx: WebContext = request.app.state.ctx
    return ctx
