"""The receiving side of a library: every item that arrives, applied exactly once.

One envelope, one transaction: for every item, the inbox row keyed by the item's message id,
the stored voucher or the state change it causes, the audit entry and any answer in the outbox
commit together, once for the whole envelope (the transport acks after that commit). A
redelivered item finds its inbox row and changes nothing. Each item runs in its own savepoint:
an item that is refused (bad XML, bad seal, unknown voucher) is rolled back alone, recorded in
the inbox as refused, audited, and — for vouchers and queries — answered with a signed error
receipt, so the sender's voucher fails with the reason instead of waiting forever; the other
items of the envelope still apply. A database error rolls the whole envelope back: nothing of
it is applied and the transport delivers it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import select, update

from guoku.domain import lifecycle
from guoku.domain.errors import Conflict, GuokuError, NotFound, PermissionDenied
from guoku.domain.lifecycle import Event, State
from guoku.domain.parties import Party
from guoku.library import messages as msg
from guoku.library import paper
from guoku.library.ports import iso
from guoku.reconcile.realtime import realtime_check
from guoku.security.crypto import sm3_hex
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.repository import VoucherRow
from guoku.store.tables import inbox, outbox, vouchers
from guoku.store.uow import UnitOfWork
from guoku.xml.codec import from_xml

if TYPE_CHECKING:
    from guoku.library.service import VoucherLibrary

SYSTEM: Final = "system"
DELIVERY_LIMIT: Final = timedelta(minutes=10)
"""A sent voucher with no delivery receipt after this becomes indeterminate and is queried."""
ANSWER_LIMIT: Final = timedelta(days=2)
"""A delivered voucher with no accept/return after this becomes indeterminate and is queried."""
ANSWERED_WITH_ERROR: Final = frozenset({msg.VOUCHER, msg.QUERY})

Outcome = tuple[str, dict[str, object] | None]
Arrived = tuple[str, str, bytes]
"""One item of an envelope: (message id, kind, payload)."""


@dataclass
class Arrival:
    """One envelope being applied: its transaction, its two parties, the inbox rows to write."""

    uow: UnitOfWork
    sender: str
    receiver: str
    _parties: dict[str, Party] = field(default_factory=dict)
    inbox_rows: list[dict[str, object]] = field(default_factory=list)

    def party(self, code: str) -> Party:
        """Looked up once per envelope (parties do not change under a transaction)."""
        found = self._parties.get(code)
        if found is None:
            found = self._parties[code] = repo.get_party(self.uow.conn, code)
        return found

    def flush_inbox(self) -> None:
        if self.inbox_rows:
            self.uow.conn.execute(inbox.insert(), self.inbox_rows)
            self.inbox_rows.clear()


class _Isolate(Exception):
    """An item was refused in the pass without savepoints: roll back, apply item by item."""


Handler = Callable[[Arrival, str, bytes], Outcome]
"""(arrival, message id, payload) -> (outcome, facts kept in the inbox row)."""


class Inbound:
    def __init__(self, library: VoucherLibrary) -> None:
        self.lib = library
        self._handlers: dict[str, Handler] = {
            msg.VOUCHER: self._voucher, msg.DELIVERED: self._delivered,
            msg.RECEIPT: self._receipt, msg.ERROR: self._error, msg.QUERY: self._query,
            msg.ANSWER: self._answer,
        }

    def receive(self, sender: str, receiver: str, message_id: str, kind: str,
                payload: bytes) -> str:
        """Apply one item; returns stored, applied, duplicate or refused."""
        return self.receive_many(sender, receiver, [(message_id, kind, payload)])[0]

    def receive_many(self, sender: str, receiver: str, items: Sequence[Arrived]) -> list[str]:
        """Apply the items of one envelope in one transaction; returns each item's outcome:
        stored, applied, duplicate or refused. Database errors propagate with nothing applied
        (the transport retries); every other failure of an item is recorded and answered, and
        the other items still apply.

        The first pass runs the items without savepoints (PostgreSQL keeps only 64
        subtransactions per transaction in shared memory; beyond that every other session's
        snapshots get slower). An item refused in it rolls the pass back, and a second pass
        applies the envelope again with a savepoint per item, so a refused item is rolled back
        alone."""
        try:
            return self._receive_all(sender, receiver, items, isolated=False)
        except _Isolate:
            return self._receive_all(sender, receiver, items, isolated=True)

    def _receive_all(self, sender: str, receiver: str, items: Sequence[Arrived],
                     isolated: bool) -> list[str]:
        with UnitOfWork(self.lib.engine) as uow:
            arrival = Arrival(uow, sender, receiver)
            seen = set(uow.conn.execute(select(inbox.c.message_id).where(
                inbox.c.message_id.in_({m for m, _, _ in items}))).scalars())
            outcomes: list[str] = []
            with audit.batched(uow.conn):
                for message_id, kind, payload in items:
                    if message_id in seen:
                        outcomes.append("duplicate")
                        continue
                    seen.add(message_id)
                    outcomes.append(self._apply(arrival, isolated, message_id, kind, payload))
            arrival.flush_inbox()
            uow.commit()
        return outcomes

    def _apply(self, arrival: Arrival, isolated: bool, message_id: str, kind: str,
               payload: bytes) -> str:
        """One item; in its own savepoint in the isolated pass, else a refusal gives up the
        whole pass (:class:`_Isolate`)."""
        savepoint = arrival.uow.conn.begin_nested() if isolated else None
        try:
            handler = self._handlers.get(kind)
            if handler is None:
                raise NotFound(f"unknown item kind {kind!r}")
            outcome, detail = handler(arrival, message_id, payload)
            if savepoint is not None:
                savepoint.commit()
        except GuokuError as exc:
            if savepoint is None:
                raise _Isolate from exc
            savepoint.rollback()  # the audit batch's head rolls back with it
            outcome = "refused"
            detail = {"code": exc.code, "reason": exc.message}
            self._refuse(arrival, message_id, kind, exc)
        arrival.inbox_rows.append(dict(
            message_id=message_id, sender_party=arrival.sender,
            admdiv=self._admdiv(payload, kind), kind=kind, received_at=self._now(),
            outcome=outcome, detail=json.dumps(detail, ensure_ascii=False) if detail else None,
        ))
        return outcome

    def _now(self) -> str:
        return iso(self.lib.clock())

    @staticmethod
    def _admdiv(payload: bytes, kind: str) -> str:
        if kind == msg.VOUCHER:
            start = payload.find(b"<AdmDivCode>")
            if start >= 0:
                return payload[start + 12:start + 18].decode("ascii", "replace")
        return "000000"

    def _refuse(self, arrival: Arrival, message_id: str, kind: str, exc: GuokuError) -> None:
        uow, sender, receiver = arrival.uow, arrival.sender, arrival.receiver
        audit.append(uow.conn, admdiv="000000", at=self._now(), actor=f"{SYSTEM}:{receiver}",
                     action=f"receive.{kind}", outcome="refused", voucher_ref=f"msg:{message_id}",
                     detail={"sender": sender, "code": exc.code, "message": exc.message})
        if kind in ANSWERED_WITH_ERROR and repo.party_exists(uow.conn, sender):
            item = msg.ErrorReceipt(message_id, None, exc.code, exc.message)
            msg.enqueue(uow.conn, at=self._now(), admdiv="000000", sender=receiver,
                        receiver=sender, kind=msg.ERROR, vt_code="0000", voucher_id=None,
                        payload=msg.dump(item))

    # --- the receiving party's side ------------------------------------------------------------

    def _voucher(self, arrival: Arrival, message_id: str, payload: bytes) -> Outcome:
        uow, sender, receiver = arrival.uow, arrival.sender, arrival.receiver
        doc = from_xml(payload)  # hardened parse, XSD and domain validation
        sender_party = arrival.party(sender)
        target = arrival.party(receiver)
        if sender_party.kind is not doc.vtype.sender or target.kind not in doc.vtype.receivers:
            raise PermissionDenied(f"{doc.vt_code} does not go from a {sender_party.kind.value} "
                                   f"to a {target.kind.value}", sender=sender)
        self.lib.verifier.verify(doc, sender_party, self.lib.clock())
        at = self._now()
        try:  # the voucher's key is unique: a second copy fails here (in this item's savepoint)
            row = repo.insert_voucher_row(
                uow.conn, admdiv=doc.header["AdmDivCode"], st_year=doc.year,
                vt_code=doc.vt_code, voucher_no=doc.voucher_no, version=doc.version,
                direction="in", state=lifecycle.INITIAL_RECEIVED.value,
                amount_fen=doc.amount.fen, vou_date=doc.header["VouDate"], sender_party=sender,
                receiver_party=receiver, xml=payload, print_count=0, is_current=True,
                created_at=at, updated_at=at,
            )
        except Conflict as exc:
            raise PermissionDenied(f"{doc.vt_code}/{doc.voucher_no} v{doc.version} was received "
                                   "already under another message id") from exc
        self.lib.record(uow, f"{SYSTEM}:{sender}", None, row, "receive", None, row.state, at,
                        None)
        msg.enqueue(uow.conn, at=at, admdiv=row.admdiv, sender=receiver, receiver=sender,
                    kind=msg.DELIVERED, vt_code=row.vt_code, voucher_id=row.id,
                    payload=msg.dump(msg.Delivered(message_id, sm3_hex(payload),
                                                   doc.amount.fen)))
        paper.on_arrival(uow, self.lib, row)  # processed on paper already: the same voucher
        return "stored", {"voucher_id": row.id}

    def _query(self, arrival: Arrival, message_id: str, payload: bytes) -> Outcome:
        uow, sender, receiver = arrival.uow, arrival.sender, arrival.receiver
        query: msg.StatusQuery = msg.load(msg.StatusQuery, payload)
        arrival.flush_inbox()  # a query may ask about an item of this very envelope
        seen = uow.conn.execute(select(inbox).where(inbox.c.message_id == query.ref)).first()
        answer = msg.StatusAnswer(query.ref, "unknown", None, None)
        if seen is not None and seen.outcome == "refused":
            detail = json.loads(seen.detail or "{}")
            answer = msg.StatusAnswer(query.ref, "refused", detail.get("code"),
                                      detail.get("reason"))
        elif seen is not None:
            voucher_id = json.loads(seen.detail or "{}").get("voucher_id")
            if voucher_id is None:
                raise NotFound(f"message {query.ref} stored no voucher")
            row = repo.get_voucher(uow.conn, int(voucher_id), None)
            answer = msg.StatusAnswer(query.ref, row.state, None, row.return_reason)
        msg.enqueue(uow.conn, at=self._now(), admdiv="000000", sender=receiver, receiver=sender,
                    kind=msg.ANSWER, vt_code="0000", voucher_id=None, payload=msg.dump(answer))
        return "applied", None

    # --- the sending party's side --------------------------------------------------------------

    def _sent_by_ref(self, uow: UnitOfWork, ref: str, receiver_of_ref: str) -> VoucherRow:
        found = repo.sent_as(uow.conn, ref, msg.VOUCHER, receiver_of_ref)
        if found is None:
            raise NotFound(f"no voucher was sent to {receiver_of_ref} as message {ref}")
        return found

    def _settle(self, uow: UnitOfWork, row: VoucherRow, event: Event, by: str,
                reason: str | None = None) -> None:
        """A system move on the sender's copy; a receipt for a settled voucher is a no-op."""
        if (State(row.state), event) not in lifecycle.TRANSITIONS:
            return
        new_state = lifecycle.next_state(State(row.state), event)
        at = self._now()
        values = {"return_reason": reason} if reason is not None else {}
        repo.update_voucher(uow.conn, row.id, row.state, state=new_state.value, updated_at=at,
                            **values)
        self.lib.record(uow, f"{SYSTEM}:{by}", None, row, event.value, row.state,
                        new_state.value, at, reason)

    def _delivered(self, arrival: Arrival, message_id: str, payload: bytes) -> Outcome:
        uow, sender = arrival.uow, arrival.sender
        item: msg.Delivered = msg.load(msg.Delivered, payload)
        row = self._sent_by_ref(uow, item.ref, sender)
        self._settle(uow, row, Event.DELIVER, sender)
        realtime_check(uow.conn, row, item.sm3, item.amount_fen, self._now())
        return "applied", None

    def _receipt(self, arrival: Arrival, message_id: str, payload: bytes) -> Outcome:
        uow, sender = arrival.uow, arrival.sender
        r: msg.Receipt = msg.load(msg.Receipt, payload)
        row = repo.find_voucher(uow.conn, r.admdiv, r.st_year, r.vt_code, r.voucher_no,
                                r.version, "out")
        if row is None or row.receiver_party != sender:
            raise NotFound(f"receipt for unknown voucher {r.vt_code}/{r.voucher_no}")
        event = Event.ACCEPT if r.outcome == State.ACCEPTED.value else Event.RETURN
        self._settle(uow, row, event, sender, r.reason)
        return "applied", None

    def _error(self, arrival: Arrival, message_id: str, payload: bytes) -> Outcome:
        uow, sender = arrival.uow, arrival.sender
        err: msg.ErrorReceipt = msg.load(msg.ErrorReceipt, payload)
        refs = [err.ref] if err.ref else [
            m for m in uow.conn.execute(select(outbox.c.message_id).where(
                outbox.c.envelope_id == err.envelope, outbox.c.kind == msg.VOUCHER,
                outbox.c.receiver_party == sender)).scalars()
        ]
        for ref in refs:
            self._settle(uow, self._sent_by_ref(uow, ref, sender), Event.FAIL, sender,
                         f"{err.code}: {err.reason}"[:200])
        return "applied", None

    def _answer(self, arrival: Arrival, message_id: str, payload: bytes) -> Outcome:
        uow, sender = arrival.uow, arrival.sender
        answer: msg.StatusAnswer = msg.load(msg.StatusAnswer, payload)
        row = self._sent_by_ref(uow, answer.ref, sender)
        if row.state not in (State.INDETERMINATE.value, State.PAPER.value):
            return "applied", None
        if answer.status == "unknown":
            self._settle(uow, row, Event.RESEND, sender, "resent: the receiver never got it")
            uow.conn.execute(update(outbox).where(outbox.c.message_id == answer.ref)
                             .values(published_at=None, envelope_id=None))
            return "applied", None
        settle = {"received": Event.DELIVER, "accepted": Event.ACCEPT,
                  "returned": Event.RETURN, "refused": Event.FAIL}
        event = settle.get(answer.status)
        if event is None:
            raise NotFound(f"unknown status {answer.status!r} in an answer")
        reason = f"{answer.code}: {answer.reason}" if answer.code else answer.reason
        self._settle(uow, row, event, sender, reason[:200] if reason else None)
        return "applied", None

    # --- time limits -------------------------------------------------------------------------

    def sweep(self, now: datetime, delivery_limit: timedelta = DELIVERY_LIMIT,
              answer_limit: timedelta = ANSWER_LIMIT) -> int:
        """Vouchers past their time limit become indeterminate and are queried; those already
        indeterminate are queried again. Returns the number of queries sent."""
        limits = {State.SENT: delivery_limit, State.DELIVERED: answer_limit,
                  State.INDETERMINATE: delivery_limit, State.PAPER: delivery_limit}
        waiting = (State.INDETERMINATE, State.PAPER)  # queried again, the state stays
        sent = 0
        with UnitOfWork(self.lib.engine) as uow:
            for state, limit in limits.items():
                for row in self._overdue(uow, state, iso(now - limit)):
                    ref = self._voucher_message(uow, row)
                    if ref is None:
                        continue
                    if state not in waiting:
                        self._settle(uow, row, Event.TIME_OUT, row.receiver_party,
                                     f"no receipt within {limit}")
                    else:
                        repo.update_voucher(uow.conn, row.id, row.state, updated_at=iso(now))
                    msg.enqueue(uow.conn, at=iso(now), admdiv=row.admdiv,
                                sender=row.sender_party, receiver=row.receiver_party,
                                kind=msg.QUERY, vt_code=row.vt_code, voucher_id=row.id,
                                payload=msg.dump(msg.StatusQuery(ref)))
                    sent += 1
            uow.commit()
        return sent

    @staticmethod
    def _overdue(uow: UnitOfWork, state: State, before: str) -> list[VoucherRow]:
        ids = uow.conn.execute(
            select(vouchers.c.id).where(vouchers.c.direction == "out",
                                        vouchers.c.state == state.value,
                                        vouchers.c.updated_at < before).limit(1000)
        ).scalars().all()
        return [repo.get_voucher(uow.conn, int(i), None) for i in ids]

    @staticmethod
    def _voucher_message(uow: UnitOfWork, row: VoucherRow) -> str | None:
        found = uow.conn.execute(
            select(outbox.c.message_id).where(outbox.c.voucher_id == row.id,
                                              outbox.c.kind == msg.VOUCHER)
            .order_by(outbox.c.id.desc())
        ).first()
        return None if found is None else str(found.message_id)
