"""A demo workspace: every node of a province on SQLite files, wired in one process.

``guoku demo`` creates one; ``guoku voucher ... --workdir`` and ``guoku audit verify --workdir``
open it again. Layout::

    WORKDIR/nodes/<node>.db     each node's voucher library (SQLite, migrated by Alembic)
    WORKDIR/security/           CA, signing servers, USB keys (see guoku.security.provision)
    WORKDIR/trust/              trust anchors for offline `guoku verify`
    WORKDIR/export/             every voucher the demo made, as sealed XML
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from guoku.bootstrap import Node, workspace_urls
from guoku.library.ports import Clock, system_clock
from guoku.library.service import VoucherLibrary
from guoku.node.bootstrap import DEMO_SECRETS, assemble
from guoku.province import ProvinceSpec, demo_province
from guoku.security.certs import TrustStore
from guoku.security.provision import Secrets, provision
from guoku.security.signing_server import SigningService
from guoku.transport.embedded import EmbeddedTransport
from guoku.transport.messenger import Messenger


@dataclass
class EmbeddedNetwork:
    """All nodes' messengers over the in-process transport."""

    messengers: dict[str, Messenger]
    transport: EmbeddedTransport

    def pump(self, duplicate: bool = False) -> int:
        return self.transport.pump(self.messengers.values(), duplicate)


@dataclass
class Workspace:
    workdir: Path
    province: ProvinceSpec
    nodes: dict[str, Node]
    network: EmbeddedNetwork
    trust: TrustStore
    signing: list[SigningService]

    def close(self) -> None:
        """Release the signing-server directories and the database connections."""
        for service in self.signing:
            service.close()
        for node in self.nodes.values():
            node.engine.dispose()

    @property
    def security_dir(self) -> Path:
        return self.workdir / "security"

    def node_for(self, party_code: str) -> Node:
        return self.nodes[self.province.node_of(party_code).name]


def create(
    workdir: Path, now: datetime, secrets: Secrets = DEMO_SECRETS,
    province: ProvinceSpec | None = None, clock: Clock = system_clock,
) -> Workspace:
    """A fresh workspace (an old one at ``workdir`` is removed first: the demo is rerunnable)."""
    province = province or demo_province()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    provision(workdir / "security", province, secrets, now)
    shutil.copytree(workdir / "security" / "trust", workdir / "trust")
    return open_workspace(workdir, secrets, province, clock)


def open_workspace(
    workdir: Path, secrets: Secrets = DEMO_SECRETS, province: ProvinceSpec | None = None,
    clock: Clock = system_clock, urls: dict[str, str] | None = None,
) -> Workspace:
    """Open every node; ``urls`` (node name -> database URL) default to the SQLite files."""
    province = province or demo_province()
    security = workdir / "security"
    trust = TrustStore.from_directory(security / "trust")
    urls = urls or workspace_urls(workdir, province)
    assembled = {
        spec.name: assemble(security, spec, urls[spec.name], secrets=secrets, province=province,
                            trust=trust, clock=clock)
        for spec in province.nodes
    }
    network = EmbeddedNetwork({n: a.messenger for n, a in assembled.items()},
                              EmbeddedTransport())
    return Workspace(workdir, province, {n: a.node for n, a in assembled.items()}, network,
                     trust, [a.signing for a in assembled.values() if a.signing is not None])


@dataclass
class EmbeddedProvince:
    """A workspace seen by the flows: each party's library, and delivery by pumping."""

    ws: Workspace

    def library(self, party: str) -> VoucherLibrary:
        return self.ws.node_for(party).library

    def settle(self) -> None:
        self.ws.network.pump()
