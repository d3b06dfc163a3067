"""Parties (finance, central bank treasury, agent bank, budget unit) and administrative divisions.

An administrative division (行政区划, ``admdiv``) is a six-digit code: ``PP0000`` a province,
``PPCC00`` a prefecture, anything else a county. One finance node hosts many admdivs as tenants
(两级建设、五级应用: built at province level, used down to the county).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from guoku.domain.errors import ValidationError

_ADMDIV = re.compile(r"[1-9][0-9]{5}")


class PartyKind(enum.StrEnum):
    FINANCE = "finance"
    """财政 — issues quotas, direct payments and allocations; keeps the books."""
    PBOC = "pboc"
    """人民银行国库 — holds the treasury account, clears what banks advance, pays allocations."""
    BANK = "bank"
    """代理银行 — pays payees on finance's behalf, then asks the treasury to reimburse."""
    UNIT = "unit"
    """预算单位 — spends under its authorized quota through finance's platform."""


class AdmDivLevel(enum.StrEnum):
    PROVINCE = "province"
    PREFECTURE = "prefecture"
    COUNTY = "county"


@dataclass(frozen=True, slots=True)
class AdmDiv:
    """An administrative division code, e.g. 530000 Yunnan, 533100 Dehong, 533103 Mangshi."""

    code: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _ADMDIV.fullmatch(self.code):
            raise ValidationError(f"admdiv {self.code!r} is not a six-digit division code")

    @property
    def level(self) -> AdmDivLevel:
        if self.code[2:] == "0000":
            return AdmDivLevel.PROVINCE
        if self.code[4:] == "00":
            return AdmDivLevel.PREFECTURE
        return AdmDivLevel.COUNTY

    @property
    def parent(self) -> AdmDiv | None:
        """The division directly above; a county directly under a province has the province."""
        if self.level is AdmDivLevel.PROVINCE:
            return None
        if self.level is AdmDivLevel.PREFECTURE:
            return AdmDiv(self.code[:2] + "0000")
        return AdmDiv(self.code[:4] + "00")

    def contains(self, other: AdmDiv) -> bool:
        """True when ``other`` is this division or lies below it."""
        node: AdmDiv | None = other
        while node is not None:
            if node == self:
                return True
            node = node.parent
        return False

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True, slots=True)
class Party:
    """One participant: its code is unique within a deployment (e.g. ``F530000``, ``B-ICBC``)."""

    code: str
    kind: PartyKind
    name: str
    admdiv: AdmDiv
