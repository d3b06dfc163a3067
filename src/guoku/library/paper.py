"""The paper fallback (应急纸质凭证, decision 0021), inside the voucher library.

When a counterparty node or the link is down, the sender's outbox keeps the voucher and sends it
by itself once the link is back. Past the time limit of its type the sending post may switch the
voucher to paper (:meth:`VoucherLibrary.fallback`, state ``paper``); it is printed with an
emergency mark (``guoku.ops.fallback``) and carried over. The receiver processes the paper and
registers it here (by the number, amount and date printed on it). When the electronic copy
arrives — the queued original or a resend — it is *the same voucher*: the registration is
matched in the receiving transaction and the voucher is accepted once, for the registrar, so
nothing is applied twice and the electronic record is complete. A paper that says something
else than the electronic copy is kept as a mismatch for the receiver to settle by hand.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from guoku.domain.controls import Action, check_permission
from guoku.domain.errors import Conflict, GuokuError, PermissionDenied, ValidationError
from guoku.domain.lifecycle import State
from guoku.domain.vouchers import voucher_type
from guoku.library.ports import iso
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.repository import User, VoucherRow
from guoku.store.tables import paper_vouchers, voucher_events
from guoku.store.uow import UnitOfWork

if TYPE_CHECKING:
    from guoku.library.service import VoucherLibrary

DEFAULT_WAIT: Final = timedelta(hours=2)
"""How long a voucher must have been on the wire before it may go to paper, unless its type
says otherwise (``guoku.ops.fallback.FallbackPolicy``)."""


class PaperStatus(enum.StrEnum):
    REGISTERED = "registered"
    """Processed on paper; the electronic copy has not arrived yet."""
    MATCHED = "matched"
    """The electronic copy arrived and says what the paper said."""
    MISMATCH = "mismatch"
    """The electronic copy arrived and differs (amount, date or receiver): settle by hand."""


class FallbackTooEarly(Conflict):
    code = "FALLBACK_TOO_EARLY"


@dataclass(frozen=True, slots=True)
class PaperFacts:
    """What the receiver reads off the printed emergency voucher."""

    sender: str
    vt_code: str
    st_year: int
    voucher_no: str
    version: int
    amount_fen: int
    vou_date: str
    admdiv: str | None = None
    """Default: the registrar's division."""

    @property
    def ref(self) -> str:
        return f"{self.vt_code}/{self.st_year}/{self.voucher_no}/v{self.version}"


@dataclass(frozen=True, slots=True)
class PaperRecord:
    id: int
    admdiv: str
    st_year: int
    vt_code: str
    voucher_no: str
    version: int
    sender_party: str
    receiver_party: str
    amount_fen: int
    vou_date: str
    registered_by: str
    registered_at: str
    status: str
    voucher_id: int | None
    matched_at: str | None
    detail: str | None

    @property
    def ref(self) -> str:
        return f"{self.vt_code}/{self.st_year}/{self.voucher_no}/v{self.version}"


def _record(row: Any) -> PaperRecord:
    return PaperRecord(**{name: getattr(row, name) for name in PaperRecord.__slots__})


# --- the sender: when may a voucher go to paper ----------------------------------------------


def sent_at(conn: Connection, voucher_id: int) -> str | None:
    """When the voucher was last sent (its ``send`` event), or None."""
    found = conn.execute(
        select(voucher_events.c.at).where(voucher_events.c.voucher_id == voucher_id,
                                          voucher_events.c.event == "send")
        .order_by(voucher_events.c.id.desc())
    ).first()
    return None if found is None else str(found.at)


def check_due(conn: Connection, row: VoucherRow, now: datetime, after: timedelta) -> None:
    """Refuse (FallbackTooEarly) unless ``after`` has passed since ``row`` was sent."""
    at = sent_at(conn, row.id)
    if at is None:
        raise FallbackTooEarly(f"{row.ref} was never sent: nothing waits on the wire",
                               voucher_id=row.id)
    opens = datetime.fromisoformat(at.replace("Z", "+00:00")) + after
    if now < opens:
        raise FallbackTooEarly(
            f"{row.ref} was sent at {at}; the paper fallback for type {row.vt_code} opens "
            f"after {after} (at {iso(opens)})", voucher_id=row.id, opens=iso(opens))


# --- the receiver: registration and matching -------------------------------------------------


