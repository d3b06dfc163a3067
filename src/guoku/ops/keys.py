"""A node's institution key for operations: signing backup manifests, sealing archives.

The key never leaves the node's signing server (``security/signing/<node>`` of the key
ceremony, see ``guoku.security.provision``); operations ask it to sign, as the node's own
client, like the middleware does for envelopes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from guoku.domain.controls import Post
from guoku.domain.seals import SealKind
from guoku.node.bootstrap import resolve_node, secrets_from_env
from guoku.province import NodeSpec, ProvinceSpec, demo_province
from guoku.security.provision import Secrets, official_kinds, read_tokens, signing_dir
from guoku.security.signing_server import LocalSigningClient, SigningService
from guoku.security.x509 import Certificate

OPERATOR = "ops"
"""How operations name themselves to the signing server's audit log."""


@dataclass(frozen=True)
class NodeKeys:
    """The node's party and its signing-server client."""

    spec: NodeSpec
    province: ProvinceSpec
    client: LocalSigningClient
    home: Path
    """The key-ceremony directory (its ``trust/`` holds the anchors to verify with)."""

    @property
    def party(self) -> str:
        return self.spec.node_party

    def certificate(self) -> Certificate:
        return self.client.institution_certificate(self.party)

    def sign(self, data: bytes) -> bytes:
        """Raw SM2/SM3 signature with the node party's institution key."""
        return self.client.sign(self.party, data)

    def seal_kind(self) -> SealKind:
        """The official seal the node stamps its archives with: its party's first."""
        return official_kinds(self.province.party(self.party))[0]

    def seal(self, data: bytes, now: datetime, property_info: str) -> bytes:
        """签章 with the node party's official seal (SES_Signature, the seal post's use)."""
        return self.client.seal_sign(username=OPERATOR, post=Post.SEAL, party_code=self.party,
                                     kind=self.seal_kind(), data=data, now=now,
                                     property_info=property_info)


@contextmanager
def node_keys(home: Path, node: str, *, secrets: Secrets | None = None,
              province: ProvinceSpec | None = None) -> Iterator[NodeKeys]:
    """Open ``node``'s signing server under ``home`` (a key-ceremony directory) for the
    duration; the passphrase comes from GUOKU_SIGNING_PASSPHRASE (the demo's when unset)."""
    province = province or demo_province()
    spec = resolve_node(province, node)
    secrets = secrets or secrets_from_env()
    service = SigningService.open(signing_dir(home, spec), secrets.passphrase)
    try:
        yield NodeKeys(spec, province,
                       LocalSigningClient(service, read_tokens(home)[spec.name]), home)
    finally:
        service.close()
