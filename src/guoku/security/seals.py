"""GB/T 38540-2020 electronic seals: make (制章), import (备案), sign with (签章), verify (验章).

A *seal* (电子印章, ``SES_Seal``) binds a seal image to the certificates of the people or
servers allowed to use it (its holders); the seal-making authority (制章人, finance's seal
system) signs it with SM2/SM3. A *seal signature* (电子签章, ``SES_Signature``) is a holder
stamping data: it embeds the whole seal, the signing time and SM3(data), signed by the holder.

Verification checks, in order: structure and algorithms, the holder's signature over
DER(TBS_Sign), the maker's signature over DER(esealInfo), that the signer's certificate is one
of the seal's holders, that the seal and the signer's certificate were valid at the signing
time, optionally both certificate chains against a trust store, and last SM3(data).

What depends only on a seal is not redone for every stamp that embeds it (a seal is tens of
kilobytes, its picture included): parsed seals are kept by their exact DER, the maker's
signature is verified once per exact (esealInfo, signature, certificate), and the holder's
signature is checked with the SM3 state after the stamp's constant head (TBS_Sign header,
version, seal) computed once per (signer key, exact head bytes). Each cache is bounded
(:data:`MAX_CACHED`) and keeps only successes: a changed byte is a new key, checked in full.
A stamp in exactly the DER shape guoku writes, embedding a seal already parsed, is read without
asn1crypto's generic machinery (:func:`_parse_signature_direct`, a few slices; anything else
goes to asn1crypto): only parsing is shortened, every check above still runs.

Error tree (all :class:`~guoku.security.crypto.CryptoError`)::

    SealInvalid                    SEAL_INVALID        e.g. signed "in the future"
    ├── SealMalformed              SEAL_MALFORMED      not DER, wrong shape, bad field
    │   └── SealUnsupported        SEAL_UNSUPPORTED    GM/T 0031 layout, other algorithm
    ├── SealSignatureInvalid       SEAL_SIGNATURE_INVALID        the signer's signature
    │   └── SealMakerSignatureInvalid  SEAL_MAKER_SIGNATURE_INVALID  the maker's
    ├── SealDataMismatch           SEAL_DATA_MISMATCH  SM3(data) is not dataHash
    ├── SealExpired                SEAL_EXPIRED        seal not valid at the signing time
    │   └── SealCertificateExpired SEAL_CERT_EXPIRED   signer certificate not valid then
    ├── SealSignerNotHolder        SEAL_SIGNER_NOT_HOLDER
    └── SealChainInvalid           SEAL_CHAIN_INVALID  the trust store refused a certificate
    SealParameterInvalid           SEAL_PARAMETER_INVALID  (a ValidationError) bad make/sign input

The ASN.1 schema is :mod:`guoku.security.ses`; the choices are in
docs/decisions/0005-electronic-seals.md.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, Literal, Protocol, TypeVar, cast

from asn1crypto import core
from PIL import Image, UnidentifiedImageError

from guoku.domain.errors import ValidationError
from guoku.domain.seals import SealKind
from guoku.security import ses
from guoku.security.crypto import (
    CryptoError,
    PrefixVerifier,
    SignatureInvalid,
    SM2PublicKey,
    sm3,
)
from guoku.security.x509 import Certificate, CertificateInvalid, KeyUsage

MAX_SEAL_BYTES: Final = 1024 * 1024
MAX_SIGNATURE_BYTES: Final = MAX_SEAL_BYTES + 64 * 1024
MAX_PICTURE_BYTES: Final = 512 * 1024
MAX_HOLDERS: Final = 32
MAX_NAME_CHARS: Final = 64
MAX_ES_ID_CHARS: Final = 64
MAX_PROPERTY_INFO_CHARS: Final = 1024
CLOCK_SKEW: Final = timedelta(minutes=5)
"""A signature may claim a signing time at most this far after the verifier's reference time."""

GUOKU_VENDOR_ID: Final = "guoku"
SEAL_KIND_EXTENSION: Final = "2.25.289583838145820093372527142168602620463"
"""ExtData OID (X.667 UUID arc, no registration needed) carrying the guoku :class:`SealKind`
as a UTF8String, non-critical: other readers ignore it."""

DEFAULT_PICTURE_MM: Final = {
    SealKind.UNIT_FINANCE: (38, 38),
    SealKind.BANK_BUSINESS: (40, 40),
    SealKind.TREASURY: (40, 40),
    SealKind.LEGAL_REP: (20, 20),
    SealKind.PERSONAL: (18, 18),
}
MAX_CACHED: Final = 256
"""Entries each seal cache holds (parsed seals, verified maker signatures, prefix verifiers)
before it starts over: a node sees a few dozen seals, a hostile peer cannot make one grow."""
_T = TypeVar("_T", bound=core.Asn1Value)
_K = TypeVar("_K")
_V = TypeVar("_V")


