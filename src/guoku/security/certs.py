"""Revocation (v2 CRLs) and path validation: what an offline verifier relies on.

``TrustStore.validate(cert, at, required_usage)`` answers "could this certificate make a
signature at time ``at``?" — ``at`` is the signing time the verifier trusts (a timestamp, or the
time the library logged the voucher on arrival), never the clock of the verifying machine. It:

1. builds the path leaf → issuing CA → trusted root (names chain and every SM2 signature
   verifies; at most :data:`MAX_CHAIN_DEPTH` certificates);
2. checks each certificate is valid at ``at`` (not_before <= at <= not_after);
3. checks every issuer is a CA (basicConstraints CA:true, keyCertSign, path length) and the
   leaf's keyUsage has ``required_usage``; keyUsage must be present (no "absent = anything");
4. refuses unknown critical extensions;
5. checks revocation at ``at``: a certificate revoked at or before ``at`` is refused; one revoked
   after ``at`` still vouches for the signature made earlier.

Revocation fails closed: every certificate below a root needs a CRL from its issuer that verifies
and whose nextUpdate is not before ``at``; if there is none, the answer is :class:`CrlInvalid`,
never "not revoked". A CRL newer than ``at`` is fine because guoku's CA never drops an entry.
OpenSSL 3.0 cannot verify SM2-signed CRLs (it passes an empty signer ID): :class:`Crl` does.

The trust dir (``CertificateAuthority.export_trust``) is ``roots/*.pem``, ``intermediates/*.pem``
and ``crls/*.crl`` (DER; ``*.crl.pem`` beside them for people and other tools).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from asn1crypto import core, pem
from asn1crypto import crl as a_crl
from asn1crypto import x509 as a_x509

from guoku.domain.errors import ValidationError
from guoku.security.crypto import SM2PrivateKey
from guoku.security.x509 import (
    MAX_DER_BYTES,
    Certificate,
    CertificateExpired,
    CertificateInvalid,
    CertificateNotYetValid,
    CertificateRevoked,
    CrlInvalid,
    KeyUsage,
    KeyUsageInvalid,
    UnknownCA,
    asn1_time,
    format_name,
    key_identifier,
    require_utc,
    sm2_with_sm3,
    unarmor,
    verify_sm2_signature,
)

__all__ = [
    "CertificateExpired",
    "CertificateInvalid",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "Crl",
    "CrlInvalid",
    "KeyUsageInvalid",
    "Revocation",
    "RevocationReason",
    "TrustStore",
    "UnknownCA",
    "build_crl",
]

MAX_CRL_BYTES: Final = 64 * MAX_DER_BYTES
MAX_CHAIN_DEPTH: Final = 5
"""Root, issuing CA, leaf is 3; anything beyond 5 is a loop or an attack."""
MAX_TRUST_FILES: Final = 256
"""A trust dir holds a handful of files; refuse to read thousands."""
KNOWN_CRITICAL: Final = frozenset({"basic_constraints", "key_usage"})
"""The critical extensions guoku understands; any other critical one refuses the certificate."""
MAX_CACHED: Final = 4096
"""Verified certificate links a store remembers before it starts over."""
ROOTS_DIR: Final = "roots"
INTERMEDIATES_DIR: Final = "intermediates"
CRLS_DIR: Final = "crls"


class RevocationReason(enum.StrEnum):
    """CRL reason codes guoku issues (RFC 5280 §5.3.1). Holds are not used: revocation is final."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: int
    revoked_at: datetime
    reason: RevocationReason


