"""X.509 v3 certificates on SM2 keys, signed SM2-with-SM3 — read and built (CRLs: ``certs``).

All ASN.1 goes through ``asn1crypto``; this module never writes DER by hand. Signatures use the
GM/T 0009 default signer ID, which is what ``openssl verify -vfyopt distid:1234567812345678``
and the seal tools expect.

Who holds a certificate is carried in standard subject attributes (no private OID to register,
and every tool shows them): ``C=CN, O=<deployment>, OU=<party code>, CN=<display name>`` and,
in a personal certificate only, ``UID=<username>``. :attr:`Certificate.holder` reads them back.

Error tree (all :class:`~guoku.security.crypto.CryptoError`)::

    CertificateInvalid        malformed, bad signature, not a CA, unknown critical extension
    ├── UnknownCA             no path to a trusted root
    ├── CertificateExpired    not_after is before the signing time
    ├── CertificateNotYetValid
    ├── CertificateRevoked    revoked at or before the signing time
    ├── KeyUsageInvalid       the key may not be used for what is asked
    └── CrlInvalid            CRL malformed, badly signed, stale, or missing (fail closed)
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from asn1crypto import algos, core, keys, pem
from asn1crypto import x509 as a_x509

from guoku.domain.errors import ValidationError
from guoku.security.crypto import (
    CryptoError,
    KeyInvalid,
    SignatureInvalid,
    SM2PrivateKey,
    SM2PublicKey,
    sm3,
)

SM2_WITH_SM3: Final = "1.2.156.10197.1.501"
SM2_CURVE: Final = "1.2.156.10197.1.301"
MAX_DER_BYTES: Final = 64 * 1024
"""Upper bound on a certificate or CRL we agree to parse (input limit, checked on entry)."""

CERT_CACHE_SIZE: Final = 1024

_PARTY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_MAX_NAME = 64  # ub-common-name (RFC 5280)


class CertificateInvalid(CryptoError):
    code = "CERTIFICATE_INVALID"


class UnknownCA(CertificateInvalid):
    code = "UNKNOWN_CA"


class CertificateExpired(CertificateInvalid):
    code = "CERTIFICATE_EXPIRED"


class CertificateNotYetValid(CertificateInvalid):
    code = "CERTIFICATE_NOT_YET_VALID"


class CertificateRevoked(CertificateInvalid):
    code = "CERTIFICATE_REVOKED"


class KeyUsageInvalid(CertificateInvalid):
    code = "KEY_USAGE_INVALID"


class CrlInvalid(CertificateInvalid):
    code = "CRL_INVALID"


class KeyUsage(enum.StrEnum):
    """X.509 keyUsage bits, named as asn1crypto names them."""

    DIGITAL_SIGNATURE = "digital_signature"
    NON_REPUDIATION = "non_repudiation"
    KEY_ENCIPHERMENT = "key_encipherment"
    DATA_ENCIPHERMENT = "data_encipherment"
    KEY_AGREEMENT = "key_agreement"
    KEY_CERT_SIGN = "key_cert_sign"
    CRL_SIGN = "crl_sign"
    ENCIPHER_ONLY = "encipher_only"
    DECIPHER_ONLY = "decipher_only"


class HolderKind(enum.StrEnum):
    INSTITUTION = "institution"
    """机构证书 — a party's certificate, kept in its signing server."""
    PERSONAL = "personal"
    """个人证书 — a clerk's certificate, kept on a USB key (U盾)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who a certificate belongs to: the party always, the user for a personal certificate."""

    party_code: str
    name: str
    username: str | None = None

    @property
    def kind(self) -> HolderKind:
        return HolderKind.INSTITUTION if self.username is None else HolderKind.PERSONAL


def require_utc(moment: datetime, what: str = "time") -> datetime:
    """Refuse naive or non-UTC times, and drop sub-seconds (X.509 times have whole seconds)."""
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValidationError(f"{what} must be timezone-aware UTC, got {moment!r}")
    return moment.astimezone(UTC).replace(microsecond=0)


def check_party_code(code: str) -> str:
    if not _PARTY_CODE.match(code):
        raise ValidationError(f"party code {code!r} is not 1-32 letters, digits, '-' or '_'")
    return code


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise ValidationError(f"username {username!r} is not 1-64 letters, digits or ._@-")
    return username


def check_display_name(name: str) -> str:
    if not name.strip() or len(name) > _MAX_NAME or any(ord(ch) < 0x20 for ch in name):
        raise ValidationError(f"name {name!r} must be 1-{_MAX_NAME} printable characters")
    return name


def subject_name(
    common_name: str, organization: str, party_code: str | None = None, username: str | None = None
) -> a_x509.Name:
    """The subject DN: C=CN, O, [OU=party code], CN, [UID=username] (validated first)."""
    attrs = {
        "country_name": "CN",
        "organization_name": check_display_name(organization),
        "common_name": check_display_name(common_name),
    }
    if party_code is not None:
        attrs["organizational_unit_name"] = check_party_code(party_code)
    if username is not None:
        attrs["user_id"] = check_username(username)
    return a_x509.Name.build(attrs)


