"""TrustStore.validate: every refusal, each on a small PKI made with the X.509 builders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from guoku.domain.errors import ValidationError
from guoku.security.certs import (
    Crl,
    Revocation,
    RevocationReason,
    TrustStore,
    build_crl,
)
from guoku.security.crypto import SM2PrivateKey
from guoku.security.x509 import (
    Certificate,
    CertificateExpired,
    CertificateInvalid,
    CertificateNotYetValid,
    CertificateRevoked,
    CrlInvalid,
    KeyUsage,
    KeyUsageInvalid,
    UnknownCA,
    build_certificate,
    subject_name,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CA_USAGE = frozenset({KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN})
SIGN_USAGE = frozenset({KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION})
_serials = iter(range(1000, 10**6))


def _cert(
    cn: str,
    key: SM2PrivateKey,
    signer: SM2PrivateKey,
    issuer: Certificate | None,
    *,
    usage: frozenset[KeyUsage] = SIGN_USAGE,
    is_ca: bool = False,
    path_len: int | None = None,
    start: datetime = NOW - 30 * DAY,
    end: datetime = NOW + 365 * DAY,
    party: str | None = None,
) -> Certificate:
    return build_certificate(
        subject=subject_name(cn, "Test", party),
        public_key=key.public_key(),
        serial=next(_serials),
        not_before=start,
        not_after=end,
        key_usage=usage,
        signer=signer,
        issuer=issuer,
        is_ca=is_ca,
        ca_path_len=path_len,
    )


@dataclass
class Pki:
    """Root -> issuing CA -> leaves, with keys kept for signing CRLs and rogue certificates."""

    root_key: SM2PrivateKey = field(default_factory=SM2PrivateKey.generate)
    issuing_key: SM2PrivateKey = field(default_factory=SM2PrivateKey.generate)
    leaf_key: SM2PrivateKey = field(default_factory=SM2PrivateKey.generate)

    def __post_init__(self) -> None:
        self.root = _cert(
            "Root",
            self.root_key,
            self.root_key,
            None,
            usage=CA_USAGE,
            is_ca=True,
            path_len=1,
            start=NOW - 100 * DAY,
            end=NOW + 3650 * DAY,
        )
        self.issuing = _cert(
            "Issuing",
            self.issuing_key,
            self.root_key,
            self.root,
            usage=CA_USAGE,
            is_ca=True,
            path_len=0,
            start=NOW - 100 * DAY,
            end=NOW + 1000 * DAY,
        )
        self.leaf = self.issue()

    def issue(self, **kwargs: Any) -> Certificate:
        kwargs.setdefault("party", "F530000")
        return _cert("Clerk", self.leaf_key, self.issuing_key, self.issuing, **kwargs)

    def crl(
        self,
        revoked: Sequence[Revocation] = (),
        *,
        root: bool = False,
        this_update: datetime = NOW - DAY,
        days: int = 7,
        number: int = 1,
    ) -> Crl:
        return build_crl(
            issuer=self.root if root else self.issuing,
            signer=self.root_key if root else self.issuing_key,
            this_update=this_update,
            next_update=this_update + days * DAY,
            crl_number=number,
            revocations=list(revoked),
        )

    def store(self, revoked: Sequence[Revocation] = ()) -> TrustStore:
        crls = [self.crl(revoked), self.crl(root=True)]
        return TrustStore([self.root], [self.issuing], crls)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def test_a_good_chain_validates_and_returns_the_path(pki: Pki) -> None:
    chain = pki.store().validate(pki.leaf, NOW, KeyUsage.DIGITAL_SIGNATURE)
    assert chain == (pki.leaf, pki.issuing, pki.root)


def test_several_usages_can_be_required_at_once(pki: Pki) -> None:
    pki.store().validate(pki.leaf, NOW, {KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION})


def test_a_tampered_certificate_signature_is_refused(pki: Pki) -> None:
    der = bytearray(pki.leaf.der)
    der[-5] ^= 0x01  # inside the signature value
    tampered = Certificate.from_der(bytes(der))
    with pytest.raises(CertificateInvalid, match="does not verify"):
        pki.store().validate(tampered, NOW)


def test_a_tampered_certificate_body_is_refused(pki: Pki) -> None:
    der = pki.leaf.der.replace(b"Clerk", b"Clerq")
    with pytest.raises(CertificateInvalid, match="does not verify"):
        pki.store().validate(Certificate.from_der(der), NOW)


def test_a_certificate_from_an_unknown_ca_is_refused(pki: Pki) -> None:
    other = Pki()
    with pytest.raises(UnknownCA):
        pki.store().validate(other.leaf, NOW)


def test_a_chain_missing_its_intermediate_is_refused(pki: Pki) -> None:
    store = TrustStore([pki.root], [], [pki.crl(), pki.crl(root=True)])
    with pytest.raises(UnknownCA):
        store.validate(pki.leaf, NOW)


def test_a_rogue_ca_with_the_same_name_is_refused(pki: Pki) -> None:
    """Same subject as the real issuing CA, different key: names chain, signatures do not."""
    rogue_key = SM2PrivateKey.generate()
    rogue = _cert("Issuing", rogue_key, rogue_key, None, usage=CA_USAGE, is_ca=True)
    forged = _cert("Clerk", pki.leaf_key, rogue_key, rogue, party="F530000")
    with pytest.raises(CertificateInvalid):
        pki.store().validate(forged, NOW)


def test_an_expired_certificate_is_refused(pki: Pki) -> None:
    old = pki.issue(start=NOW - 400 * DAY, end=NOW - DAY)
    with pytest.raises(CertificateExpired):
        pki.store().validate(old, NOW)


def test_a_signature_made_while_valid_still_validates_after_expiry(pki: Pki) -> None:
    old = pki.issue(start=NOW - 400 * DAY, end=NOW - DAY)
    pki.store().validate(old, NOW - 2 * DAY)


def test_a_not_yet_valid_certificate_is_refused(pki: Pki) -> None:
    future = pki.issue(start=NOW + DAY, end=NOW + 30 * DAY)
    with pytest.raises(CertificateNotYetValid):
        pki.store().validate(future, NOW)


def test_an_expired_issuing_ca_refuses_its_leaves(pki: Pki) -> None:
    with pytest.raises(CertificateExpired):
        pki.store().validate(pki.leaf, NOW + 1001 * DAY)


def test_revoked_before_the_signing_time_is_refused(pki: Pki) -> None:
    revoked = [Revocation(pki.leaf.serial, NOW - 2 * DAY, RevocationReason.KEY_COMPROMISE)]
    with pytest.raises(CertificateRevoked) as info:
        pki.store(revoked).validate(pki.leaf, NOW)
    assert info.value.details["reason"] == "key_compromise"


def test_revoked_exactly_at_the_signing_time_is_refused(pki: Pki) -> None:
    revoked = [Revocation(pki.leaf.serial, NOW, RevocationReason.SUPERSEDED)]
    with pytest.raises(CertificateRevoked):
        pki.store(revoked).validate(pki.leaf, NOW)


def test_revoked_after_the_signing_time_still_vouches_for_the_earlier_signature(pki: Pki) -> None:
    revoked = [Revocation(pki.leaf.serial, NOW - 2 * DAY, RevocationReason.AFFILIATION_CHANGED)]
    store = pki.store(revoked)
    store.validate(pki.leaf, NOW - 3 * DAY)  # signed three days ago, revoked two days ago


def test_a_revoked_issuing_ca_refuses_its_leaves(pki: Pki) -> None:
    arl = pki.crl(
        [Revocation(pki.issuing.serial, NOW - DAY, RevocationReason.UNSPECIFIED)], root=True
    )
    store = TrustStore([pki.root], [pki.issuing], [pki.crl(), arl])
    with pytest.raises(CertificateRevoked):
        store.validate(pki.leaf, NOW)


def test_a_missing_crl_fails_closed(pki: Pki) -> None:
    store = TrustStore([pki.root], [pki.issuing], [pki.crl(root=True)])
    with pytest.raises(CrlInvalid, match="no CRL"):
        store.validate(pki.leaf, NOW)


def test_a_stale_crl_fails_closed(pki: Pki) -> None:
    with pytest.raises(CrlInvalid, match="does not cover"):
        pki.store().validate(pki.leaf, NOW + 30 * DAY)


def test_the_newest_crl_wins(pki: Pki) -> None:
    old = pki.crl(number=1)
    new = pki.crl([Revocation(pki.leaf.serial, NOW - DAY, RevocationReason.UNSPECIFIED)], number=2)
    store = TrustStore([pki.root], [pki.issuing], [new, old, pki.crl(root=True)])
    with pytest.raises(CertificateRevoked):
        store.validate(pki.leaf, NOW)


def test_wrong_key_usage_is_refused(pki: Pki) -> None:
    with pytest.raises(KeyUsageInvalid, match="key_encipherment"):
        pki.store().validate(pki.leaf, NOW, KeyUsage.KEY_ENCIPHERMENT)


def test_a_ca_certificate_cannot_sign_documents(pki: Pki) -> None:
    with pytest.raises(KeyUsageInvalid):
        pki.store().validate(pki.issuing, NOW, KeyUsage.DIGITAL_SIGNATURE)


def test_an_end_entity_certificate_cannot_act_as_a_ca(pki: Pki) -> None:
    """A leaf (CA:false) signs a certificate: the signature verifies, the CA flag refuses."""
    victim_key = SM2PrivateKey.generate()
    leaf_as_ca = pki.issue(usage=SIGN_USAGE | {KeyUsage.KEY_CERT_SIGN}, party="F530000")
    child = _cert("Child", victim_key, pki.leaf_key, leaf_as_ca)
    store = TrustStore([pki.root], [pki.issuing, leaf_as_ca], [pki.crl(), pki.crl(root=True)])
    with pytest.raises(CertificateInvalid, match="not a CA"):
        store.validate(child, NOW)


def test_a_ca_without_key_cert_sign_is_refused(pki: Pki) -> None:
    key = SM2PrivateKey.generate()
    crl_only = _cert(
        "CrlOnly",
        key,
        pki.root_key,
        pki.root,
        usage=frozenset({KeyUsage.CRL_SIGN}),
        is_ca=True,
        path_len=0,
    )
    leaf = _cert("Leaf", SM2PrivateKey.generate(), key, crl_only)
    store = TrustStore([pki.root], [crl_only], [pki.crl(root=True)])
    with pytest.raises(KeyUsageInvalid, match="keyCertSign"):
        store.validate(leaf, NOW)


def test_path_length_zero_forbids_a_sub_ca(pki: Pki) -> None:
    sub_key = SM2PrivateKey.generate()
    sub = _cert("Sub", sub_key, pki.issuing_key, pki.issuing, usage=CA_USAGE, is_ca=True)
    leaf = _cert("Leaf", SM2PrivateKey.generate(), sub_key, sub)
    store = TrustStore([pki.root], [pki.issuing, sub], [pki.crl(), pki.crl(root=True)])
    with pytest.raises(CertificateInvalid, match="allows 0 CAs"):
        store.validate(leaf, NOW)


def test_a_trust_anchor_must_be_a_self_signed_ca(pki: Pki) -> None:
    with pytest.raises(CertificateInvalid, match="not a self-signed CA"):
        TrustStore([pki.issuing])
    with pytest.raises(UnknownCA):
        TrustStore([])


def test_the_signing_time_must_be_utc(pki: Pki) -> None:
    with pytest.raises(ValidationError):
        pki.store().validate(pki.leaf, NOW.replace(tzinfo=None))


def test_a_remembered_chain_is_still_checked_for_time_and_revocation(pki: Pki) -> None:
    """The store remembers verified signatures, never verdicts: each call re-checks the rest."""
    store = pki.store([Revocation(pki.leaf.serial, NOW + DAY, RevocationReason.SUPERSEDED)])
    assert store.validate(pki.leaf, NOW) == store.validate(pki.leaf, NOW)
    with pytest.raises(CertificateRevoked):
        store.validate(pki.leaf, NOW + 2 * DAY)
    with pytest.raises(KeyUsageInvalid):
        store.validate(pki.leaf, NOW, KeyUsage.KEY_CERT_SIGN)


def test_a_forged_crl_is_refused_on_every_call(pki: Pki) -> None:
    forged = build_crl(
        issuer=pki.issuing,
        signer=SM2PrivateKey.generate(),
        this_update=NOW - DAY,
        next_update=NOW + DAY,
        crl_number=1,
        revocations=[],
    )
    store = TrustStore([pki.root], [pki.issuing], [forged, pki.crl(root=True)])
    for _ in range(2):
        with pytest.raises(CrlInvalid):
            store.validate(pki.leaf, NOW)