class _Bounded(Generic[_K, _V]):
    """A dict that starts over when full. Only ever given successes, under exact bytes."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int = MAX_CACHED) -> None:
        self._entries: dict[_K, _V] = {}
        self._limit = limit

    def get(self, key: _K) -> _V | None:
        return self._entries.get(key)

    def put(self, key: _K, value: _V) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


_PARSED_SEALS: Final[_Bounded[bytes, Seal]] = _Bounded()
"""SES_Seal DER -> the Seal parsed from it (parsing does not verify; see below)."""
_SEAL_INDEX: Final[_Bounded[bytes, Seal]] = _Bounded()
"""The seals of :data:`_PARSED_SEALS` under their first and last bytes (:func:`_index_key`): a
stamp's embedded seal is found without hashing its tens of kilobytes, then compared in full."""
_INDEX_BYTES: Final = 64
_MAKER_VERIFIED: Final[_Bounded[tuple[bytes, bytes, bytes, str], bool]] = _Bounded()
"""(esealInfo DER, maker signature, maker certificate DER, algorithm) whose signature verified."""
_PREFIX_VERIFIERS: Final[_Bounded[tuple[bytes, bytes, bytes], PrefixVerifier]] = _Bounded()
"""(signer point, TBS_Sign bytes before the seal, seal DER) -> that key's SM3 state after them."""


def clear_caches() -> None:
    """Forget every parsed seal, verified maker signature and prefix state (tests, memory)."""
    for cache in (_PARSED_SEALS, _SEAL_INDEX, _MAKER_VERIFIED, _PREFIX_VERIFIERS):
        cache.clear()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_DIGESTS: Final[Mapping[str, Callable[[bytes], bytes]]] = {
    "sm3": sm3,
    "1.2.156.10197.1.401": sm3,
    "sha256": _sha256,
    "sha-256": _sha256,
}
"""CertDigestObj.type values guoku can match (lower-cased); any other never matches."""


class SealInvalid(CryptoError):
    """A seal or seal signature must not be trusted; ``code`` says why."""

    code = "SEAL_INVALID"


class SealMalformed(SealInvalid):
    code = "SEAL_MALFORMED"


class SealUnsupported(SealMalformed):
    code = "SEAL_UNSUPPORTED"


class SealSignatureInvalid(SealInvalid):
    code = "SEAL_SIGNATURE_INVALID"


class SealMakerSignatureInvalid(SealSignatureInvalid):
    code = "SEAL_MAKER_SIGNATURE_INVALID"


class SealDataMismatch(SealInvalid):
    code = "SEAL_DATA_MISMATCH"


class SealExpired(SealInvalid):
    code = "SEAL_EXPIRED"


class SealCertificateExpired(SealExpired):
    code = "SEAL_CERT_EXPIRED"


class SealSignerNotHolder(SealInvalid):
    code = "SEAL_SIGNER_NOT_HOLDER"


class SealChainInvalid(SealInvalid):
    code = "SEAL_CHAIN_INVALID"


class SealParameterInvalid(ValidationError):
    code = "SEAL_PARAMETER_INVALID"


class SealSigner(Protocol):
    """An SM2 key that signs with SM3 and the default ID: an in-memory key, a USB key, an HSM."""

    def public_key(self) -> SM2PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


class TrustAnchors(Protocol):
    """What chain validation needs of the CA module's ``TrustStore``."""

    def validate(self, cert: Certificate, at: datetime, usage: KeyUsage, /) -> object: ...


@dataclass(frozen=True, slots=True)
class CertDigest:
    """A holder named by the digest of its certificate (certListType 2)."""

    algorithm: str
    value: bytes

    def matches(self, cert_der: bytes) -> bool:
        digest = _DIGESTS.get(self.algorithm.lower())
        return digest is not None and hmac.compare_digest(digest(cert_der), self.value)


