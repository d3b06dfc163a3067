"""Posts (岗位), permissions and separation of duties — no one person can complete a payment.

Every voucher records who performed each control step. The same user may never perform two of
entry (录入), review (审核) and seal (盖章) on one voucher; this is checked here, in one place,
for every action that performs a control step.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from guoku.domain.errors import PermissionDenied, SeparationOfDuties
from guoku.domain.lifecycle import Event


class Post(enum.StrEnum):
    ENTRY = "entry"
    """录入岗 — enters vouchers."""
    REVIEW = "review"
    """审核岗 — reviews (checks) vouchers."""
    SEAL = "seal"
    """盖章岗 — applies the official and personal seals."""
    SEND = "send"
    """发送岗 — sends sealed vouchers."""
    RECEIVE = "receive"
    """签收岗 — accepts or returns received vouchers."""
    PRINT = "print"
    """打印岗 — prints vouchers (controlled printing)."""
    RECONCILE = "reconcile"
    """对账岗 — runs reconciliation and handles the discrepancies it finds."""
    ADMIN = "admin"
    """系统管理员 — users, posts, seal authorizations; may query across tenants when asked."""


class Action(enum.StrEnum):
    CREATE = "create"
    CHECK = "check"
    UNCHECK = "uncheck"
    SEAL = "seal"
    SEND = "send"
    ACCEPT = "accept"
    RETURN = "return"
    VOID = "void"
    RESTORE = "restore"
    REINSTATE = "reinstate"
    REVISE = "revise"
    QUERY = "query"
    PRINT = "print"
    FALLBACK = "fallback"


ACTION_POST: Final[Mapping[Action, Post]] = MappingProxyType(
    {
        Action.CREATE: Post.ENTRY,
        Action.REVISE: Post.ENTRY,
        Action.RESTORE: Post.ENTRY,
        Action.REINSTATE: Post.ENTRY,
        Action.VOID: Post.ENTRY,
        Action.CHECK: Post.REVIEW,
        Action.UNCHECK: Post.REVIEW,
        Action.SEAL: Post.SEAL,
        Action.SEND: Post.SEND,
        Action.ACCEPT: Post.RECEIVE,
        Action.RETURN: Post.RECEIVE,
        Action.PRINT: Post.PRINT,
        Action.FALLBACK: Post.SEND,
    }
)
"""The post an action needs. QUERY needs any post of the user's party. The paper fallback
(应急) is the sending post's: it changes how a sealed voucher travels (decision 0021)."""

ACTION_EVENT: Final[Mapping[Action, Event]] = MappingProxyType(
    {
        Action.CHECK: Event.CHECK,
        Action.UNCHECK: Event.UNCHECK,
        Action.SEAL: Event.SEAL,
        Action.SEND: Event.SEND,
        Action.ACCEPT: Event.ACCEPT,
        Action.RETURN: Event.RETURN,
        Action.VOID: Event.VOID,
        Action.RESTORE: Event.RESTORE,
        Action.REINSTATE: Event.REINSTATE,
        Action.REVISE: Event.REVISE,
        Action.FALLBACK: Event.FALLBACK,
    }
)

CONTROL_STEPS: Final = (Action.CREATE, Action.CHECK, Action.SEAL)
"""The three control steps that must be performed by three different people (三岗分离)."""

ANY_VOUCHER_TYPE: Final = "*"


@dataclass(frozen=True, slots=True)
class Grant:
    """A user holds ``post`` for voucher type ``vt_code`` (``"*"`` = every type of the party)."""

    post: Post
    vt_code: str = ANY_VOUCHER_TYPE

    def covers(self, post: Post, vt_code: str) -> bool:
        return self.post is post and self.vt_code in (ANY_VOUCHER_TYPE, vt_code)


def required_post(action: Action) -> Post | None:
    return ACTION_POST.get(action)


def check_permission(
    username: str, grants: frozenset[Grant], action: Action, vt_code: str
) -> Post | None:
    """Return the post under which ``username`` performs ``action``; raise if none covers it."""
    post = required_post(action)
    if post is None:
        return None
    if any(g.covers(post, vt_code) for g in grants):
        return post
    raise PermissionDenied(
        f"user {username} does not hold the {post.value} post for voucher type {vt_code}",
        user=username,
        post=post.value,
        vt_code=vt_code,
    )


def check_separation(username: str, action: Action, actors: Mapping[Action, str | None]) -> None:
    """Refuse when ``username`` already performed another control step on this voucher."""
    if action not in CONTROL_STEPS:
        return
    for step in CONTROL_STEPS:
        if step is not action and actors.get(step) == username:
            raise SeparationOfDuties(
                f"user {username} already performed {step.value} on this voucher and may not "
                f"also {action.value} it: no one person can complete a payment",
                user=username,
                action=action.value,
                earlier_step=step.value,
            )
