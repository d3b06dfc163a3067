"""Key ceremony for a deployment or demo workspace: CA, institution keys, seals, USB keys.

Lays out under one directory::

    ca/                         the deployment CA (root + issuing), keys encrypted at rest
    trust/                      what an offline verifier needs: CA certificates and CRLs
    signing/<node>/             each node's signing server: institution keys and official seals
    usb/<username>.token        each clerk's USB key: key pair and personal certificate (what
                                the web sign-in checks); a sealing clerk's also holds the
                                personal seal (私章)
    directory/<party>.pem       every party's institution certificate (to encrypt envelopes to)
    secrets.json                the signing-server client tokens of each node (0600)

Every party's official seals are made by the seal-making authority (电子印章制作中心, a
certificate of the same CA) and authorized for the seal post (盖章岗).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from guoku.domain.controls import Post
from guoku.domain.parties import Party
from guoku.domain.seals import SealKind
from guoku.domain.vouchers import all_types
from guoku.province import NodeSpec, ProvinceSpec, UserSpec
from guoku.security.ca import CertificateAuthority
from guoku.security.crypto import SM2PrivateKey
from guoku.security.seal_image import seal_png
from guoku.security.seals import make_seal
from guoku.security.signing_server import SigningService
from guoku.security.usbkey import SoftwareToken
from guoku.security.x509 import Certificate

SEAL_MAKER_CODE: Final = "SEAL-MAKER"
SEAL_MAKER_NAME: Final = "电子印章制作中心"
SEAL_YEARS: Final = 3
USB_KEY_LABEL: Final = "sign"
USB_CERT_LABEL: Final = "sign-cert"
USB_SEAL_LABEL: Final = "personal-seal"
ADMIN: Final = "key-ceremony"


@dataclass(frozen=True, slots=True)
class Secrets:
    """What a node needs to unlock its security material (passed in, never hard-coded)."""

    passphrase: str
    """Protects the CA and signing-server keys at rest."""
    user_pin: str
    so_pin: str
    kdf_iterations: int


def official_kinds(party: Party) -> list[SealKind]:
    """The official seal kinds a party needs: those on the vouchers its kind sends."""
    kinds = {
        pos.kind
        for vt in all_types()
        if vt.sender is party.kind
        for pos in vt.seal_positions
        if pos.kind is not SealKind.PERSONAL
    }
    return sorted(kinds)


def usb_path(root: Path, username: str) -> Path:
    return root / "usb" / f"{username}.token"


def signing_dir(root: Path, node: NodeSpec) -> Path:
    return root / "signing" / node.name


def publish_certificate(directory: Path, party_code: str, cert: Certificate) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{party_code}.pem").write_bytes(cert.pem)


def read_directory(root: Path) -> dict[str, Certificate]:
    """Institution certificates by party code (validated against the trust when used)."""
    return {
        p.stem: Certificate.from_pem(p.read_bytes())
        for p in sorted((root / "directory").glob("*.pem"))
    }


def read_tokens(root: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads((root / "secrets.json").read_text())
    return data


def provision(
    root: Path, province: ProvinceSpec, secrets: Secrets, now: datetime,
    ca_name: str = "guoku 财政电子凭证 CA",
) -> None:
    """Run the whole key ceremony into ``root`` (which must not hold a CA yet)."""
    ca = CertificateAuthority.create(root / "ca", ca_name, secrets.passphrase, now,
                                     kdf_iterations=secrets.kdf_iterations)
    maker_key = SM2PrivateKey.generate()
    maker_cert = ca.issue_institution(SEAL_MAKER_CODE, SEAL_MAKER_NAME, maker_key.public_key(),
                                      now)
    maker = (maker_key, maker_cert)
    tokens: dict[str, str] = {}
    for node in province.nodes:
        tokens[node.name] = _node_signing_server(root, ca, province, node, maker, secrets, now)
    for user in province.users:
        _usb_key(root, ca, province.party(user.party), user, maker, secrets, now)
    ca.export_trust(root / "trust", now)
    secrets_file = root / "secrets.json"
    secrets_file.write_text(json.dumps(tokens, indent=2))
    os.chmod(secrets_file, 0o600)


def _node_signing_server(
    root: Path, ca: CertificateAuthority, province: ProvinceSpec, node: NodeSpec,
    maker: tuple[SM2PrivateKey, Certificate], secrets: Secrets, now: datetime,
) -> str:
    with SigningService.create(signing_dir(root, node), secrets.passphrase, admin=ADMIN,
                               kdf_iterations=secrets.kdf_iterations) as service:
        return _hold_party_keys(root, service, ca, province, node, maker, now)


def _hold_party_keys(
    root: Path, service: SigningService, ca: CertificateAuthority, province: ProvinceSpec,
    node: NodeSpec, maker: tuple[SM2PrivateKey, Certificate], now: datetime,
) -> str:
    for code in node.parties:
        party = province.party(code)
        key = SM2PrivateKey.generate()
        cert = ca.issue_institution(party.code, party.name, key.public_key(), now)
        service.add_institution_key(party.code, key, cert, admin=ADMIN)
        publish_certificate(root / "directory", party.code, cert)
        for kind in official_kinds(party):
            seal = _make_seal(f"{party.code}-{kind.value}", party.name, kind, [cert], maker, now)
            es_id = service.add_seal(seal, admin=ADMIN)
            service.authorize(es_id, Post.SEAL, now, now + timedelta(days=365 * SEAL_YEARS),
                              admin=ADMIN)
    return service.register_client(node.name, list(node.parties), admin=ADMIN)


def _make_seal(
    es_id: str, name: str, kind: SealKind, holders: Iterable[Certificate],
    maker: tuple[SM2PrivateKey, Certificate], now: datetime,
) -> bytes:
    maker_key, maker_cert = maker
    seal = make_seal(
        es_id, name, kind, [c.der for c in holders], seal_png(kind, name), now,
        now + timedelta(days=365 * SEAL_YEARS), maker_key, maker_cert.der, now,
    )
    return seal.der


def _usb_key(
    root: Path, ca: CertificateAuthority, party: Party, user: UserSpec,
    maker: tuple[SM2PrivateKey, Certificate], secrets: Secrets, now: datetime,
) -> None:
    path = usb_path(root, user.username)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = SoftwareToken.initialize(path, user.username, secrets.so_pin, secrets.user_pin,
                                     iterations=secrets.kdf_iterations)
    token.login(secrets.user_pin)
    public = token.generate_sm2_key(USB_KEY_LABEL)
    cert = ca.issue_personal(user.username, party.code, user.name, public, now)
    token.store_certificate(USB_CERT_LABEL, cert.der)
    if Post.SEAL not in user.posts:
        token.logout()
        return
    seal = _make_seal(f"{user.username}-personal", user.name, SealKind.PERSONAL, [cert], maker,
                      now)
    token.store_object(USB_SEAL_LABEL, seal)
    token.logout()
