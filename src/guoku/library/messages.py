"""What travels between libraries besides vouchers: receipts, error receipts, status queries.

Each is a small JSON item inside an envelope, with its own message id; ``ref`` always names the
message id of the voucher item it answers, so the sender finds the voucher through its outbox.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Final

from sqlalchemy import Connection

from guoku.domain.errors import ValidationError
from guoku.store.tables import outbox

VOUCHER: Final = "voucher"
DELIVERED: Final = "delivered"
RECEIPT: Final = "receipt"
ERROR: Final = "error"
QUERY: Final = "query"
ANSWER: Final = "answer"


def dump(item: Any) -> bytes:
    return json.dumps(asdict(item), sort_keys=True, ensure_ascii=False).encode()


def load(cls: type[Any], payload: bytes) -> Any:
    try:
        data = json.loads(payload)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"malformed {cls.__name__} item: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Delivered:
    """回执 (technical): the receiving node stored the voucher item ``ref`` — what it stored
    (SM3 of the XML, the amount) travels back so the sender reconciles it in real time."""

    ref: str
    sm3: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """签收/退回 receipt for one voucher version."""

    admdiv: str
    st_year: int
    vt_code: str
    voucher_no: str
    version: int
    outcome: str
    reason: str | None
    at: str


@dataclass(frozen=True, slots=True)
class ErrorReceipt:
    """错误回执: item ``ref`` — or every item of envelope ``envelope`` — was refused."""

    ref: str | None
    envelope: str | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """查询: what became of voucher item ``ref``?"""

    ref: str


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """``status``: unknown, received, accepted, returned or refused (with code and reason)."""

    ref: str
    status: str
    code: str | None
    reason: str | None


def enqueue(
    conn: Connection, *, at: str, admdiv: str, sender: str, receiver: str, kind: str,
    vt_code: str, voucher_id: int | None, payload: bytes,
) -> str:
    """Write one outgoing item in the caller's transaction (transactional outbox)."""
    message_id = uuid.uuid4().hex
    conn.execute(_INSERT_OUTBOX, {
        "message_id": message_id, "admdiv": admdiv, "sender_party": sender,
        "receiver_party": receiver, "kind": kind, "vt_code": vt_code, "voucher_id": voucher_id,
        "payload": payload, "created_at": at,
    })
    return message_id


_INSERT_OUTBOX: Final = outbox.insert()
"""Built once, executed with parameters (see ``guoku.store.repository``)."""
