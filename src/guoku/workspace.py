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
from typing import Final

from guoku.bootstrap import Node, build_node, workspace_urls
from guoku.library.ports import Clock, system_clock
from guoku.province import ProvinceSpec, demo_province
from guoku.security.certs import TrustStore
from guoku.security.personal_seal import UsbPersonalSeal
from guoku.security.provision import (
    Secrets,
    provision,
    read_directory,
    read_tokens,
    signing_dir,
    usb_path,
)
from guoku.security.sealing import VoucherSealer, VoucherVerifier
from guoku.security.signing_server import LocalSigningClient, SigningService
from guoku.transport.embedded import EmbeddedTransport
from guoku.transport.messenger import Messenger

DEMO_SECRETS: Final = Secrets(
    passphrase="guoku-demo-passphrase", user_pin="246810", so_pin="13579086",
    kdf_iterations=10_000,
)
"""Demo only: a real deployment reads these from its operators, never from code."""
DEMO_PASSWORD: Final = "guoku-demo"


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
    tokens = read_tokens(security)
    urls = urls or workspace_urls(workdir, province)
    verifier = VoucherVerifier(trust)
    certificates = read_directory(security)
    nodes: dict[str, Node] = {}
    messengers: dict[str, Messenger] = {}
    services: list[SigningService] = []
    for spec in province.nodes:
        service = SigningService.open(signing_dir(security, spec), secrets.passphrase)
        services.append(service)
        client = LocalSigningClient(service, tokens[spec.name])

        def personal(username: str) -> UsbPersonalSeal:
            return UsbPersonalSeal.open(usb_path(security, username), secrets.user_pin)

        sealer = VoucherSealer(client, personal)
        node = build_node(urls[spec.name], province, spec, sealer, verifier, clock, DEMO_PASSWORD)
        nodes[spec.name] = node
        messengers[spec.name] = Messenger(spec, province, node.library, client, certificates,
                                          trust, clock)
    network = EmbeddedNetwork(messengers, EmbeddedTransport())
    return Workspace(workdir, province, nodes, network, trust, services)
