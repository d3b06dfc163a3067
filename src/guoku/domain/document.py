"""A voucher document: header fields, detail lines and stamps, validated against its type.

This is the in-memory form of one voucher version; ``guoku.xml.codec`` turns it into the XML the
nodes exchange and back. Validation here is the domain's (required fields, lengths, patterns,
amount arithmetic); the XSD check in the XML layer enforces the same shape at the boundary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from guoku.domain.errors import AmountInvalid, ValidationError
from guoku.domain.fields import PATTERNS, FieldKind, FieldSpec
from guoku.domain.money import Amount
from guoku.domain.parties import AdmDiv
from guoku.domain.vouchers import VoucherType

MAX_DETAILS: Final = 5000
"""Detail lines one voucher may carry; a daily report of a busy bank stays well under this."""
_COMPILED: Final = {kind: re.compile(pattern) for kind, pattern in PATTERNS.items()}
"""The field patterns, compiled once (``FieldSpec.problem`` looks each up in ``re``'s cache)."""


@dataclass(frozen=True, slots=True)
class VoucherDocument:
    vtype: VoucherType
    header: Mapping[str, str]
    details: tuple[Mapping[str, str], ...] = ()
    version: int = 1
    stamps: Mapping[str, str] = field(default_factory=dict)
    """Stamp position no -> base64 DER SES_Signature. Excluded from the canonical bytes."""

    @property
    def vt_code(self) -> str:
        return self.vtype.code

    @property
    def voucher_no(self) -> str:
        return self.header["VoucherNo"]

    @property
    def admdiv(self) -> AdmDiv:
        return AdmDiv(self.header["AdmDivCode"])

    @property
    def year(self) -> int:
        return int(self.header["StYear"])

    @property
    def amount(self) -> Amount:
        return Amount.parse(self.header[self.vtype.amount_field])

    @property
    def key(self) -> tuple[str, int, str, str, int]:
        """Idempotency key of this version: admdiv, year, type, voucher no, version."""
        return (self.header["AdmDivCode"], self.year, self.vt_code, self.voucher_no, self.version)

    def with_stamps(self, stamps: Mapping[str, str]) -> VoucherDocument:
        return replace(self, stamps=dict(stamps))

    def without_stamps(self) -> VoucherDocument:
        return replace(self, stamps={})

    def with_header(self, **values: str) -> VoucherDocument:
        return replace(self, header={**self.header, **values})


def validate(doc: VoucherDocument) -> None:
    """Raise :class:`ValidationError` naming every problem; return None when sound."""
    problems = _header_problems(doc) + _detail_problems(doc)
    if problems:
        raise ValidationError(
            f"voucher {doc.header.get('VoucherNo', '?')} ({doc.vtype.code}) is invalid: "
            + "; ".join(problems),
            problems=problems,
        )
    _check_amounts(doc)


def _header_problems(doc: VoucherDocument) -> list[str]:
    known = set(doc.vtype.field_names)
    problems = [f"unknown field {name}" for name in doc.header if name not in known]
    problems += _field_problems(doc.vtype.fields, doc.header)
    if doc.header.get("VtCode") not in (None, "", doc.vtype.code):
        problems.append(f"VtCode {doc.header['VtCode']} does not match type {doc.vtype.code}")
    if not 1 <= doc.version <= 999:
        problems.append(f"version {doc.version} out of range 1..999")
    return problems


def _detail_problems(doc: VoucherDocument) -> list[str]:
    if doc.details and not doc.vtype.has_details:
        return [f"voucher type {doc.vtype.code} has no detail lines"]
    if len(doc.details) > MAX_DETAILS:
        return [f"{len(doc.details)} detail lines exceed the limit of {MAX_DETAILS}"]
    problems: list[str] = []
    known = {f.name for f in doc.vtype.detail_fields}
    for i, line in enumerate(doc.details, start=1):
        problems += [f"detail {i}: unknown field {n}" for n in line if n not in known]
        problems += [f"detail {i}: {p}" for p in _field_problems(doc.vtype.detail_fields, line)]
    return problems


def _field_problems(specs: tuple[FieldSpec, ...], values: Mapping[str, str]) -> list[str]:
    """``spec.problem`` of every field, in order; a plainly sound value (present, short enough,
    matching its kind's pattern, not a date, whose calendar ``problem`` checks) is passed here
    without the call — the same verdicts, at half the cost."""
    problems: list[str] = []
    for spec in specs:
        value = values.get(spec.name)
        if value and len(value) <= spec.max_length and spec.kind is not FieldKind.DATE:
            pattern = _COMPILED.get(spec.kind)
            if pattern is None or pattern.fullmatch(value):
                continue
        problem = spec.problem(value)
        if problem:
            problems.append(problem)
    return problems


def _check_amounts(doc: VoucherDocument) -> None:
    """The header amount is positive and, where details exist, equals their sum to the fen."""
    total = doc.amount
    if doc.vtype.zero_amount and total.fen >= 0:
        pass
    elif not total.is_positive():
        raise AmountInvalid(
            f"{doc.vtype.amount_field} must be positive, got {total.wire()}",
            voucher_no=doc.voucher_no,
        )
    field_name = doc.vtype.detail_amount_field
    if not doc.details or field_name is None:
        return
    lines = [Amount.parse(line[field_name]) for line in doc.details]
    lowest = 0 if doc.vtype.zero_amount else 1
    if any(a.fen < lowest for a in lines):
        raise AmountInvalid("every detail amount must be positive", voucher_no=doc.voucher_no)
    detail_sum = sum(lines, Amount.zero())
    if detail_sum != total:
        raise AmountInvalid(
            f"details sum to {detail_sum.wire()} but {doc.vtype.amount_field} is {total.wire()}",
            voucher_no=doc.voucher_no,
        )
