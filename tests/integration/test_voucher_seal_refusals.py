"""Every refusal of voucher verification, with a real tampered, forged, revoked, expired or
incomplete input delivered to the receiving node: refused, nothing stored, the refusal audited."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from sqlalchemy import func, select

from guoku.domain.errors import GuokuError
from guoku.domain.seals import SealKind
from guoku.province import demo_province
from guoku.security import ses
from guoku.security.ca import CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.security.crypto import SM2PrivateKey
from guoku.security.personal_seal import UsbPersonalSeal
from guoku.security.provision import usb_path
from guoku.security.seal_image import seal_png
from guoku.security.sealing import StampMissing, VoucherVerifier
from guoku.security.seals import (
    SealChainInvalid,
    SealDataMismatch,
    SealExpired,
    make_seal,
    sign_with_seal,
)
from guoku.store.tables import audit_log, inbox, outbox, vouchers
from guoku.workspace import DEMO_SECRETS, Workspace, open_workspace
from guoku.xml.canonical import canonical_bytes
from guoku.xml.codec import from_xml, to_xml
from guoku.xml.samples import sample_document

COUNTY = "533103"
SEALER = f"fin-{COUNTY}-seal"


@pytest.fixture
def ws(tmp_path: Path, security_material: Path) -> Iterator[Workspace]:
    shutil.copytree(security_material, tmp_path / "security")
    workspace = open_workspace(tmp_path, DEMO_SECRETS, demo_province())
    yield workspace
    workspace.close()


def _sealed(ws: Workspace, no: str) -> bytes:
    """A voucher entered, reviewed and sealed by three clerks of Mangshi finance."""
    fin = ws.node_for(f"F{COUNTY}").library
    doc = sample_document("5201", voucher_no=no, amount="300.00", admdiv=COUNTY)
    row = fin.create(f"fin-{COUNTY}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
    fin.check(f"fin-{COUNTY}-review", row.id)
    return fin.seal(SEALER, row.id).xml


def _deliver(ws: Workspace, payload: bytes, sender: str = f"F{COUNTY}") -> str:
    message_id = uuid.uuid4().hex
    outcome = ws.node_for("B-ICBC").library.receive(sender, "B-ICBC", message_id, "voucher",
                                                    payload)
    return f"{outcome}:{message_id}"


def _assert_refused(ws: Workspace, payload: bytes, error: type[GuokuError] | str,
                    sender: str = f"F{COUNTY}") -> dict[str, str]:
    """Refused: nothing stored, the refusal audited, an error receipt queued for the sender."""
    code = error if isinstance(error, str) else error.code
    bank = ws.node_for("B-ICBC").engine
    with bank.connect() as conn:
        refused_before = conn.execute(select(func.count()).select_from(audit_log)
                                      .where(audit_log.c.outcome == "refused")).scalar_one()
    outcome, message_id = _deliver(ws, payload, sender).split(":")
    assert outcome == "refused"
    with bank.connect() as conn:
        assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == 0
        refused = conn.execute(select(func.count()).select_from(audit_log)
                               .where(audit_log.c.outcome == "refused")).scalar_one()
        seen = conn.execute(select(inbox).where(inbox.c.message_id == message_id)).one()
        answer = conn.execute(select(outbox).where(outbox.c.kind == "error")).one()
    assert refused == refused_before + 1
    detail: dict[str, str] = json.loads(seen.detail)
    assert detail["code"] == code, detail
    error_receipt = json.loads(answer.payload)
    assert (answer.receiver_party, error_receipt["ref"], error_receipt["code"]) == (
        sender, message_id, code)
    return detail


def _restamp(payload: bytes, position: str, der: bytes | None) -> bytes:
    doc = from_xml(payload)
    stamps = dict(doc.stamps)
    if der is None:
        del stamps[position]
    else:
        stamps[position] = base64.b64encode(der).decode()
    return to_xml(doc.with_stamps(stamps))


def test_an_intact_voucher_is_accepted_by_the_receiving_node(ws: Workspace) -> None:
    assert _deliver(ws, _sealed(ws, "S0001")).startswith("stored:")
    with ws.node_for("B-ICBC").engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == 1


def test_a_field_changed_after_sealing_is_refused(ws: Workspace) -> None:
    payload = _sealed(ws, "S0002").replace(b"<PayeeAcctName>", b"<PayeeAcctName>X", 1)
    _assert_refused(ws, payload, SealDataMismatch)


def test_a_voucher_sealed_by_another_party_is_refused(ws: Workspace) -> None:
    _assert_refused(ws, _sealed(ws, "S0003"), "SEAL_WRONG_PARTY", sender="F533102")


def test_a_seal_forged_under_an_unknown_ca_is_refused(ws: Workspace, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    rogue = CertificateAuthority.create(tmp_path / "rogue-ca", "rogue", "rogue-passphrase", now,
                                        kdf_iterations=DEMO_SECRETS.kdf_iterations)
    key = SM2PrivateKey.generate()
    cert = rogue.issue_institution(f"F{COUNTY}", "芒市财政局", key.public_key(), now)
    seal = make_seal("forged", "芒市财政局", SealKind.UNIT_FINANCE, cert.der,
                     seal_png(SealKind.UNIT_FINANCE, "芒市财政局"), now, now + timedelta(days=9),
                     key, cert.der, now)
    payload = _sealed(ws, "S0004")
    data = canonical_bytes(from_xml(payload).without_stamps())
    forged = sign_with_seal(seal, key, cert.der, data, now,
                            f"guoku;pos=1;kind=unit_finance;user={SEALER};post=seal")
    _assert_refused(ws, _restamp(payload, "1", forged), SealChainInvalid)


def test_a_stamp_by_a_revoked_certificate_is_refused(ws: Workspace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    token = UsbPersonalSeal.open(usb_path(ws.security_dir, SEALER), DEMO_SECRETS.user_pin)
    ca = CertificateAuthority.open(ws.security_dir / "ca", DEMO_SECRETS.passphrase)
    from guoku.security.x509 import Certificate

    ca.revoke(Certificate.from_der(token.cert_der).serial, now - timedelta(seconds=5))
    ca.export_trust(ws.workdir / "trust-after", now)
    payload = _sealed(ws, "S0005")  # sealed after the revocation
    bank = ws.node_for("B-ICBC").library
    bank.verifier = VoucherVerifier(TrustStore.from_directory(ws.workdir / "trust-after"))
    detail = _assert_refused(ws, payload, SealChainInvalid)
    assert "CERTIFICATE_REVOKED" in detail["reason"]


def test_a_stamp_made_after_the_seal_expired_is_refused(ws: Workspace) -> None:
    payload = _sealed(ws, "S0006")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365 * 4)
    token = UsbPersonalSeal.open(usb_path(ws.security_dir, SEALER), DEMO_SECRETS.user_pin)
    with pytest.raises(SealExpired):  # the sealer itself refuses an expired seal
        token.seal_sign(b"data", later, "")
    # a signer who builds the stamp by hand, signing with the real key on the USB key
    stamp = ses.SESSignature.load(base64.b64decode(from_xml(payload).stamps["2"]))
    tbs = ses.TBSSign.load(stamp["to_sign"].dump())
    tbs["time_info"] = later
    forged = ses.SESSignature({
        "to_sign": tbs, "cert": stamp["cert"].native,
        "signature_alg_id": ses.SM2_WITH_SM3,
        "signature": core.OctetBitString(token.token.sign("sign", tbs.dump())),
    }).dump()
    bank = ws.node_for("B-ICBC").library
    bank.clock = lambda: later
    _assert_refused(ws, _restamp(payload, "2", forged), SealExpired)


def test_a_voucher_missing_a_required_stamp_is_refused(ws: Workspace) -> None:
    _assert_refused(ws, _restamp(_sealed(ws, "S0007"), "2", None), StampMissing)
