"""Seal kinds and seal positions — where on a voucher which party's seal must be stamped."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SealKind(enum.StrEnum):
    UNIT_FINANCE = "unit_finance"
    """单位财务专用章 — a unit's (or finance's) financial seal; official, on the seal server."""
    LEGAL_REP = "legal_rep"
    """单位法人章 — legal-representative seal; official."""
    BANK_BUSINESS = "bank_business"
    """业务专用章 — an agent bank's business seal; official."""
    TREASURY = "treasury"
    """转讫章 — the central bank treasury's transfer seal; official."""
    PERSONAL = "personal"
    """私章 — a handler's personal seal, on that person's USB key."""

    @property
    def chinese(self) -> str:
        return _CHINESE[self]

    @property
    def is_personal(self) -> bool:
        return self is SealKind.PERSONAL


_CHINESE = {
    SealKind.UNIT_FINANCE: "财务专用章",
    SealKind.LEGAL_REP: "法人章",
    SealKind.BANK_BUSINESS: "业务专用章",
    SealKind.TREASURY: "转讫章",
    SealKind.PERSONAL: "私章",
}


@dataclass(frozen=True, slots=True)
class SealPosition:
    """Stamp position ``no`` (the ``<Stamp No="...">`` of the spec) takes a seal of ``kind``."""

    no: str
    kind: SealKind