_SHORT = {
    "country_name": "C",
    "state_or_province_name": "ST",
    "locality_name": "L",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "common_name": "CN",
    "user_id": "UID",
}


def format_name(name: a_x509.Name) -> str:
    """RFC 4514-like one-liner in DN order, e.g. ``C=CN, O=Demo, OU=F530000, CN=财政厅``."""
    parts = []
    for rdn in name.chosen:
        for attr in rdn:
            label = _SHORT.get(attr["type"].native, attr["type"].native)
            parts.append(f"{label}={attr['value'].native}")
    return ", ".join(parts)


def key_identifier(public_key: SM2PublicKey) -> bytes:
    """subjectKeyIdentifier: SM3 of the public point, first 20 bytes (RFC 5280 §4.2.1.2 style)."""
    return sm3(public_key.point)[:20]


def asn1_time(moment: datetime) -> a_x509.Time:
    # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    return a_x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def unarmor(data: bytes, kind: str) -> bytes:
    if len(data) > MAX_DER_BYTES * 2:
        raise CertificateInvalid(f"{kind} is larger than {MAX_DER_BYTES} bytes")
    try:
        _, _, der = pem.unarmor(data)
    except ValueError as exc:
        raise CertificateInvalid(f"not a PEM {kind}: {exc}") from exc
    return bytes(der)


def verify_sm2_signature(
    issuer: Certificate, algorithm: str, signature: bytes, tbs: bytes, what: str
) -> None:
    if algorithm != SM2_WITH_SM3:
        raise CertificateInvalid(f"{what} is signed with {algorithm}, not SM2-with-SM3")
    try:
        issuer.public_key.verify(signature, tbs)
    except SignatureInvalid as exc:
        raise CertificateInvalid(f"{what}: signature by {issuer.subject} does not verify") from exc


