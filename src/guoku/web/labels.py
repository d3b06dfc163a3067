"""How the counter and its printouts name voucher states and trail events (zh-CN)."""

from __future__ import annotations

from typing import Final

from guoku.domain.lifecycle import State

STATES: Final[dict[str, str]] = {
    State.DRAFT: "待审核", State.CHECKED: "已审核待盖章", State.SEALED: "已盖章待发送",
    State.SENT: "已发送", State.DELIVERED: "银行已收到", State.FAILED: "发送失败",
    State.INDETERMINATE: "状态待查", State.RECEIVED: "已接收", State.ACCEPTED: "银行已受理",
    State.RETURNED: "已退回", State.VOID: "已作废", State.SUPERSEDED: "已被新版本替代",
}
EVENTS: Final = {
    "create": "录入", "revise": "更正", "check": "审核", "uncheck": "撤销审核", "seal": "盖章",
    "send": "发送", "deliver": "送达", "fail": "发送失败", "receive": "接收", "accept": "签收",
    "return": "退回", "void": "作废", "restore": "恢复", "reinstate": "恢复",
    "indeterminate": "状态待查", "supersede": "被替代",
}


def state_label(state: str) -> str:
    return STATES.get(state, state)


def event_label(event: str) -> str:
    return EVENTS.get(event, event)
