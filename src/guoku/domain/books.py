"""Posting rules: which voucher event books what in which party's business ledger (业务账).

Pure: a rule maps (party kind, direction, voucher type, event) to a ledger account. The books
are what the three-layer reconciliation compares — finance's payments and quotas, the agent
bank's advances (垫付) and reimbursements (清算回款), the central bank's treasury clearing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from guoku.domain.parties import PartyKind

Rule = tuple[PartyKind, str, str, str]
"""(party kind, direction in|out, voucher type, event)."""

POSTINGS: Final[Mapping[Rule, str]] = MappingProxyType({
    # finance: quotas issued, payments made, refunds back
    (PartyKind.FINANCE, "out", "5102", "send"): "quota_issued",
    (PartyKind.FINANCE, "out", "5201", "accept"): "direct_paid",
    (PartyKind.UNIT, "out", "8202", "accept"): "authorized_paid",
    (PartyKind.FINANCE, "out", "5207", "accept"): "allocated",
    (PartyKind.FINANCE, "in", "2203", "receive"): "direct_refunded",
    (PartyKind.FINANCE, "in", "2204", "receive"): "authorized_refunded",
    (PartyKind.FINANCE, "in", "3208", "receive"): "allocation_refunded",
    # the agent bank: advances to payees, reimbursed by the treasury, refunds passed back
    (PartyKind.BANK, "in", "5201", "accept"): "advanced",
    (PartyKind.BANK, "in", "8202", "accept"): "advanced",
    (PartyKind.BANK, "in", "9301", "receive"): "reimbursed",
    (PartyKind.BANK, "out", "2302", "accept"): "refund_returned",
    # the central bank treasury: clearing out of the treasury account, refunds back in
    (PartyKind.PBOC, "in", "2301", "accept"): "cleared",
    (PartyKind.PBOC, "in", "5207", "accept"): "allocated",
    (PartyKind.PBOC, "in", "2302", "accept"): "refund_received",
    (PartyKind.PBOC, "out", "3208", "send"): "allocation_refunded",
})


def account_for(kind: PartyKind, direction: str, vt_code: str, event: str) -> str | None:
    return POSTINGS.get((kind, direction, vt_code, event))