class Certificate:
    """A parsed SM2 X.509 certificate. Immutable; every field is read once, at load time."""

    __slots__ = (
        "_asn1",
        "_holder",
        "_subject",
        "authority_key_id",
        "critical_extensions",
        "der",
        "fingerprint",
        "is_ca",
        "key_usage",
        "not_after",
        "not_before",
        "path_len",
        "public_key",
        "serial",
        "subject_key_id",
    )

    def __init__(self, der: bytes) -> None:
        if len(der) > MAX_DER_BYTES:
            raise CertificateInvalid(f"certificate is larger than {MAX_DER_BYTES} bytes")
        try:
            cert = a_x509.Certificate.load(der, strict=True)
            tbs = cert["tbs_certificate"]
            spki = tbs["subject_public_key_info"]
            algorithm = spki["algorithm"]
            if algorithm["algorithm"].native != "ec" or algorithm["parameters"].name != "named":
                raise CertificateInvalid("the subject public key is not an EC named-curve key")
            if algorithm["parameters"].chosen.dotted != SM2_CURVE:
                raise CertificateInvalid("the subject public key is not on the SM2 curve")
            self.public_key = SM2PublicKey.from_spki_der(spki.dump())
            self.serial: int = tbs["serial_number"].native
            self.not_before: datetime = tbs["validity"]["not_before"].native
            self.not_after: datetime = tbs["validity"]["not_after"].native
            usage = cert.key_usage_value
            names = () if usage is None else usage.native
            self.key_usage = frozenset(KeyUsage(u) for u in names)
            bc = cert.basic_constraints_value
            self.is_ca: bool = bool(bc is not None and bc["ca"].native)
            self.path_len: int | None = bc["path_len_constraint"].native if self.is_ca else None
            self.subject_key_id: bytes | None = cert.key_identifier
            self.authority_key_id: bytes | None = cert.authority_key_identifier
            self.critical_extensions = frozenset(cert.critical_extensions)
            _ = cert.subject.native, cert.issuer.native, cert["signature_value"].native
        except (ValueError, TypeError, KeyError, AttributeError, KeyInvalid) as exc:
            raise CertificateInvalid(f"malformed certificate: {exc}") from exc
        self._asn1 = cert
        self._subject: str | None = None
        self._holder: tuple[Holder | None] | None = None
        self.der = bytes(der)
        self.fingerprint = sm3(self.der).hex()

    @classmethod
    def from_der(cls, der: bytes) -> Certificate:
        """Parse DER. Identical bytes come from a small cache: a certificate never changes, and
        the seal layer parses the same signer certificates over and over (~0.3 ms each)."""
        return _parse_cached(bytes(der))

    @classmethod
    def from_pem(cls, data: bytes) -> Certificate:
        return cls(unarmor(data, "certificate"))

    @classmethod
    def load(cls, data: bytes) -> Certificate:
        """PEM or DER, whichever ``data`` is."""
        return cls.from_pem(data) if pem.detect(data) else cls(data)

    @property
    def pem(self) -> bytes:
        return bytes(pem.armor("CERTIFICATE", self.der))

    @property
    def subject_name(self) -> a_x509.Name:
        return self._asn1.subject

    @property
    def issuer_name(self) -> a_x509.Name:
        return self._asn1.issuer

    @property
    def subject(self) -> str:
        if self._subject is None:  # formatted once: a verifier names the signer of every stamp
            self._subject = format_name(self.subject_name)
        return self._subject

    @property
    def issuer(self) -> str:
        return format_name(self.issuer_name)

    def _attr(self, field: str) -> str | None:
        value = self.subject_name.native.get(field)
        if isinstance(value, list):  # multi-valued: refuse to guess
            raise CertificateInvalid(f"subject has several {field} values")
        return None if value is None else str(value)

    @property
    def common_name(self) -> str | None:
        return self._attr("common_name")

    @property
    def organization(self) -> str | None:
        return self._attr("organization_name")

    @property
    def organizational_unit(self) -> str | None:
        return self._attr("organizational_unit_name")

    @property
    def user_id(self) -> str | None:
        return self._attr("user_id")

    @property
    def holder(self) -> Holder | None:
        """The party (OU) and, for a personal certificate, the user (UID); None for a CA."""
        if self._holder is None:  # read once (an error, several OU values, is raised each time)
            party, name = self.organizational_unit, self.common_name
            if self.is_ca or party is None or name is None:
                self._holder = (None,)
            else:
                self._holder = (Holder(party_code=party, name=name, username=self.user_id),)
        return self._holder[0]

    @property
    def is_self_issued(self) -> bool:
        return bool(self.subject_name == self.issuer_name)

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at <= self.not_after

    def verify_signed_by(self, issuer: Certificate) -> None:
        """Check ``issuer`` issued this certificate: names chain and its SM2 signature verifies.

        Only the signature: CA flag, key usage, validity and revocation are the trust store's job.
        """
        if self.issuer_name != issuer.subject_name:
            raise CertificateInvalid(f"issued by {self.issuer}, not by {issuer.subject}")
        outer = self._asn1["signature_algorithm"]["algorithm"].dotted
        inner = self._asn1["tbs_certificate"]["signature"]["algorithm"].dotted
        if outer != inner:
            raise CertificateInvalid("signature algorithm differs inside and outside the TBS")
        tbs = self._asn1["tbs_certificate"].dump()
        verify_sm2_signature(
            issuer, outer, self._asn1["signature_value"].native, tbs, "certificate"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"Certificate(serial={self.serial:x}, subject={self.subject!r})"


@functools.lru_cache(maxsize=CERT_CACHE_SIZE)
def _parse_cached(der: bytes) -> Certificate:
    return Certificate(der)


def sm2_with_sm3() -> algos.SignedDigestAlgorithm:
    return algos.SignedDigestAlgorithm({"algorithm": SM2_WITH_SM3})


def build_certificate(
    *,
    subject: a_x509.Name,
    public_key: SM2PublicKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    key_usage: frozenset[KeyUsage],
    signer: SM2PrivateKey,
    issuer: Certificate | None = None,
    ca_path_len: int | None = None,
    is_ca: bool = False,
) -> Certificate:
    """Build and sign one certificate. ``issuer=None`` makes it self-signed (a root)."""
    if not 0 < serial < 1 << 159:
        raise ValidationError("a serial number is a positive integer of at most 20 octets")
    not_before, not_after = require_utc(not_before), require_utc(not_after)
    if not_after <= not_before:
        raise ValidationError("not_after must be after not_before")
    issuer_name = subject if issuer is None else issuer.subject_name
    authority_id = key_identifier(public_key if issuer is None else issuer.public_key)
    constraints: dict[str, object] = {"ca": is_ca}
    if is_ca and ca_path_len is not None:
        constraints["path_len_constraint"] = ca_path_len
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": constraints},
        {"extn_id": "key_usage", "critical": True, "extn_value": {str(u) for u in key_usage}},
        {"extn_id": "key_identifier", "critical": False, "extn_value": key_identifier(public_key)},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": authority_id},
        },
    ]
    tbs = a_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": sm2_with_sm3(),
            "issuer": issuer_name,
            "validity": {"not_before": asn1_time(not_before), "not_after": asn1_time(not_after)},
            "subject": subject,
            "subject_public_key_info": keys.PublicKeyInfo.load(public_key.spki_der()),
            "extensions": extensions,
        }
    )
    signature = signer.sign(tbs.dump())
    cert = a_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": sm2_with_sm3(),
            "signature_value": core.OctetBitString(signature),
        }
    )
    return Certificate(cert.dump())
