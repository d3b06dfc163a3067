"""GB/T 38540-2020 electronic seal (电子印章) and seal signature (电子签章) in asn1crypto.

Only the schema lives here; making, parsing with typed errors, signing and verifying live in
:mod:`guoku.security.seals`. Field names are snake_case versions of the standard's names.

    SES_Seal ::= SEQUENCE {
        esealInfo   SES_SealInfo,
        cert        OCTET STRING,          -- the seal maker's (制章人) certificate, DER
        signAlgID   OBJECT IDENTIFIER,     -- 1.2.156.10197.1.501 SM2-with-SM3
        signedValue BIT STRING,            -- SM2 signature over DER(esealInfo)
        timeStamp   [0] BIT STRING OPTIONAL }   -- ofdrw "V5" only, not in GB/T 38540-2020

    SES_Signature ::= SEQUENCE {
        toSign         TBS_Sign,
        cert           OCTET STRING,       -- the signer's (签章人) certificate, DER
        signatureAlgID OBJECT IDENTIFIER,
        signature      BIT STRING,         -- SM2 signature over DER(toSign)
        timeStamp      [0] BIT STRING OPTIONAL }

Choices where implementations differ (docs/decisions/0005-electronic-seals.md):

* ``certList`` is a CHOICE of two *untagged* ``SEQUENCE OF`` types, so the encoding alone does
  not say which one it is; ``certListType`` (1 = certificates, 2 = certificate digests) does.
  The field is an :class:`asn1crypto.core.Any` here and is interpreted by its elements' shapes
  when read; guoku writes type 1, a ``SEQUENCE OF OCTET STRING`` of DER certificates.
* ``timeStamp`` ``[0]``: guoku writes EXPLICIT tagging (a constructed ``[0]`` around the BIT
  STRING), as ofdrw does; both EXPLICIT and IMPLICIT are accepted when read
  (:func:`read_tagged_bit_string`).
* ``TBS_Sign.extDatas``: ofdrw writes ``[0] EXPLICIT``; an untagged ``SEQUENCE OF`` is read too.
  guoku writes none.
"""

# mypy: allow-subclassing-any
# (asn1crypto ships no type information, so its base classes are Any to mypy.)

from __future__ import annotations

from typing import Final

from asn1crypto import core

SM2_WITH_SM3: Final = "1.2.156.10197.1.501"
"""Signature algorithm OID SM2-with-SM3 (GM/T 0006)."""

SES_HEADER_ID: Final = "ES"
SES_VERSION_V4: Final = 4
"""GB/T 38540-2020 seal data format version; the one guoku writes."""
SES_VERSION_V5: Final = 5
"""ofdrw's "V5": the V4 layout plus an optional ``[0]`` timeStamp at the end of SES_Seal."""

CERT_LIST_TYPE_CERTS: Final = 1
CERT_LIST_TYPE_DIGESTS: Final = 2

SEAL_TYPE_ORGANIZATION: Final = 1
"""SES_ESPropertyInfo.type 1 — 单位印章 (an organization's seal)."""
SEAL_TYPE_PERSONAL: Final = 2
"""SES_ESPropertyInfo.type 2 — 个人印章 (a person's seal)."""


class SESHeader(core.Sequence):
    """SES_Header — id "ES", format version, vendor id (厂商标识)."""

    _fields = [
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertInfoList(core.SequenceOf):
    """certList alternative 1: DER certificates of the seal's holders, each in an OCTET STRING."""

    _child_spec = core.OctetString


class CertDigestObj(core.Sequence):
    """A holder certificate's digest: ``type`` names the hash (e.g. "SM3"), ``value`` holds it."""

    _fields = [
        ("type", core.PrintableString),
        ("value", core.OctetString),
    ]


class CertDigestList(core.SequenceOf):
    """certList alternative 2: digests of the holders' certificates."""

    _child_spec = CertDigestObj


class AnyList(core.SequenceOf):
    """A ``SEQUENCE OF`` whose elements are read by shape (the lenient certList reader)."""

    _child_spec = core.Any


class ExtData(core.Sequence):
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):
    _child_spec = ExtData


class SESESPropertyInfo(core.Sequence):
    """SES_ESPropertyInfo — seal type, name, holder certificate list and validity."""

    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class SESESPictrueInfo(core.Sequence):
    """SES_ESPictrueInfo (sic, the standard's spelling) — image type, bytes, size in mm."""

    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class SESSealInfo(core.Sequence):
    """SES_SealInfo — the part of a seal that the seal maker signs."""

    _fields = [
        ("header", SESHeader),
        ("es_id", core.IA5String),
        ("property", SESESPropertyInfo),
        ("picture", SESESPictrueInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESSeal(core.Sequence):
    """SES_Seal — an electronic seal: seal info, maker certificate, maker signature."""

    _fields = [
        ("eseal_info", SESSealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
        ("time_stamp", core.Any, {"optional": True}),
    ]


class TBSSign(core.Sequence):
    """TBS_Sign — what a seal signature (签章) signs: the seal, the time and the data's hash."""

    _fields = [
        ("version", core.Integer),
        ("eseal", SESSeal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"optional": True}),
        ("ext_datas_tagged", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignature(core.Sequence):
    """SES_Signature — a seal signature: TBS_Sign, signer certificate, signer signature."""

    _fields = [
        ("to_sign", TBSSign),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.Any, {"optional": True}),
    ]


def tagged_bit_string(value: bytes) -> core.Any:
    """The ``[0] BIT STRING`` timeStamp field as guoku writes it: EXPLICIT tagging."""
    return core.Any(core.OctetBitString(value, explicit=0))


def read_tagged_bit_string(field: core.Any) -> bytes:
    """Read a ``[0] BIT STRING`` encoded with EXPLICIT (ofdrw) or IMPLICIT tagging.

    Raises ``ValueError`` when it is neither.
    """
    for params in ({"explicit": 0}, {"implicit": 0}):
        try:
            parsed = field.parse(core.OctetBitString, dict(params))
            return bytes(parsed.native)
        except ValueError:
            continue
    raise ValueError("timeStamp is not a [0] BIT STRING (explicit or implicit)")
