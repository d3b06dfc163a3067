"""The error tree: every error a user, an operator or a peer node can cause.

    GuokuError                      stable ``code``; CLI -> one line + exit 2, API -> 4xx JSON
    ├── ValidationError             a field, amount or value is wrong
    │   ├── AmountInvalid
    │   └── UnknownVoucherType
    ├── XmlRejected                 hostile or malformed XML (xml.parser)
    │   └── SchemaInvalid           well-formed but not valid against the type's XSD
    ├── IllegalTransition           the lifecycle table has no such move
    ├── PermissionDenied            the user lacks the post for this action
    │   └── SeparationOfDuties      the same person would perform two controls on one voucher
    ├── NotFound                    no such voucher/user/party in the caller's tenants
    ├── Conflict                    a unique key (voucher no + version) exists already
    ├── AuditChainBroken            the audit log's hash chain does not verify
    └── CryptoError                 (security.crypto) and the seal/certificate errors under it

Errors are raised before anything is written; the unit of work rolls back on any of them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GuokuError(Exception):
    """Base of every error a user or peer can cause. Carries a stable machine-readable code."""

    code: ClassVar[str] = "GUOKU_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationError(GuokuError):
    code = "VALIDATION_ERROR"


class AmountInvalid(ValidationError):
    code = "AMOUNT_INVALID"


class UnknownVoucherType(ValidationError):
    code = "UNKNOWN_VOUCHER_TYPE"


class XmlRejected(GuokuError):
    code = "XML_REJECTED"


class SchemaInvalid(XmlRejected):
    code = "SCHEMA_INVALID"


class IllegalTransition(GuokuError):
    code = "ILLEGAL_TRANSITION"


class PermissionDenied(GuokuError):
    code = "PERMISSION_DENIED"


class SeparationOfDuties(PermissionDenied):
    code = "SEPARATION_OF_DUTIES"


class NotFound(GuokuError):
    code = "NOT_FOUND"


class Conflict(GuokuError):
    code = "CONFLICT"


class AuditChainBroken(GuokuError):
    code = "AUDIT_CHAIN_BROKEN"
