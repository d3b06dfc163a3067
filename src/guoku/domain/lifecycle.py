"""Voucher states and the one table of allowed transitions.

A voucher lives on two nodes: the sender's copy goes draft -> checked (审核) -> sealed -> sent,
then settles as accepted (签收) or returned (退回) when the receiver's receipt arrives; the
receiver's copy starts received and the receiver accepts or returns it. Void (作废) is allowed only
before the voucher leaves the sender, or after it came back returned (the seeds: a failed
allocation comes back returned and finance voids it). Restore (恢复) brings a voided voucher back to
draft, so it must be reviewed and sealed again — seals made before the void are never reused; a
voucher that had been sent comes back returned instead (reinstate), since that version was seen.
A returned or voided voucher may be revised: the old version becomes superseded and a new version
of the same voucher number starts in draft (凭证版本).

On the wire (the middleware): a sent voucher becomes delivered when the receiving node stored it,
failed when the receiver refused the envelope with an error receipt (错误回执), and
indeterminate when no receipt came within its time limit — never silently pending. A status
query settles an indeterminate voucher (delivered, accepted, returned, failed) or, when the
receiver never got it, sends it again.

Emergency (应急, decision 0021): a voucher stuck on the wire (sent or indeterminate: the
counterparty or the link is down) may be switched to the paper fallback once its time limit has
passed; it is printed with an emergency mark and processed on paper, while its electronic copy
stays queued. The receiver's answer settles it as usual (accepted or returned) once the link is
back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from guoku.domain.errors import IllegalTransition


class State(enum.StrEnum):
    DRAFT = "draft"
    CHECKED = "checked"
    SEALED = "sealed"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    VOID = "void"
    SUPERSEDED = "superseded"
    PAPER = "paper"
    """应急纸质: processed on paper while the electronic copy waits for the link."""


class Event(enum.StrEnum):
    CHECK = "check"
    """审核: a reviewer approves the entry."""
    UNCHECK = "uncheck"
    """撤销审核: the reviewer withdraws approval before sealing."""
    SEAL = "seal"
    SEND = "send"
    ACCEPT = "accept"
    """签收: the receiver accepts; on the sender's copy, the accept receipt arrived."""
    RETURN = "return"
    """退回: the receiver refuses with a reason; on the sender's copy, the return receipt came."""
    VOID = "void"
    RESTORE = "restore"
    REVISE = "revise"
    """A corrected version replaces this one (凭证版本)."""
    REINSTATE = "reinstate"
    """恢复 of a voucher voided after it came back returned: it is returned again (its version
    was seen by the receiver, so it can only be corrected as a new version, never resent)."""
    DELIVER = "deliver"
    """回执: the receiving node stored the voucher."""
    FAIL = "fail"
    """错误回执: the receiving node refused the message, with a reason."""
    TIME_OUT = "time_out"
    """No receipt within the voucher's time limit."""
    RESEND = "resend"
    """The status query found the receiver never got it: the same message goes again."""
    FALLBACK = "fallback"
    """应急: switch a voucher stuck on the wire to the paper fallback (decision 0021)."""


INITIAL_CREATED: Final = State.DRAFT
"""State of a voucher a node creates itself."""
INITIAL_RECEIVED: Final = State.RECEIVED
"""State of a voucher a node receives from a peer."""

TRANSITIONS: Final[Mapping[tuple[State, Event], State]] = MappingProxyType(
    {
        (State.DRAFT, Event.CHECK): State.CHECKED,
        (State.CHECKED, Event.UNCHECK): State.DRAFT,
        (State.CHECKED, Event.SEAL): State.SEALED,
        (State.SEALED, Event.SEND): State.SENT,
        (State.SENT, Event.DELIVER): State.DELIVERED,
        (State.SENT, Event.ACCEPT): State.ACCEPTED,
        (State.SENT, Event.RETURN): State.RETURNED,
        (State.SENT, Event.FAIL): State.FAILED,
        (State.SENT, Event.TIME_OUT): State.INDETERMINATE,
        (State.DELIVERED, Event.ACCEPT): State.ACCEPTED,
        (State.DELIVERED, Event.RETURN): State.RETURNED,
        (State.DELIVERED, Event.TIME_OUT): State.INDETERMINATE,
        (State.INDETERMINATE, Event.DELIVER): State.DELIVERED,
        (State.INDETERMINATE, Event.ACCEPT): State.ACCEPTED,
        (State.INDETERMINATE, Event.RETURN): State.RETURNED,
        (State.INDETERMINATE, Event.FAIL): State.FAILED,
        (State.INDETERMINATE, Event.RESEND): State.SENT,
        (State.RECEIVED, Event.ACCEPT): State.ACCEPTED,
        (State.RECEIVED, Event.RETURN): State.RETURNED,
        (State.DRAFT, Event.VOID): State.VOID,
        (State.CHECKED, Event.VOID): State.VOID,
        (State.SEALED, Event.VOID): State.VOID,
        (State.RETURNED, Event.VOID): State.VOID,
        (State.FAILED, Event.VOID): State.VOID,
        (State.VOID, Event.RESTORE): State.DRAFT,
        (State.VOID, Event.REINSTATE): State.RETURNED,
        (State.RETURNED, Event.REVISE): State.SUPERSEDED,
        (State.VOID, Event.REVISE): State.SUPERSEDED,
        (State.FAILED, Event.REVISE): State.SUPERSEDED,
        (State.SENT, Event.FALLBACK): State.PAPER,
        (State.INDETERMINATE, Event.FALLBACK): State.PAPER,
        (State.PAPER, Event.ACCEPT): State.ACCEPTED,
        (State.PAPER, Event.RETURN): State.RETURNED,
    }
)

FINAL_STATES: Final = frozenset({State.ACCEPTED, State.SUPERSEDED})
"""States with no way out. (Void is not final: it can be restored or revised.)"""


def next_state(state: State, event: Event) -> State:
    """The state after ``event``; raises :class:`IllegalTransition` when the table has no move."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == state)
        raise IllegalTransition(
            f"cannot {event.value} a voucher in state {state.value}",
            state=state.value,
            event=event.value,
            allowed=allowed,
        ) from None


def allowed_events(state: State) -> list[Event]:
    return [e for (s, e) in TRANSITIONS if s == state]
