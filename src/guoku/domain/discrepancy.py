"""How a reconciliation break is handled: investigate, annotate, resolve — one table of moves."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from guoku.domain.errors import IllegalTransition


class DiscrepancyStatus(enum.StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    """调查中: someone took it."""
    ANNOTATED = "annotated"
    """已说明: the cause is written down."""
    RESOLVED = "resolved"
    """已处理: corrected or explained; closed."""


class DiscrepancyStep(enum.StrEnum):
    INVESTIGATE = "investigate"
    ANNOTATE = "annotate"
    RESOLVE = "resolve"


D, S = DiscrepancyStatus, DiscrepancyStep
STEPS: Final[Mapping[tuple[DiscrepancyStatus, DiscrepancyStep], DiscrepancyStatus]] = (
    MappingProxyType({
        (D.OPEN, S.INVESTIGATE): D.INVESTIGATING,
        (D.INVESTIGATING, S.ANNOTATE): D.ANNOTATED,
        (D.ANNOTATED, S.ANNOTATE): D.ANNOTATED,
        (D.INVESTIGATING, S.RESOLVE): D.RESOLVED,
        (D.ANNOTATED, S.RESOLVE): D.RESOLVED,
    })
)
NEEDS_NOTE: Final = frozenset({S.ANNOTATE, S.RESOLVE})


def next_status(status: DiscrepancyStatus, step: DiscrepancyStep) -> DiscrepancyStatus:
    try:
        return STEPS[(status, step)]
    except KeyError:
        raise IllegalTransition(f"cannot {step.value} a discrepancy that is {status.value}",
                                state=status.value, event=step.value) from None
