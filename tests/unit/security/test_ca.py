"""The deployment CA: create, open, issue, revoke, CRLs, trust export — on a real directory."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guoku.domain.errors import Conflict, NotFound, ValidationError
from guoku.security.ca import (
    INSTITUTION_USAGE,
    MIN_KDF_ITERATIONS,
    PERSONAL_USAGE,
    CertificateAuthority,
    KeyFileInvalid,
    decrypt_key,
    encrypt_key,
    read_index,
)
from guoku.security.certs import Crl, RevocationReason, TrustStore
from guoku.security.crypto import SM2PrivateKey
from guoku.security.x509 import (
    CertificateRevoked,
    HolderKind,
    KeyUsage,
    KeyUsageInvalid,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PASS = "correct horse battery"
FAST = MIN_KDF_ITERATIONS


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    CertificateAuthority.create(tmp_path / "ca", "云南省财政厅", PASS, NOW, kdf_iterations=FAST)
    return tmp_path / "ca"


@pytest.fixture
def ca(ca_dir: Path) -> CertificateAuthority:
    return CertificateAuthority.open(ca_dir, PASS)


def test_create_makes_a_root_and_an_issuing_ca(ca: CertificateAuthority) -> None:
    assert ca.root.is_ca and ca.root.is_self_issued and ca.root.path_len == 1
    assert ca.issuing.is_ca and ca.issuing.path_len == 0
    assert ca.root.key_usage == ca.issuing.key_usage == {KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN}
    ca.root.verify_signed_by(ca.root)
    ca.issuing.verify_signed_by(ca.root)
    assert ca.issuing.authority_key_id == ca.root.subject_key_id
    assert ca.root.common_name == "云南省财政厅 Root CA"
    assert ca.root.serial.bit_length() == 128


def test_private_keys_are_encrypted_at_rest_and_private_to_the_owner(ca_dir: Path) -> None:
    for name in ("root.key", "issuing.key"):
        blob = json.loads((ca_dir / name).read_text())
        assert blob["kdf"] == "pbkdf2-hmac-sm3" and blob["cipher"] == "sm4-gcm"
        assert "PRIVATE KEY" not in (ca_dir / name).read_text()
        assert stat.S_IMODE((ca_dir / name).stat().st_mode) == 0o600


def test_a_wrong_passphrase_does_not_open_the_ca(ca_dir: Path) -> None:
    with pytest.raises(KeyFileInvalid, match="wrong passphrase"):
        CertificateAuthority.open(ca_dir, "not the passphrase")


def test_swapped_key_files_do_not_open(ca_dir: Path) -> None:
    root, issuing = (ca_dir / "root.key").read_bytes(), (ca_dir / "issuing.key").read_bytes()
    (ca_dir / "root.key").write_bytes(issuing)
    (ca_dir / "issuing.key").write_bytes(root)
    with pytest.raises(KeyFileInvalid):
        CertificateAuthority.open(ca_dir, PASS)


def test_a_key_file_with_lowered_iterations_does_not_decrypt() -> None:
    key = SM2PrivateKey.generate()
    blob = json.loads(encrypt_key(key, b"secret-pass", "root", 2 * FAST))
    assert decrypt_key(json.dumps(blob).encode(), b"secret-pass", "root").scalar() == key.scalar()
    blob["iterations"] = FAST
    with pytest.raises(KeyFileInvalid):
        decrypt_key(json.dumps(blob).encode(), b"secret-pass", "root")
    with pytest.raises(KeyFileInvalid, match="malformed"):
        decrypt_key(b"[1, 2]", b"secret-pass", "root")


def test_create_refuses_a_non_empty_directory_short_passphrase_and_naive_time(
    ca_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(Conflict):
        CertificateAuthority.create(ca_dir, "Again", PASS, NOW, kdf_iterations=FAST)
    with pytest.raises(ValidationError, match="passphrase"):
        CertificateAuthority.create(tmp_path / "x", "X", "short", NOW, kdf_iterations=FAST)
    with pytest.raises(ValidationError, match="UTC"):
        CertificateAuthority.create(tmp_path / "y", "Y", PASS, NOW.replace(tzinfo=None))
    with pytest.raises(ValidationError, match="iterations"):
        CertificateAuthority.create(tmp_path / "z", "Z", PASS, NOW, kdf_iterations=10)


def test_an_institution_certificate_names_its_party(ca: CertificateAuthority) -> None:
    key = SM2PrivateKey.generate()
    cert = ca.issue_institution("B-ICBC", "工商银行昆明分行", key.public_key(), NOW, days=365)
    assert cert.holder is not None
    assert cert.holder.kind is HolderKind.INSTITUTION
    assert (cert.holder.party_code, cert.holder.name, cert.holder.username) == (
        "B-ICBC",
        "工商银行昆明分行",
        None,
    )
    assert cert.key_usage == INSTITUTION_USAGE and not cert.is_ca
    assert (cert.organization, cert.subject_name.native["country_name"]) == ("云南省财政厅", "CN")
    assert cert.public_key == key.public_key()
    assert cert.not_after - cert.not_before == 365 * DAY
    assert cert.authority_key_id == ca.issuing.subject_key_id
    cert.verify_signed_by(ca.issuing)


def test_a_personal_certificate_names_its_user_and_party(ca: CertificateAuthority) -> None:
    cert = ca.issue_personal(
        "zhangsan", "F530000", "张三", SM2PrivateKey.generate().public_key(), NOW
    )
    assert cert.holder is not None
    assert cert.holder.kind is HolderKind.PERSONAL
    assert (cert.holder.username, cert.holder.party_code, cert.common_name) == (
        "zhangsan",
        "F530000",
        "张三",
    )
    assert cert.key_usage == PERSONAL_USAGE
    assert cert.subject == "C=CN, O=云南省财政厅, OU=F530000, CN=张三, UID=zhangsan"


def test_issuing_refuses_bad_input_before_writing_anything(ca: CertificateAuthority) -> None:
    pub = SM2PrivateKey.generate().public_key()
    with pytest.raises(ValidationError, match="party code"):
        ca.issue_institution("F 53", "X", pub, NOW)
    with pytest.raises(ValidationError, match="username"):
        ca.issue_personal("zhang san", "F530000", "张三", pub, NOW)
    with pytest.raises(ValidationError, match="name"):
        ca.issue_institution("F530000", "", pub, NOW)
    with pytest.raises(ValidationError, match="days"):
        ca.issue_institution("F530000", "X", pub, NOW, days=0)
    with pytest.raises(ValidationError, match="issuing CA"):
        ca.issue_institution("F530000", "X", pub, NOW + 3649 * DAY, days=30)
    assert ca.records() == []
    assert list((ca.directory / "issued").iterdir()) == []


def test_the_index_survives_reopening(ca: CertificateAuthority, ca_dir: Path) -> None:
    cert = ca.issue_institution("F530000", "财政厅", SM2PrivateKey.generate().public_key(), NOW)
    ca.revoke(cert.serial, NOW + DAY, RevocationReason.KEY_COMPROMISE)
    again = CertificateAuthority.open(ca_dir, PASS)
    (record,) = again.records()
    assert record.serial == f"{cert.serial:x}" and record.fingerprint == cert.fingerprint
    assert record.reason is RevocationReason.KEY_COMPROMISE
    assert record.revoked_at == (NOW + DAY).isoformat()
    assert again.certificate(cert.serial) == cert
    assert read_index(ca_dir) == again.records()


def test_revoke_refuses_unknown_and_repeated_serials(ca: CertificateAuthority) -> None:
    cert = ca.issue_institution("F530000", "财政厅", SM2PrivateKey.generate().public_key(), NOW)
    with pytest.raises(NotFound):
        ca.revoke("abcdef", NOW)
    with pytest.raises(ValidationError):
        ca.revoke("not-hex", NOW)
    ca.revoke(f"{cert.serial:x}", NOW)
    with pytest.raises(Conflict):
        ca.revoke(cert.serial, NOW)


def test_the_crl_lists_revocations_and_numbers_increase(ca: CertificateAuthority) -> None:
    a = ca.issue_institution("F530000", "财政厅", SM2PrivateKey.generate().public_key(), NOW)
    b = ca.issue_personal("li", "F530000", "李四", SM2PrivateKey.generate().public_key(), NOW)
    first = ca.crl(NOW)
    assert first.revoked == {} and first.crl_number == 1
    ca.revoke(a.serial, NOW + DAY, RevocationReason.SUPERSEDED)
    second = Crl.from_pem(ca.crl(NOW + 2 * DAY).pem)
    second.verify_signed_by(ca.issuing)
    assert second.crl_number == 2
    assert set(second.revoked) == {a.serial} and b.serial not in second.revoked
    assert second.revoked[a.serial].reason is RevocationReason.SUPERSEDED
    assert second.revoked[a.serial].revoked_at == NOW + DAY
    assert second.next_update == NOW + 9 * DAY
    assert ca.root_crl(NOW).crl_number == 1


def test_export_trust_gives_an_offline_verifier_everything(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Revoked after signing: accepted for the earlier signature, refused for a later one."""
    clerk = ca.issue_personal("wang", "F530000", "王五", SM2PrivateKey.generate().public_key(), NOW)
    ca.revoke(clerk.serial, NOW + 2 * DAY, RevocationReason.PRIVILEGE_WITHDRAWN)
    trust = ca.export_trust(tmp_path / "trust", NOW + 3 * DAY)
    assert sorted(p.relative_to(trust).as_posix() for p in trust.rglob("*") if p.is_file()) == [
        "crls/issuing.crl",
        "crls/issuing.crl.pem",
        "crls/root.crl",
        "crls/root.crl.pem",
        "intermediates/issuing.pem",
        "roots/root.pem",
    ]
    store = TrustStore.from_directory(trust)
    assert store.validate(clerk, NOW + DAY, KeyUsage.DIGITAL_SIGNATURE)[-1] == ca.root
    with pytest.raises(CertificateRevoked):
        store.validate(clerk, NOW + 2 * DAY + timedelta(seconds=1))
    with pytest.raises(KeyUsageInvalid):
        store.validate(clerk, NOW + DAY, KeyUsage.KEY_ENCIPHERMENT)


def test_a_directory_without_ca_json_is_not_a_ca(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        CertificateAuthority.open(tmp_path, PASS)
