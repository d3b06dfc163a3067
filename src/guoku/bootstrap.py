"""One place that builds the object graph — store, security, transport, clock — for the CLI,
the demo, the node process and the tests. Entry points stay thin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from guoku.library.admin import install
from guoku.library.hooks import Hooks
from guoku.library.ports import Clock, Sealer, SealVerifier, system_clock
from guoku.library.service import VoucherLibrary
from guoku.province import NodeSpec, ProvinceSpec
from guoku.store.engine import make_engine, sqlite_url
from guoku.store.migrate import upgrade


@dataclass
class Node:
    spec: NodeSpec
    engine: Engine
    library: VoucherLibrary


def open_engine(url: str) -> Engine:
    """Engine with the schema at the newest migration."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


def node_db_path(workdir: Path, node: NodeSpec) -> Path:
    return workdir / "nodes" / f"{node.name}.db"


def build_node(
    url: str, province: ProvinceSpec, spec: NodeSpec, sealer: Sealer, verifier: SealVerifier,
    clock: Clock = system_clock, default_password: str | None = None,
    hooks: Hooks | None = None,
) -> Node:
    engine = open_engine(url)
    install(engine, province, spec, clock, default_password)
    library = VoucherLibrary(engine, spec.node_party, sealer, verifier, clock, hooks,
                             spec.parties)
    return Node(spec, engine, library)


def workspace_urls(workdir: Path, province: ProvinceSpec) -> dict[str, str]:
    (workdir / "nodes").mkdir(parents=True, exist_ok=True)
    return {n.name: sqlite_url(node_db_path(workdir, n)) for n in province.nodes}