@dataclass(frozen=True, slots=True)
class Seal:
    """A parsed ``SES_Seal``. Parsing does not verify: :func:`import_seal` does."""

    der: bytes = field(repr=False)
    version: int
    vendor_id: str
    es_id: str
    name: str
    seal_type: int
    """SES_ESPropertyInfo.type: 1 organization (单位印章), 2 person (个人印章)."""
    kind: SealKind | None
    """From guoku's kind extension; PERSONAL for a foreign type-2 seal; else None."""
    created_at: datetime
    valid_start: datetime
    valid_end: datetime
    picture_type: str
    picture: bytes = field(repr=False)
    picture_width_mm: int
    picture_height_mm: int
    cert_list_type: int
    holder_certs: tuple[Certificate, ...]
    holder_digests: tuple[CertDigest, ...]
    maker_cert: Certificate
    sign_alg_id: str
    signed_info: bytes = field(repr=False)
    """DER of esealInfo exactly as received: what the maker signed."""
    maker_signature: bytes = field(repr=False)
    time_stamp: bytes | None = field(default=None, repr=False)

    def is_valid_at(self, moment: datetime) -> bool:
        return self.valid_start <= moment <= self.valid_end

    def has_holder(self, cert: Certificate) -> bool:
        if any(hmac.compare_digest(h.der, cert.der) for h in self.holder_certs):
            return True
        return any(d.matches(cert.der) for d in self.holder_digests)

    def verify_maker_signature(self) -> None:
        """The maker's SM2 signature over DER(esealInfo), by the embedded maker certificate.

        A success is remembered under the exact bytes it depends on; a failure never is.
        """
        if self.sign_alg_id != ses.SM2_WITH_SM3:
            raise SealUnsupported(f"seal {self.es_id} is signed with {self.sign_alg_id}")
        key = (self.signed_info, self.maker_signature, self.maker_cert.der, self.sign_alg_id)
        if _MAKER_VERIFIED.get(key):
            return
        try:
            self.maker_cert.public_key.verify(self.maker_signature, self.signed_info)
            _MAKER_VERIFIED.put(key, True)
        except SignatureInvalid as exc:
            raise SealMakerSignatureInvalid(
                f"seal {self.es_id}: the maker's signature does not verify with the embedded "
                f"certificate ({self.maker_cert.subject}); the seal was altered or forged",
                es_id=self.es_id,
            ) from exc


@dataclass(frozen=True, slots=True)
class SealSignature:
    """A parsed ``SES_Signature``. Parsing does not verify: :func:`check_seal_signature` does."""

    der: bytes = field(repr=False)
    version: int
    seal: Seal
    signed_at: datetime
    data_hash: bytes
    property_info: str
    signer_cert: Certificate
    signature_alg_id: str
    to_sign: bytes = field(repr=False)
    """DER of TBS_Sign exactly as received: what the signer signed."""
    signature: bytes = field(repr=False)
    time_stamp: bytes | None = field(default=None, repr=False)
    seal_offset: int = 0
    """Where ``seal.der`` starts in ``to_sign`` (0: not known). Everything up to its end is
    what every stamp by one holder with one seal shares; only an optimisation (any split of
    ``to_sign`` verifies the same), and used only where those bytes are there."""

    def verify_signer_signature(self) -> None:
        """The holder's SM2 signature over ``to_sign``; raise SignatureInvalid if it fails.

        ``to_sign`` = start + seal + rest: the SM3 state after start + seal comes from a
        verifier kept under (signer key, start, seal DER) — exactly the bytes it absorbed.
        """
        public, to_sign, seal_der = self.signer_cert.public_key, self.to_sign, self.seal.der
        end = self.seal_offset + len(seal_der)
        if not (self.seal_offset > 0 and end < len(to_sign) and to_sign.startswith(
            seal_der, self.seal_offset
        )):  # fmt: skip
            public.verify(self.signature, to_sign)
            return
        key = (public.point, to_sign[: self.seal_offset], seal_der)
        verifier = _PREFIX_VERIFIERS.get(key)
        if verifier is None:
            verifier = public.prefix_verifier(to_sign[:end])
            _PREFIX_VERIFIERS.put(key, verifier)
        verifier.verify(self.signature, to_sign[end:])


@dataclass(frozen=True, slots=True)
class SealSignatureInfo:
    """What a verified seal signature says: which seal, who stamped, when, over what."""

    seal: Seal
    signer_cert: Certificate
    signed_at: datetime
    data_hash: bytes
    property_info: str
    version: int
    has_time_stamp: bool
    chain_checked: bool


# --- making, importing, signing, verifying ------------------------------------------------