class Crl:
    """A parsed v2 CRL signed SM2-with-SM3. OpenSSL 3.0 cannot verify these; guoku does."""

    __slots__ = ("_asn1", "crl_number", "der", "next_update", "revoked", "this_update")

    def __init__(self, der: bytes) -> None:
        if len(der) > MAX_CRL_BYTES:
            raise CrlInvalid("CRL is larger than the limit")
        try:
            crl = a_crl.CertificateList.load(der, strict=True)
            tbs = crl["tbs_cert_list"]
            self.this_update: datetime = tbs["this_update"].native
            self.next_update: datetime | None = tbs["next_update"].native
            number = crl.crl_number_value
            self.crl_number: int | None = None if number is None else number.native
            revoked: dict[int, Revocation] = {}
            for entry in tbs["revoked_certificates"]:
                reason = entry.crl_reason_value
                revoked[entry["user_certificate"].native] = Revocation(
                    serial=entry["user_certificate"].native,
                    revoked_at=entry["revocation_date"].native,
                    reason=RevocationReason(reason.native if reason else "unspecified"),
                )
            self.revoked: dict[int, Revocation] = revoked
            _ = crl.issuer.native, crl["signature"].native
        except (ValueError, TypeError, KeyError) as exc:
            raise CrlInvalid(f"malformed CRL: {exc}") from exc
        self._asn1 = crl
        self.der = bytes(der)

    @classmethod
    def from_der(cls, der: bytes) -> Crl:
        return cls(der)

    @classmethod
    def from_pem(cls, data: bytes) -> Crl:
        try:
            return cls(unarmor(data, "CRL"))
        except CertificateInvalid as exc:
            raise CrlInvalid(exc.message) from exc

    @classmethod
    def load(cls, data: bytes) -> Crl:
        return cls.from_pem(data) if pem.detect(data) else cls(data)

    @property
    def pem(self) -> bytes:
        return bytes(pem.armor("X509 CRL", self.der))

    @property
    def issuer_name(self) -> a_x509.Name:
        return self._asn1.issuer

    @property
    def issuer(self) -> str:
        return format_name(self.issuer_name)

    @property
    def sort_key(self) -> tuple[int, datetime]:
        """Newer CRLs sort later: by crlNumber, then thisUpdate."""
        return (self.crl_number or 0, self.this_update)

    def verify_signed_by(self, issuer: Certificate) -> None:
        """The CRL names ``issuer``, which may sign CRLs, and the SM2 signature verifies."""
        if self.issuer_name != issuer.subject_name:
            raise CrlInvalid(f"CRL issued by {self.issuer}, not by {issuer.subject}")
        if KeyUsage.CRL_SIGN not in issuer.key_usage:
            raise CrlInvalid(f"{issuer.subject} may not sign CRLs (no cRLSign)")
        algorithm = self._asn1["signature_algorithm"]["algorithm"].dotted
        tbs = self._asn1["tbs_cert_list"].dump()
        try:
            verify_sm2_signature(issuer, algorithm, self._asn1["signature"].native, tbs, "CRL")
        except CertificateInvalid as exc:
            raise CrlInvalid(exc.message) from exc


def build_crl(
    *,
    issuer: Certificate,
    signer: SM2PrivateKey,
    this_update: datetime,
    next_update: datetime,
    crl_number: int,
    revocations: list[Revocation],
) -> Crl:
    """Build and sign a v2 CRL with crlNumber and authorityKeyIdentifier."""
    this_update, next_update = require_utc(this_update), require_utc(next_update)
    if next_update <= this_update:
        raise ValidationError("a CRL's nextUpdate must be after its thisUpdate")
    entries = []
    for rev in sorted(revocations, key=lambda r: r.serial):
        entry: dict[str, object] = {
            "user_certificate": rev.serial,
            "revocation_date": asn1_time(require_utc(rev.revoked_at)),
        }
        if rev.reason is not RevocationReason.UNSPECIFIED:  # RFC 5280: omit "unspecified"
            entry["crl_entry_extensions"] = [
                {"extn_id": "crl_reason", "critical": False, "extn_value": str(rev.reason)}
            ]
        entries.append(entry)
    fields: dict[str, object] = {
        "version": "v2",
        "signature": sm2_with_sm3(),
        "issuer": issuer.subject_name,
        "this_update": asn1_time(this_update),
        "next_update": asn1_time(next_update),
        "crl_extensions": [
            {"extn_id": "crl_number", "critical": False, "extn_value": crl_number},
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": key_identifier(issuer.public_key)},
            },
        ],
    }
    if entries:  # an empty SEQUENCE OF is not allowed: omit the field
        fields["revoked_certificates"] = entries
    tbs = a_crl.TbsCertList(fields)
    signature = signer.sign(tbs.dump())
    crl = a_crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": sm2_with_sm3(),
            "signature": core.OctetBitString(signature),
        }
    )
    return Crl(crl.dump())


