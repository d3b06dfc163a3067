"""Assemble one voucher-library node from a provisioned security home and a database URL.

The same assembly serves the embedded workspace (every node in one process) and the production
node process (`guoku node run`): library, sealer (signing server + USB keys), verifier (trust
anchors) and messenger (envelopes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from guoku.books.ledger import BusinessLedger
from guoku.books.payee_hooks import PayeeChecks
from guoku.books.quota_hooks import FinanceQuota
from guoku.bootstrap import Node, build_node, open_engine
from guoku.domain.parties import PartyKind
from guoku.library.admin import install
from guoku.library.hooks import AllHooks, Hooks
from guoku.library.ports import Clock, system_clock
from guoku.province import NodeSpec, ProvinceSpec, demo_province
from guoku.security.certs import TrustStore
from guoku.security.personal_seal import UsbPersonalSeal
from guoku.security.provision import (
    Secrets,
    read_directory,
    read_tokens,
    signing_dir,
    usb_path,
)
from guoku.security.sealing import VoucherSealer, VoucherVerifier
from guoku.security.signing_http import HttpSigningClient
from guoku.security.signing_server import LocalSigningClient, SigningService
from guoku.transport.messenger import Messenger

DEMO_SECRETS = Secrets(
    passphrase="guoku-demo-passphrase", user_pin="246810", so_pin="13579086",
    kdf_iterations=10_000,
)
"""Demo only: a real deployment passes its secrets in (``secrets_from_env``)."""
DEMO_PASSWORD = "guoku-demo"


def secrets_from_env() -> Secrets:
    """GUOKU_SIGNING_PASSPHRASE and GUOKU_USB_PIN; the demo's values when unset."""
    return Secrets(
        passphrase=os.environ.get("GUOKU_SIGNING_PASSPHRASE", DEMO_SECRETS.passphrase),
        user_pin=os.environ.get("GUOKU_USB_PIN", DEMO_SECRETS.user_pin),
        so_pin=DEMO_SECRETS.so_pin, kdf_iterations=DEMO_SECRETS.kdf_iterations,
    )


@dataclass
class AssembledNode:
    node: Node
    messenger: Messenger
    signing: SigningService | None
    """Open here when the node uses its signing-server directory in process; None when it
    talks to a signing server process over HTTP."""

    def close(self) -> None:
        if self.signing is not None:
            self.signing.close()
        self.node.engine.dispose()


def business_hooks(kind: PartyKind) -> Hooks:
    """What the party's business system books as its vouchers move."""
    if kind is PartyKind.FINANCE:
        return AllHooks([FinanceQuota(), PayeeChecks(), BusinessLedger()])
    if kind is PartyKind.BANK:
        return AllHooks([PayeeChecks(), BusinessLedger()])
    return BusinessLedger()


def resolve_node(province: ProvinceSpec, name_or_party: str) -> NodeSpec:
    for spec in province.nodes:
        if spec.name == name_or_party:
            return spec
    return province.node_of(name_or_party)


def assemble(
    home: Path, spec: NodeSpec, db_url: str, *, secrets: Secrets = DEMO_SECRETS,
    province: ProvinceSpec | None = None, trust: TrustStore | None = None,
    clock: Clock = system_clock, signing_url: str | None = None,
) -> AssembledNode:
    """One node: its signing server (in process, or at ``signing_url``), its database
    migrated and seeded."""
    province = province or demo_province()
    trust = trust or TrustStore.from_directory(home / "trust")
    token = read_tokens(home)[spec.name]
    service: SigningService | None = None
    client: LocalSigningClient | HttpSigningClient
    if signing_url:
        client = HttpSigningClient(signing_url, token)
    else:
        service = SigningService.open(signing_dir(home, spec), secrets.passphrase)
        client = LocalSigningClient(service, token)

    def personal(username: str) -> UsbPersonalSeal:
        return UsbPersonalSeal.open(usb_path(home, username), secrets.user_pin)

    node = build_node(db_url, province, spec, VoucherSealer(client, personal),
                      VoucherVerifier(trust), clock, DEMO_PASSWORD,
                      business_hooks(province.party(spec.node_party).kind))
    messenger = Messenger(spec, province, node.library, client, read_directory(home), trust,
                          clock)
    return AssembledNode(node, messenger, service)


def prepare_database(db_url: str, province: ProvinceSpec, spec: NodeSpec,
                     password: str = DEMO_PASSWORD) -> None:
    """Migrate and seed a node's database once, before its worker processes start (so they
    never race each other through the migrations)."""
    engine = open_engine(db_url)
    try:
        install(engine, province, spec, default_password=password)
    finally:
        engine.dispose()


def build_messenger(home: Path, node_name: str, db_url: str,
                    signing_url: str | None = None,
                    province: ProvinceSpec | None = None) -> Messenger:
    """For `guoku node run`: the node named (or serving the party) ``node_name`` of
    ``province`` (the demo's when None)."""
    province = province or demo_province()
    return assemble(home, resolve_node(province, node_name), db_url,
                    secrets=secrets_from_env(), province=province,
                    signing_url=signing_url).messenger