def make_seal(
    es_id: str,
    name: str,
    kind: SealKind,
    holder_certs: bytes | Sequence[bytes],
    picture_png: bytes,
    valid_start: datetime,
    valid_end: datetime,
    maker_key: SealSigner,
    maker_cert_der: bytes,
    now: datetime,
    *,
    picture_size_mm: tuple[int, int] | None = None,
    vendor_id: str = GUOKU_VENDOR_ID,
) -> Seal:
    """Make (制章) a version-4 seal for ``holder_certs``, signed by the seal-making authority.

    The maker signs DER(esealInfo) with SM2/SM3 and the default signer ID. The holders'
    certificates go into certList in full (certListType 1); the :class:`SealKind` goes into a
    non-critical ExtData. Every input is checked before anything is signed.
    """
    now = _utc(now, "now")
    valid_start, valid_end = _utc(valid_start, "valid_start"), _utc(valid_end, "valid_end")
    _check_text(es_id, MAX_ES_ID_CHARS, "esID", ascii_only=True)
    _check_text(name, MAX_NAME_CHARS, "seal name")
    _check_text(vendor_id, MAX_ES_ID_CHARS, "vid", ascii_only=True)
    if not valid_start < valid_end:
        raise SealParameterInvalid("valid_start must be before valid_end")
    if valid_end <= now:
        raise SealParameterInvalid(f"the seal would be expired when made (valid_end {valid_end})")
    holder_list = [holder_certs] if isinstance(holder_certs, bytes) else list(holder_certs)
    if not 0 < len(holder_list) <= MAX_HOLDERS:
        raise SealParameterInvalid(f"a seal has 1-{MAX_HOLDERS} holder certificates")
    holders = [_parameter_cert(der, "holder") for der in holder_list]
    maker_cert = _parameter_cert(maker_cert_der, "seal maker")
    if maker_key.public_key() != maker_cert.public_key:
        raise SealParameterInvalid("the maker key does not belong to the maker certificate")
    if not maker_cert.valid_at(now):
        raise SealParameterInvalid(f"the maker certificate is not valid at {now}")
    width, height = picture_size_mm or DEFAULT_PICTURE_MM[kind]
    _check_png(picture_png)
    if not (0 < width <= 200 and 0 < height <= 200):
        raise SealParameterInvalid("picture size must be 1-200 mm")
    info = ses.SESSealInfo(
        {
            "header": {"id": ses.SES_HEADER_ID, "version": ses.SES_VERSION_V4, "vid": vendor_id},
            "es_id": es_id,
            "property": {
                "type": ses.SEAL_TYPE_PERSONAL if kind.is_personal else ses.SEAL_TYPE_ORGANIZATION,
                "name": name,
                "cert_list_type": ses.CERT_LIST_TYPE_CERTS,
                "cert_list": core.Any(ses.CertInfoList([c.der for c in holders])),
                "create_date": now,
                "valid_start": valid_start,
                "valid_end": valid_end,
            },
            "picture": {"type": "PNG", "data": picture_png, "width": width, "height": height},
            "ext_datas": [
                {
                    "extn_id": SEAL_KIND_EXTENSION,
                    "critical": False,
                    "extn_value": core.UTF8String(str(kind)).dump(),
                }
            ],
        }
    )
    signed_info = info.dump()
    seal = ses.SESSeal(
        {
            "eseal_info": info,
            "cert": maker_cert.der,
            "sign_alg_id": ses.SM2_WITH_SM3,
            "signed_value": core.OctetBitString(maker_key.sign(signed_info)),
        }
    )
    return parse_seal(seal.dump())


def import_seal(der: bytes) -> Seal:
    """Register (备案) a seal: parse it and verify the maker's signature. Dates not judged."""
    seal = parse_seal(der)
    seal.verify_maker_signature()
    return seal


def sign_with_seal(
    seal: Seal,
    signer_key: SealSigner,
    signer_cert_der: bytes,
    data: bytes,
    now: datetime,
    property_info: str = "",
) -> bytes:
    """Stamp (签章) ``data``: DER SES_Signature with dataHash = SM3(data), signed by a holder.

    Refused before signing when the seal or the signer's certificate is not valid at ``now``,
    the key is not the certificate's, or the certificate is not one of the seal's holders.
    """
    now = _utc(now, "now")
    _check_text(
        property_info, MAX_PROPERTY_INFO_CHARS, "propertyInfo", ascii_only=True, allow_empty=True
    )
    signer = _parameter_cert(signer_cert_der, "signer")
    if signer_key.public_key() != signer.public_key:
        raise SealParameterInvalid("the signer key does not belong to the signer certificate")
    if not seal.has_holder(signer):
        raise SealSignerNotHolder(
            f"{signer.subject} is not a holder of seal {seal.es_id} ({seal.name})",
            es_id=seal.es_id,
        )
    if not seal.is_valid_at(now):
        raise SealExpired(
            f"seal {seal.es_id} is valid {seal.valid_start} to {seal.valid_end}, not at {now}",
            es_id=seal.es_id,
        )
    if not signer.valid_at(now):
        raise SealCertificateExpired(f"the signer certificate is not valid at {now}")
    tbs = ses.TBSSign(
        {
            "version": ses.SES_VERSION_V4,
            "eseal": ses.SESSeal.load(seal.der),
            "time_info": now,
            "data_hash": core.OctetBitString(sm3(data)),
            "property_info": property_info,
        }
    )
    signature = ses.SESSignature(
        {
            "to_sign": tbs,
            "cert": signer.der,
            "signature_alg_id": ses.SM2_WITH_SM3,
            "signature": core.OctetBitString(signer_key.sign(tbs.dump())),
        }
    )
    return bytes(signature.dump())