def _usage_set(required: KeyUsage | Collection[KeyUsage]) -> frozenset[KeyUsage]:
    return frozenset({required}) if isinstance(required, KeyUsage) else frozenset(required)


class TrustStore:
    """Trusted roots, untrusted intermediates, and CRLs — everything validation needs."""

    def __init__(
        self,
        roots: Iterable[Certificate],
        intermediates: Iterable[Certificate] = (),
        crls: Iterable[Crl] = (),
    ) -> None:
        self.roots: tuple[Certificate, ...] = tuple(dict.fromkeys(roots))
        if not self.roots:
            raise UnknownCA("a trust store needs at least one root certificate")
        for root in self.roots:
            if not (root.is_ca and root.is_self_issued):
                raise CertificateInvalid(f"trust anchor {root.subject} is not a self-signed CA")
            root.verify_signed_by(root)
        self.intermediates: tuple[Certificate, ...] = tuple(dict.fromkeys(intermediates))
        self.crls: tuple[Crl, ...] = tuple(crls)
        self._root_prints = frozenset(r.fingerprint for r in self.roots)
        # Signatures already checked: (subject fingerprint -> issuer) and (CRL index, issuer).
        # Only successes are kept; everything else (times, flags, revocation) is re-checked.
        self._issuers: dict[str, Certificate] = {}
        self._crls_checked: set[tuple[int, str]] = set()

    @classmethod
    def from_directory(cls, directory: Path | str) -> TrustStore:
        """Load a trust dir as written by ``CertificateAuthority.export_trust``."""
        base = Path(directory)
        roots = _read_certs(base / ROOTS_DIR)
        intermediates = _read_certs(base / INTERMEDIATES_DIR)
        crls = [Crl.from_der(p.read_bytes()) for p in _files(base / CRLS_DIR, "*.crl")]
        if not roots:
            raise UnknownCA(f"no root certificate in {base / ROOTS_DIR}")
        return cls(roots, intermediates, crls)

    def validate(
        self,
        cert: Certificate,
        at: datetime,
        required_usage: KeyUsage | Collection[KeyUsage] = KeyUsage.DIGITAL_SIGNATURE,
    ) -> tuple[Certificate, ...]:
        """Return the validated path (leaf first, root last) or raise a CertificateInvalid."""
        at = require_utc(at, "signing time")
        chain = self._build_path(cert)
        for link in chain:
            _check_validity(link, at)
            unknown = link.critical_extensions - KNOWN_CRITICAL
            if unknown:
                raise CertificateInvalid(
                    f"{link.subject} has unknown critical extensions: {sorted(unknown)}"
                )
        for depth, issuer in enumerate(chain[1:]):
            _check_issuer(issuer, cas_below=depth)
        missing = _usage_set(required_usage) - cert.key_usage
        if missing:
            raise KeyUsageInvalid(
                f"{cert.subject} may not be used for {sorted(missing)}"
                f" (key usage {sorted(cert.key_usage)})"
            )
        for subject, issuer in itertools.pairwise(chain):
            self._check_revocation(subject, issuer, at)
        return chain

    def _build_path(self, cert: Certificate) -> tuple[Certificate, ...]:
        chain = [cert]
        while chain[-1].fingerprint not in self._root_prints:
            if len(chain) >= MAX_CHAIN_DEPTH:
                raise UnknownCA(f"no path to a trusted root within {MAX_CHAIN_DEPTH} certificates")
            chain.append(self._issuer_of(chain[-1]))
        return tuple(chain)

    def _issuer_of(self, cert: Certificate) -> Certificate:
        """The first known certificate whose name and key issued ``cert``; roots win."""
        known = self._issuers.get(cert.fingerprint)
        if known is not None:
            return known
        failure: CertificateInvalid | None = None
        for candidate in self.roots + self.intermediates:
            if candidate.subject_name != cert.issuer_name:
                continue
            aki, ski = cert.authority_key_id, candidate.subject_key_id
            if aki is not None and ski is not None and aki != ski:
                continue
            try:
                cert.verify_signed_by(candidate)
            except CertificateInvalid as exc:
                failure = exc
                continue
            if len(self._issuers) >= MAX_CACHED:
                self._issuers.clear()
            self._issuers[cert.fingerprint] = candidate
            return candidate
        if failure is not None:  # the issuer is known but the signature does not verify
            raise failure
        raise UnknownCA(f"{cert.subject}: issuer {cert.issuer} is not a known CA")

    def _check_revocation(self, cert: Certificate, issuer: Certificate, at: datetime) -> None:
        entry = self._current_crl(issuer, at).revoked.get(cert.serial)
        if entry is not None and entry.revoked_at <= at:
            raise CertificateRevoked(
                f"{cert.subject} (serial {cert.serial:x}) was revoked at "
                f"{entry.revoked_at.isoformat()} ({entry.reason}), before {at.isoformat()}",
                serial=f"{cert.serial:x}",
                revoked_at=entry.revoked_at.isoformat(),
                reason=str(entry.reason),
            )

    def _current_crl(self, issuer: Certificate, at: datetime) -> Crl:
        """The newest verified CRL of ``issuer``, which must still cover ``at``; fail closed."""
        best: Crl | None = None
        for index, crl in enumerate(self.crls):
            if crl.issuer_name != issuer.subject_name:
                continue
            if (index, issuer.fingerprint) not in self._crls_checked:
                crl.verify_signed_by(issuer)  # a forged CRL for a known CA is an error
                self._crls_checked.add((index, issuer.fingerprint))
            if best is None or crl.sort_key > best.sort_key:
                best = crl
        if best is None:
            raise CrlInvalid(f"no CRL from {issuer.subject}: revocation cannot be checked")
        if best.next_update is None or best.next_update < at:
            raise CrlInvalid(
                f"the newest CRL from {issuer.subject} (nextUpdate {best.next_update}) "
                f"does not cover {at.isoformat()}: fetch a fresh CRL"
            )
        return best