def register(uow: UnitOfWork, lib: VoucherLibrary, user: User, facts: PaperFacts) -> PaperRecord:
    """Record the paper ``facts`` for ``user``'s party (receiving post) and match the electronic
    copy at once when it is here already."""
    vtype = voucher_type(facts.vt_code)
    post = check_permission(user.username, user.grants, Action.ACCEPT, vtype.code)
    admdiv = facts.admdiv or user.admdiv.code
    if admdiv != user.admdiv.code:
        raise PermissionDenied(f"user {user.username} works for admdiv {user.admdiv.code}, "
                               f"not {admdiv}", user=user.username)
    sender = repo.get_party(uow.conn, facts.sender)
    if sender.kind is not vtype.sender or user.party.kind not in vtype.receivers:
        raise PermissionDenied(f"{vtype.code} does not go from a {sender.kind.value} to a "
                               f"{user.party.kind.value}", sender=facts.sender)
    if facts.amount_fen <= 0 or facts.version < 1:
        raise ValidationError("a paper voucher has a positive amount and a version from 1")
    if len(facts.vou_date) != 8 or not facts.vou_date.isdigit():
        raise ValidationError(f"the voucher date is yyyymmdd, not {facts.vou_date!r}")
    at = iso(lib.clock())
    try:
        with uow.conn.begin_nested():
            new_id = uow.conn.execute(insert(paper_vouchers).values(
                admdiv=admdiv, st_year=facts.st_year, vt_code=vtype.code,
                voucher_no=facts.voucher_no, version=facts.version, sender_party=sender.code,
                receiver_party=user.party.code, amount_fen=facts.amount_fen,
                vou_date=facts.vou_date, registered_by=user.username, registered_at=at,
                status=PaperStatus.REGISTERED.value,
            )).inserted_primary_key
    except IntegrityError as exc:
        raise Conflict(f"paper voucher {facts.ref} from {sender.code} is registered "
                       "already") from exc
    assert new_id is not None
    audit.append(uow.conn, admdiv=admdiv, at=at, actor=user.username,
                 post=post.value if post else None, action="paper.register",
                 voucher_ref=facts.ref,
                 detail={"sender": sender.code, "amount_fen": facts.amount_fen,
                         "vou_date": facts.vou_date})
    record = get(uow.conn, int(new_id[0]))
    row = repo.find_voucher(uow.conn, admdiv, facts.st_year, vtype.code, facts.voucher_no,
                            facts.version, "in")
    if row is not None and row.sender_party == sender.code:
        match(uow, lib, record, row)
    return get(uow.conn, record.id)


def on_arrival(uow: UnitOfWork, lib: VoucherLibrary, row: VoucherRow) -> None:
    """Called as a received voucher is stored: the paper registered for it, if any, is the
    same voucher."""
    found = uow.conn.execute(_REGISTERED_PAPER, {
        key: getattr(row, key) for key in _PAPER_KEY}).first()
    if found is not None:
        match(uow, lib, _record(found), row)


_PAPER_KEY: Final = ("admdiv", "st_year", "vt_code", "voucher_no", "version", "sender_party")
_REGISTERED_PAPER: Final = select(paper_vouchers).where(
    *(paper_vouchers.c[key] == bindparam(key) for key in _PAPER_KEY),
    paper_vouchers.c.status == PaperStatus.REGISTERED.value)
"""Built once: every received voucher asks it (see ``guoku.store.repository``)."""


def differences(record: PaperRecord, row: VoucherRow) -> list[str]:
    """What the paper says that the electronic copy does not."""
    found = []
    if record.amount_fen != row.amount_fen:
        found.append(f"amount: paper {record.amount_fen} fen, electronic {row.amount_fen} fen")
    if record.vou_date != row.vou_date:
        found.append(f"date: paper {record.vou_date}, electronic {row.vou_date}")
    if record.receiver_party != row.receiver_party:
        found.append(f"receiver: paper {record.receiver_party}, electronic "
                     f"{row.receiver_party}")
    return found


def match(uow: UnitOfWork, lib: VoucherLibrary, record: PaperRecord, row: VoucherRow) -> None:
    """Link the registration to the electronic copy; accept the copy once, for the registrar,
    when it agrees with the paper and waits for an answer."""
    at = iso(lib.clock())
    problems = differences(record, row)
    status = PaperStatus.MISMATCH if problems else PaperStatus.MATCHED
    detail: dict[str, Any] = {"problems": problems} if problems else {}
    if not problems and row.state == State.RECEIVED.value:
        registrar = repo.get_user(uow.conn, record.registered_by)
        savepoint = uow.conn.begin_nested()
        try:
            lib.answer_in(uow, registrar, row, Action.ACCEPT, None)
            savepoint.commit()
            detail["accepted"] = True
        except GuokuError as exc:  # the copy stays received: a clerk answers it by hand
            savepoint.rollback()
            detail.update(accepted=False, code=exc.code, reason=exc.message)
    uow.conn.execute(update(paper_vouchers).where(paper_vouchers.c.id == record.id).values(
        status=status.value, voucher_id=row.id, matched_at=at,
        detail=json.dumps(detail, ensure_ascii=False) if detail else None))
    audit.append(uow.conn, admdiv=row.admdiv, at=at, actor=f"system:{row.receiver_party}",
                 action=f"paper.{status.value}", voucher_ref=row.ref,
                 detail={"registration": record.id, "registered_by": record.registered_by,
                         **detail})


def get(conn: Connection, record_id: int) -> PaperRecord:
    return _record(conn.execute(select(paper_vouchers)
                                .where(paper_vouchers.c.id == record_id)).one())


def registrations(conn: Connection, status: PaperStatus | None = None) -> list[PaperRecord]:
    stmt = select(paper_vouchers).order_by(paper_vouchers.c.id)
    if status is not None:
        stmt = stmt.where(paper_vouchers.c.status == status.value)
    return [_record(r) for r in conn.execute(stmt)]