def check_seal_signature(
    sig: SealSignature, at: datetime | None = None, trust: TrustAnchors | None = None
) -> SealSignatureInfo:
    """Every check of a seal signature except the data hash (see the module docstring).

    ``at`` is the verifier's reference time (default: the signing time): a signing time later
    than ``at`` + :data:`CLOCK_SKEW` is refused, and the signer's chain is judged at ``at``.
    The seal and the signer's certificate are judged at the signing time; the maker's chain
    at the seal's creation time.
    """
    seal, signer = sig.seal, sig.signer_cert
    reference = sig.signed_at if at is None else _utc(at, "at")
    if sig.signature_alg_id != ses.SM2_WITH_SM3:
        raise SealUnsupported(f"the seal signature uses {sig.signature_alg_id}, not SM2-with-SM3")
    try:
        sig.verify_signer_signature()
    except SignatureInvalid as exc:
        raise SealSignatureInvalid(
            f"the signature by {signer.subject} over TBS_Sign does not verify", es_id=seal.es_id
        ) from exc
    seal.verify_maker_signature()
    if not seal.has_holder(signer):
        raise SealSignerNotHolder(
            f"{signer.subject} is not a holder of seal {seal.es_id} ({seal.name})",
            es_id=seal.es_id,
        )
    if sig.signed_at > reference + CLOCK_SKEW:
        raise SealInvalid(f"signing time {sig.signed_at} is after the reference time {reference}")
    if not seal.is_valid_at(sig.signed_at):
        raise SealExpired(
            f"seal {seal.es_id} is valid {seal.valid_start} to {seal.valid_end}, "
            f"not at the signing time {sig.signed_at}",
            es_id=seal.es_id,
        )
    if not signer.valid_at(sig.signed_at):
        raise SealCertificateExpired(
            f"the signer certificate ({signer.not_before} to {signer.not_after}) was not valid "
            f"at the signing time {sig.signed_at}"
        )
    if trust is not None:
        _validate_chain(trust, signer, reference, "signer")
        _validate_chain(trust, seal.maker_cert, seal.created_at, "seal maker")
    return SealSignatureInfo(
        seal=seal,
        signer_cert=signer,
        signed_at=sig.signed_at,
        data_hash=sig.data_hash,
        property_info=sig.property_info,
        version=sig.version,
        has_time_stamp=sig.time_stamp is not None,
        chain_checked=trust is not None,
    )


def verify_seal_signature(
    sig_der: bytes, data: bytes, at: datetime | None = None, trust: TrustAnchors | None = None
) -> SealSignatureInfo:
    """Verify (验章) a DER SES_Signature over ``data``: every check, SM3(data) last."""
    sig = parse_seal_signature(sig_der)
    info = check_seal_signature(sig, at, trust)
    if not hmac.compare_digest(sm3(data), sig.data_hash):
        raise SealDataMismatch(
            f"the data's SM3 digest is not the dataHash stamped by seal {sig.seal.es_id}: "
            "the data was changed after stamping",
            es_id=sig.seal.es_id,
        )
    return info