def _check_validity(cert: Certificate, at: datetime) -> None:
    if at < cert.not_before:
        raise CertificateNotYetValid(
            f"{cert.subject} is not valid before {cert.not_before.isoformat()}",
            serial=f"{cert.serial:x}",
        )
    if at > cert.not_after:
        raise CertificateExpired(
            f"{cert.subject} expired at {cert.not_after.isoformat()}", serial=f"{cert.serial:x}"
        )


def _check_issuer(issuer: Certificate, cas_below: int) -> None:
    """``issuer`` signed a certificate; ``cas_below`` CAs lie between it and the leaf."""
    if not issuer.is_ca:
        raise CertificateInvalid(f"{issuer.subject} is not a CA (basicConstraints CA:false)")
    if KeyUsage.KEY_CERT_SIGN not in issuer.key_usage:
        raise KeyUsageInvalid(f"{issuer.subject} may not sign certificates (no keyCertSign)")
    if issuer.path_len is not None and cas_below > issuer.path_len:
        raise CertificateInvalid(
            f"{issuer.subject} allows {issuer.path_len} CAs below it, found {cas_below}"
        )


def _files(directory: Path, pattern: str) -> list[Path]:
    if not directory.is_dir():
        return []
    found = sorted(directory.glob(pattern))
    if len(found) > MAX_TRUST_FILES:
        raise CertificateInvalid(f"{directory} holds more than {MAX_TRUST_FILES} files")
    return found


def _read_certs(directory: Path) -> list[Certificate]:
    """Every certificate in every ``*.pem`` file (a file may hold several)."""
    certs: list[Certificate] = []
    for path in _files(directory, "*.pem"):
        try:
            blocks = list(pem.unarmor(path.read_bytes(), multiple=True))
        except ValueError as exc:
            raise CertificateInvalid(f"{path}: not PEM: {exc}") from exc
        certs.extend(Certificate.from_der(der) for kind, _, der in blocks if kind == "CERTIFICATE")
    return certs
