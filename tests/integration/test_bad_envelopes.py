"""Every bad envelope is refused by the receiving node, recorded, and answered with a signed
error receipt that moves the sender's vouchers to failed with the reason."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from guoku.province import demo_province
from guoku.security.ca import CertificateAuthority
from guoku.security.crypto import SM2PrivateKey
from guoku.store.tables import rejected_envelopes, vouchers
from guoku.transport import envelope as env
from guoku.workspace import DEMO_SECRETS, Workspace, open_workspace
from guoku.xml.samples import sample_document

COUNTY = "533103"
Tamper = Callable[[Workspace, bytes, Path], bytes]


@pytest.fixture
def ws(tmp_path: Path, security_material: Path) -> Iterator[Workspace]:
    shutil.copytree(security_material, tmp_path / "security")
    workspace = open_workspace(tmp_path, DEMO_SECRETS, demo_province())
    yield workspace
    workspace.close()


def _resign(ws: Workspace, root: etree._Element, key: SM2PrivateKey | None = None) -> bytes:
    """Re-sign a modified envelope — with the real sender key unless ``key`` is given."""
    signed = etree.Element("MOF", Version="1")
    for child in list(root)[:4]:
        signed.append(etree.fromstring(etree.tostring(child)))
    data = etree.tostring(signed, method="c14n", exclusive=True, with_comments=False)
    if key is None:
        sig = ws.network.messengers["finance"].keys.sign(root.findtext("Head/SrcNode"), data)
    else:
        sig = key.sign(data)
    root.find("Signature").text = base64.b64encode(sig).decode()
    return etree.tostring(root)


def _head(ws: Workspace, body: bytes, name: str, value: str) -> etree._Element:
    root = etree.fromstring(body)
    root.find(f"Head/{name}").text = value
    return root


def wrong_receiver(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    return _resign(ws, _head(ws, body, "DesNode", "B-ABC"))


def replayed(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    old = (datetime.now(UTC) - env.REPLAY_WINDOW - timedelta(hours=1))
    return _resign(ws, _head(ws, body, "SendTime", old.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))


def bad_signature(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    """A head field changed in transit, not re-signed."""
    return body.replace(b"<AdmDivCode>533103", b"<AdmDivCode>533102", 1)


def unknown_sender(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    now = datetime.now(UTC)
    rogue = CertificateAuthority.create(tmp / "rogue", "rogue", "rogue-passphrase", now,
                                        kdf_iterations=DEMO_SECRETS.kdf_iterations)
    key = SM2PrivateKey.generate()
    cert = rogue.issue_institution(f"F{COUNTY}", "芒市财政局", key.public_key(), now)
    root = etree.fromstring(body)
    root.find("Cert").text = base64.b64encode(cert.der).decode()
    return _resign(ws, root, key)


def undecryptable(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    root = etree.fromstring(body)
    other = SM2PrivateKey.generate().public_key()
    root.find("Key").text = base64.b64encode(other.encrypt(b"k" * 16)).decode()
    return _resign(ws, root)


def oversize(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    return body + b" " * env.MAX_ENVELOPE_BYTES


def malformed(ws: Workspace, body: bytes, tmp: Path) -> bytes:
    return body.replace(b"</Head>", b"</Head><Extra/>", 1)


CASES: list[tuple[Tamper, str]] = [
    (wrong_receiver, "ENVELOPE_WRONG_RECEIVER"),
    (replayed, "ENVELOPE_REPLAYED"),
    (bad_signature, "ENVELOPE_SIGNATURE_INVALID"),
    (unknown_sender, "ENVELOPE_SENDER_UNTRUSTED"),
    (undecryptable, "ENVELOPE_UNDECRYPTABLE"),
    (oversize, "ENVELOPE_TOO_LARGE"),
    (malformed, "ENVELOPE_MALFORMED"),
]


@pytest.mark.parametrize(("tamper", "code"), CASES, ids=[c for _, c in CASES])
def test_a_bad_envelope_is_refused_recorded_and_fails_the_senders_vouchers(
    ws: Workspace, tmp_path: Path, tamper: Tamper, code: str,
) -> None:
    fin = ws.node_for(f"F{COUNTY}").library
    doc = sample_document("5201", voucher_no="E0001", amount="77.00", admdiv=COUNTY)
    row = fin.create(f"fin-{COUNTY}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
    fin.check(f"fin-{COUNTY}-review", row.id)
    fin.seal(f"fin-{COUNTY}-seal", row.id)
    fin.send(f"fin-{COUNTY}-seal", row.id)
    sender = ws.network.messengers["finance"]
    (envelope,) = sender.pending()
    sender.mark_published(envelope)
    ws.network.messengers["bank-icbc"].handle(tamper(ws, envelope.body, tmp_path))
    ws.network.pump()
    with ws.nodes["bank-icbc"].engine.connect() as conn:
        rejected = conn.execute(select(rejected_envelopes)).one()
        assert conn.execute(select(vouchers)).first() is None
    assert rejected.code == code
    failed = fin.get(f"fin-{COUNTY}-entry", row.id)
    if code in ("ENVELOPE_TOO_LARGE", "ENVELOPE_MALFORMED") and rejected.envelope_id is None:
        assert failed.state == "sent"  # nothing readable to answer: the time limit settles it
    else:
        assert failed.state == "failed" and code in (failed.return_reason or "")