def _validate_chain(trust: TrustAnchors, cert: Certificate, at: datetime, role: str) -> None:
    try:
        trust.validate(cert, at, KeyUsage.DIGITAL_SIGNATURE)
    except CertificateInvalid as exc:
        raise SealChainInvalid(
            f"the {role} certificate ({cert.subject}) is not trusted: {exc}", cause=exc.code
        ) from exc


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise SealParameterInvalid(f"{what} must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).replace(microsecond=0)


def _check_text(
    text: str, limit: int, what: str, *, ascii_only: bool = False, allow_empty: bool = False
) -> None:
    if (not text.strip() and not allow_empty) or len(text) > limit:
        raise SealParameterInvalid(f"{what} must be 1-{limit} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise SealParameterInvalid(f"{what} has control characters")
    if ascii_only and not text.isascii():
        raise SealParameterInvalid(f"{what} must be ASCII (an IA5String)")


def _parameter_cert(der: bytes, role: str) -> Certificate:
    try:
        return Certificate.from_der(der)
    except CryptoError as exc:
        raise SealParameterInvalid(f"the {role} certificate is not usable: {exc}") from exc


def _check_png(png: bytes) -> None:
    if len(png) > MAX_PICTURE_BYTES:
        raise SealParameterInvalid(f"the seal picture is larger than {MAX_PICTURE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.format != "PNG":
                raise SealParameterInvalid(f"the seal picture is {image.format}, not PNG")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SealParameterInvalid(f"the seal picture is not a readable PNG: {exc}") from exc


# --- parsing -------------------------------------------------------------------------------


def detect(der: bytes) -> Literal["seal", "signature"]:
    """Which of SES_Seal and SES_Signature ``der`` holds (by shape; nothing verified)."""
    top = _load(core.Sequence, der, MAX_SIGNATURE_BYTES, "seal data")
    try:
        count = len(top)
        first = top[0] if count else None
        inner = first[0] if isinstance(first, core.Sequence) and len(first) else None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SealMalformed(f"not a GB/T 38540 seal or seal signature: {exc}") from exc
    if count == 2 and isinstance(first, core.Sequence):
        raise SealUnsupported("two-field layout: GM/T 0031-2014 (version 1) is not supported")
    if count in (4, 5) and isinstance(inner, core.Sequence):  # SES_SealInfo.header
        return "seal"
    if count in (4, 5) and isinstance(inner, core.Integer):  # TBS_Sign.version
        return "signature"
    raise SealMalformed("not a GB/T 38540 SES_Seal or SES_Signature")


def parse_seal(der: bytes) -> Seal:
    """Parse a DER ``SES_Seal`` (version 4, or ofdrw's 5). Nothing is verified."""
    return _seal_from(_load(ses.SESSeal, der, MAX_SEAL_BYTES, "seal"))


def parse_seal_signature(der: bytes) -> SealSignature:
    """Parse a DER ``SES_Signature``. Nothing is verified.

    A stamp that embeds a seal already parsed, in exactly the shape guoku writes, is read by
    :func:`_parse_signature_direct` (a few slices instead of asn1crypto's generic machinery);
    anything else, or anything it does not recognise, by asn1crypto. Both give the same
    :class:`SealSignature` for every input the direct reader accepts (tested, fuzzed).
    """
    _check_input(der, MAX_SIGNATURE_BYTES, "seal signature")
    data = bytes(der)
    direct = _parse_signature_direct(data)
    return direct if direct is not None else _parse_signature_asn1(data)


def _parse_signature_asn1(der: bytes) -> SealSignature:
    """:func:`parse_seal_signature` through asn1crypto: every shape the schema allows."""
    sig = _load(ses.SESSignature, der, MAX_SIGNATURE_BYTES, "seal signature")
    try:
        tbs = sig["to_sign"]
        version = int(tbs["version"].native)
        seal = _seal_from(tbs["eseal"])
        to_sign = tbs.dump()
        seal_offset = len(to_sign) - len(tbs.contents) + len(tbs["version"].dump())
        data_hash = bytes(tbs["data_hash"].native)
        signer = _certificate(bytes(sig["cert"].native), "signer")
        parsed = SealSignature(
            der=bytes(der),
            version=version,
            seal=seal,
            signed_at=tbs["time_info"].native,
            data_hash=data_hash,
            property_info=str(tbs["property_info"].native),
            signer_cert=signer,
            signature_alg_id=sig["signature_alg_id"].dotted,
            to_sign=to_sign,
            signature=bytes(sig["signature"].native),
            time_stamp=_time_stamp(sig["time_stamp"]),
            seal_offset=seal_offset,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise SealMalformed(f"malformed SES_Signature: {exc}") from exc
    if version not in (ses.SES_VERSION_V4, ses.SES_VERSION_V5):
        raise SealUnsupported(f"TBS_Sign version {version} is not 4 or 5")
    if len(data_hash) != 32:
        raise SealMalformed(f"dataHash is {len(data_hash)} bytes, not an SM3 digest")
    return parsed


def _check_input(der: object, limit: int, what: str) -> None:
    if not isinstance(der, bytes | bytearray | memoryview):
        raise SealMalformed(f"{what} must be bytes")
    if len(der) > limit:
        raise SealMalformed(f"{what} is larger than {limit} bytes")


def _load(spec: type[_T], der: bytes, limit: int, what: str) -> _T:
    _check_input(der, limit, what)
    try:
        return cast(_T, spec.load(bytes(der), strict=True))
    except (ValueError, TypeError) as exc:
        raise SealMalformed(f"{what} is not DER: {exc}") from exc


# --- the direct reader: a stamp in guoku's shape whose seal is known ------------------------

_SEQUENCE: Final = 0x30
_OCTET_STRING: Final = 0x04
_BIT_STRING: Final = 0x03
_IA5_STRING: Final = 0x16
_GENERALIZED_TIME: Final = 0x18
_VERSIONS_DER: Final = {
    core.Integer(ses.SES_VERSION_V4).dump(): ses.SES_VERSION_V4,
    core.Integer(ses.SES_VERSION_V5).dump(): ses.SES_VERSION_V5,
}
_VERSION_DER_BYTES: Final = 3
_SM2_WITH_SM3_DER: Final = bytes(core.ObjectIdentifier(ses.SM2_WITH_SM3).dump())
_TIME_CHARS: Final = len("YYYYMMDDHHMMSSZ")
_HASH_BYTES: Final = 32
_MAX_LENGTH_BYTES: Final = 4


class _NotDirect(Exception):
    """Not in the shape the direct reader reads: asn1crypto reads (or refuses) it instead."""


def _element(der: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Where the contents of the element at ``pos`` start and stop, if it has ``tag``, a
    definite length in its one shortest (DER) form, and ends by ``end``."""
    if pos + 2 > end or der[pos] != tag:
        raise _NotDirect
    first = der[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first - 0x80
        start = pos + 2 + count
        if not 0 < count <= _MAX_LENGTH_BYTES or start > end or der[pos + 2] == 0:
            raise _NotDirect  # indefinite, too long, or a leading zero byte: not DER
        length = int.from_bytes(der[pos + 2 : start], "big")
        if length < 0x80:
            raise _NotDirect  # the short form was required
    if start + length > end:
        raise _NotDirect
    return start, start + length


def _parse_signature_direct(der: bytes) -> SealSignature | None:
    """The stamp guoku writes — ``SES_Signature`` { ``TBS_Sign`` { version 4 or 5, a seal in
    :data:`_PARSED_SEALS`, GeneralizedTime ``YYYYMMDDHHMMSSZ``, a 32-byte dataHash BIT STRING,
    a primitive ASCII IA5String }, OCTET STRING, the SM2-with-SM3 OID, BIT STRING } with no
    optional fields — read in place; None for anything else (non-DER lengths, other tags, other
    forms, trailing bytes), which asn1crypto then reads or refuses.

    What it accepts it reads as asn1crypto does (the tests compare the two on fuzzed input);
    the seal is the one parsed earlier from these exact bytes.
    """
    try:
        end = len(der)
        body, stop = _element(der, 0, end, _SEQUENCE)
        tbs, tbs_end = _element(der, body, end, _SEQUENCE)
        version = _VERSIONS_DER.get(der[tbs : tbs + _VERSION_DER_BYTES])
        seal_at = tbs + _VERSION_DER_BYTES
        seal_end = _element(der, seal_at, tbs_end, _SEQUENCE)[1]
        seal = _known_seal(der, seal_at, seal_end)
        time = _element(der, seal_end, tbs_end, _GENERALIZED_TIME)
        signed_at = _generalized_time(der[time[0] : time[1]])
        digest = _element(der, time[1], tbs_end, _BIT_STRING)
        info = _element(der, digest[1], tbs_end, _IA5_STRING)
        cert = _element(der, tbs_end, end, _OCTET_STRING)
        alg_end = cert[1] + len(_SM2_WITH_SM3_DER)
        signature = _element(der, alg_end, end, _BIT_STRING)
        text = der[info[0] : info[1]]
    except _NotDirect:
        return None
    if (
        stop != end or version is None or seal is None or signed_at is None
        or digest[1] - digest[0] != _HASH_BYTES + 1 or der[digest[0]] != 0
        or info[1] != tbs_end or not text.isascii()
        or der[cert[1] : alg_end] != _SM2_WITH_SM3_DER
        or signature[1] != end or signature[0] == end or der[signature[0]] != 0
    ):  # fmt: skip
        return None
    return SealSignature(
        der=der,
        version=version,
        seal=seal,
        signed_at=signed_at,
        data_hash=der[digest[0] + 1 : digest[1]],
        property_info=text.decode("ascii"),
        signer_cert=_certificate(der[cert[0] : cert[1]], "signer"),
        signature_alg_id=ses.SM2_WITH_SM3,
        to_sign=der[body:tbs_end],
        signature=der[signature[0] + 1 : end],
        time_stamp=None,
        seal_offset=seal_at - body,
    )


def _generalized_time(text: bytes) -> datetime | None:
    """``YYYYMMDDHHMMSSZ`` (what guoku writes) as asn1crypto reads it, else None."""
    if len(text) != _TIME_CHARS or text[-1:] != b"Z" or not text[:-1].isdigit():
        return None
    try:
        return datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
            int(text[12:14]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None


def _certificate(der: bytes, role: str) -> Certificate:
    try:
        return Certificate.from_der(der)
    except CryptoError as exc:  # CertificateInvalid, or KeyInvalid for a point off the curve
        raise SealMalformed(f"the {role} certificate is not an SM2 certificate: {exc}") from exc


def _time_stamp(value: core.Asn1Value) -> bytes | None:
    if isinstance(value, core.Void):
        return None
    return ses.read_tagged_bit_string(value)


def _seal_from(seal: ses.SESSeal) -> Seal:
    """The parsed seal; the same DER parses to the same (immutable) Seal, kept once parsed."""
    try:
        der = seal.dump()
    except (ValueError, TypeError, KeyError) as exc:
        raise SealMalformed(f"malformed SES_Seal: {exc}") from exc
    known = _PARSED_SEALS.get(der)
    if known is not None:
        return known
    parsed = _parse_seal_fields(seal, der)
    _PARSED_SEALS.put(der, parsed)
    _SEAL_INDEX.put(_index_key(der, 0, len(der)), parsed)
    return parsed


def _index_key(der: bytes, start: int, stop: int) -> bytes:
    """The first and last :data:`_INDEX_BYTES` of ``der[start:stop]`` (its header, esealInfo's
    start; the maker's signature) and its length."""
    return b"".join((
        der[start : start + _INDEX_BYTES], der[max(start, stop - _INDEX_BYTES) : stop],
        (stop - start).to_bytes(4, "big"),
    ))  # fmt: skip


def _known_seal(der: bytes, start: int, stop: int) -> Seal | None:
    """The parsed seal whose DER is exactly ``der[start:stop]``, if one was parsed."""
    seal = _SEAL_INDEX.get(_index_key(der, start, stop))
    if seal is None or len(seal.der) != stop - start or not der.startswith(seal.der, start):
        return None
    return seal


def _parse_seal_fields(seal: ses.SESSeal, der: bytes) -> Seal:
    try:
        info = seal["eseal_info"]
        header, prop, picture = info["header"], info["property"], info["picture"]
        if header["id"].native != ses.SES_HEADER_ID:
            raise SealMalformed(f"header id is {header['id'].native!r}, not 'ES'")
        version = int(header["version"].native)
        holders, digests = _holders(int(prop["cert_list_type"].native), prop["cert_list"])
        seal_type = int(prop["type"].native)
        parsed = Seal(
            der=der,
            version=version,
            vendor_id=str(header["vid"].native),
            es_id=str(info["es_id"].native),
            name=str(prop["name"].native),
            seal_type=seal_type,
            kind=_kind(info["ext_datas"], seal_type),
            created_at=prop["create_date"].native,
            valid_start=prop["valid_start"].native,
            valid_end=prop["valid_end"].native,
            picture_type=str(picture["type"].native),
            picture=bytes(picture["data"].native),
            picture_width_mm=int(picture["width"].native),
            picture_height_mm=int(picture["height"].native),
            cert_list_type=int(prop["cert_list_type"].native),
            holder_certs=holders,
            holder_digests=digests,
            maker_cert=_certificate(bytes(seal["cert"].native), "seal maker"),
            sign_alg_id=seal["sign_alg_id"].dotted,
            signed_info=info.dump(),
            maker_signature=bytes(seal["signed_value"].native),
            time_stamp=_time_stamp(seal["time_stamp"]),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise SealMalformed(f"malformed SES_Seal: {exc}") from exc
    if version not in (ses.SES_VERSION_V4, ses.SES_VERSION_V5):
        raise SealUnsupported(f"seal format version {version} is not 4 (GB/T 38540) or 5")
    return parsed


def _holders(
    declared: int, cert_list: core.Any
) -> tuple[tuple[Certificate, ...], tuple[CertDigest, ...]]:
    """Read certList by its elements' shapes (lenient), then hold it to ``certListType``.

    OCTET STRING -> a DER certificate (type 1, the standard); SEQUENCE of PrintableString and
    OCTET STRING -> a CertDigestObj (type 2); a bare Certificate SEQUENCE -> a certificate
    (seen in some older writers).
    """
    items = cert_list.parse(ses.AnyList)
    if not 0 < len(items) <= MAX_HOLDERS:
        raise SealMalformed(f"certList has {len(items)} entries, not 1-{MAX_HOLDERS}")
    certs: list[Certificate] = []
    digests: list[CertDigest] = []
    for item in items:
        element = item.parse()
        if isinstance(element, core.OctetString):
            certs.append(_certificate(bytes(element.native), "holder"))
        elif isinstance(element, core.Sequence) and len(element) == 2:
            obj = ses.CertDigestObj.load(element.dump())
            digests.append(CertDigest(str(obj["type"].native), bytes(obj["value"].native)))
        elif isinstance(element, core.Sequence):
            certs.append(_certificate(element.dump(), "holder"))
        else:
            raise SealMalformed("certList entry is neither a certificate nor a digest")
    expected = ses.CERT_LIST_TYPE_CERTS if certs else ses.CERT_LIST_TYPE_DIGESTS
    if (certs and digests) or declared != expected:
        raise SealMalformed(f"certListType {declared} does not match the entries of certList")
    return tuple(certs), tuple(digests)


def _kind(ext_datas: core.Asn1Value, seal_type: int) -> SealKind | None:
    """guoku's kind extension if present; refuse any unknown *critical* extension."""
    kind = SealKind.PERSONAL if seal_type == ses.SEAL_TYPE_PERSONAL else None
    if isinstance(ext_datas, ses.ExtensionDatas):
        for ext in ext_datas:
            oid = ext["extn_id"].dotted
            if oid == SEAL_KIND_EXTENSION:
                value = core.UTF8String.load(ext["extn_value"].native).native
                kind = _known_kind(value)
            elif ext["critical"].native:
                raise SealUnsupported(f"the seal has an unknown critical extension {oid}")
    return kind


def _known_kind(value: str) -> SealKind | None:
    try:
        return SealKind(value)
    except ValueError:
        return None
