"""The voucher library service: create, check, seal, send, receive, accept, return, void,
restore, revise, query, history and print — every call one transaction, audited.

The service is the only caller of the lifecycle table and of the separation-of-duties check, so
every path (CLI, web, node process, tests) obeys the same rules. A refused call raises a typed
error, changes nothing, and leaves one ``refused`` entry in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import Engine

from guoku.domain import lifecycle
from guoku.domain.accounts import AccountCheck
from guoku.domain.controls import (
    ACTION_EVENT,
    Action,
    Post,
    check_permission,
    check_separation,
)
from guoku.domain.document import VoucherDocument
from guoku.domain.errors import GuokuError, NotFound, PermissionDenied
from guoku.domain.lifecycle import Event, State
from guoku.domain.parties import PartyKind
from guoku.domain.vouchers import voucher_type
from guoku.library import messages as msg
from guoku.library import paper
from guoku.library.hooks import Hooks, NoHooks
from guoku.library.inbound import Inbound
from guoku.library.ports import Clock, Sealer, SealVerifier, iso, system_clock
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.accounts import latest_check
from guoku.store.repository import User, VoucherQuery, VoucherRow
from guoku.store.uow import UnitOfWork
from guoku.xml.codec import from_xml, stored_document, to_xml

T = TypeVar("T")

MAX_PAGE_SIZE: Final = 500
SYSTEM_ACTOR: Final = "system"


UNIT_NOTICES: Final = frozenset({"5105", "2208", "2204", "2203"})
"""Notices a bank sends to finance about a unit, which the unit reads and prints through
finance's platform (002 §6: 到账通知书, 入账通知书, 退款通知书)."""


def readable(user: User, row: VoucherRow) -> bool:
    """Its party sent or received the voucher — or it is a unit and the voucher is a notice
    its finance bureau received about it (``AgencyCode``)."""
    if user.party.code in (row.sender_party, row.receiver_party):
        return True
    return (user.party.kind is PartyKind.UNIT and row.direction == "in"
            and row.vt_code in UNIT_NOTICES
            and stored_document(row.xml).header.get("AgencyCode") == user.party.code)


VoucherKey = tuple[str, int, str, int]
"""(vt_code, st_year, voucher_no, version): a voucher's key within one tenant."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[VoucherRow]
    total: int
    page: int
    page_size: int


class VoucherLibrary:
    """One node's voucher library. ``party_codes`` are the parties this node serves."""

    def __init__(
        self,
        engine: Engine,
        node_party: str,
        sealer: Sealer,
        verifier: SealVerifier,
        clock: Clock = system_clock,
        hooks: Hooks | None = None,
        served: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.served = served or (node_party,)
        self.hooks: Hooks = hooks or NoHooks()
        self.node_party = node_party
        self.sealer = sealer
        self.verifier = verifier
        self.clock = clock
        self.inbound = Inbound(self)

    # --- plumbing ----------------------------------------------------------------------------

    def _user(self, uow: UnitOfWork, username: str) -> User:
        user = repo.get_user(uow.conn, username)
        if not user.active:
            raise PermissionDenied(f"user {username} is disabled", user=username)
        return user

    def _refused(self, username: str, action: Action, exc: GuokuError, ref: str | None) -> None:
        """Record a refusal in its own transaction: the refused work itself was rolled back."""
        with UnitOfWork(self.engine) as uow:
            try:
                admdiv = repo.get_user(uow.conn, username).admdiv.code
            except NotFound:
                admdiv = "000000"
            audit.append(
                uow.conn, admdiv=admdiv, at=iso(self.clock()), actor=username,
                action=action.value, outcome="refused", voucher_ref=ref,
                detail={"code": exc.code, "message": exc.message},
            )
            uow.commit()

    def _run(
        self, username: str, action: Action, ref: str | None, work: Callable[[UnitOfWork], T]
    ) -> T:
        try:
            with UnitOfWork(self.engine) as uow, audit.batched(uow.conn):
                result = work(uow)
                uow.commit()
                return result
        except GuokuError as exc:
            self._refused(username, action, exc, ref)
            raise

    def _transition(
        self, uow: UnitOfWork, user: User, row: VoucherRow, action: Action,
        reason: str | None = None, **values: Any,
    ) -> VoucherRow:
        """Permission, separation of duties and the lifecycle table — in this one place."""
        post = check_permission(user.username, user.grants, action, row.vt_code)
        actors = {Action.CREATE: row.entered_by, Action.CHECK: row.checked_by,
                  Action.SEAL: row.sealed_by}
        check_separation(user.username, action, actors)
        event = ACTION_EVENT[action]
        new_state = lifecycle.next_state(State(row.state), event)
        at = iso(self.clock())
        repo.update_voucher(uow.conn, row.id, row.state, state=new_state.value, updated_at=at,
                            **values)
        self.record(uow, user.username, post, row, event.value, row.state, new_state.value, at,
                    reason)
        return replace(row, state=new_state.value, updated_at=at, **values)

    def record(
        self, uow: UnitOfWork, actor: str, post: Post | None, row: VoucherRow, event: str,
        state_before: str | None, state_after: str, at: str, reason: str | None,
    ) -> None:
        """The voucher's own trail and the node's audit chain, in the caller's transaction."""
        repo.add_event(
            uow.conn, voucher_id=row.id, admdiv=row.admdiv, event=event,
            from_state=state_before, to_state=state_after, actor=actor,
            post=post.value if post else None, reason=reason, at=at,
        )
        audit.append(
            uow.conn, admdiv=row.admdiv, at=at, actor=actor,
            post=post.value if post else None, action=event, voucher_ref=row.ref,
            state_before=state_before, state_after=state_after,
            detail={"reason": reason} if reason else None,
        )
        self.hooks.on_event(uow.conn, row, event, state_after, at)

    def _load(self, uow: UnitOfWork, user: User, voucher_id: int) -> VoucherRow:
        """A user sees only vouchers of its own tenant (admdiv) that its party sent or received
        (or, for a unit, the notices about it: :func:`readable`)."""
        return self._load_many(uow, user, [voucher_id])[0]

    def _load_many(self, uow: UnitOfWork, user: User,
                   voucher_ids: Sequence[int]) -> list[VoucherRow]:
        """:meth:`_load` of each id, in one read."""
        rows = repo.get_vouchers(uow.conn, voucher_ids, [user.admdiv.code])
        for row in rows:
            if not readable(user, row):
                raise NotFound(f"no voucher {row.id}", voucher_id=row.id)
        return rows

    def _load_own(self, uow: UnitOfWork, user: User, voucher_id: int, side: str) -> VoucherRow:
        """A voucher of the user's tenant on the user's side: ``out`` = its party sent it."""
        return self._load_own_many(uow, user, [voucher_id], side)[0]

    def _load_own_many(self, uow: UnitOfWork, user: User, voucher_ids: Sequence[int],
                       side: str) -> list[VoucherRow]:
        rows = self._load_many(uow, user, voucher_ids)
        for row in rows:
            own = row.sender_party if side == "out" else row.receiver_party
            if row.direction != side or own != user.party.code:
                raise PermissionDenied(
                    f"this belongs to the {'sender' if side == 'out' else 'receiver'} of the "
                    "voucher", user=user.username, voucher_id=row.id,
                )
        return rows

    def _act(
        self, username: str, voucher_id: int, action: Action, side: str,
        reason: str | None = None, **values: Any,
    ) -> VoucherRow:
        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            row = self._load_own(uow, user, voucher_id, side)
            return self._transition(uow, user, row, action, reason, **values)

        return self._run(username, action, f"#{voucher_id}", work)

    # --- sender side ---------------------------------------------------------------------------

    def create(
        self, username: str, vt_code: str, header: Mapping[str, str],
        details: Sequence[Mapping[str, str]] = (), *, receiver: str,
    ) -> VoucherRow:
        """录入: validate, build the XML (XSD-checked) and store version 1 in draft."""

        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            vtype = voucher_type(vt_code)
            post = check_permission(username, user.grants, Action.CREATE, vtype.code)
            doc = self._new_document(user, vtype.code, header, details, version=1)
            return self._insert_draft(uow, user, post, doc, receiver, "create")

        return self._run(username, Action.CREATE, f"{vt_code}/{header.get('VoucherNo')}", work)

    def _new_document(
        self, user: User, vt_code: str, header: Mapping[str, str],
        details: Sequence[Mapping[str, str]], version: int,
    ) -> VoucherDocument:
        vtype = voucher_type(vt_code)
        if user.party.kind is not vtype.sender:
            raise PermissionDenied(
                f"a {user.party.kind.value} may not issue {vtype.name} ({vtype.code}); "
                f"its sender is {vtype.sender.value}", user=user.username, vt_code=vtype.code,
            )
        full = {**header, "VtCode": vtype.code, "AdmDivCode": header.get("AdmDivCode") or
                user.admdiv.code}
        if full["AdmDivCode"] != user.admdiv.code:
            raise PermissionDenied(
                f"user {user.username} works for admdiv {user.admdiv.code}, not "
                f"{full['AdmDivCode']}", user=user.username,
            )
        return VoucherDocument(vtype, full, tuple(dict(d) for d in details), version)

    def _insert_draft(
        self, uow: UnitOfWork, user: User, post: Post | None, doc: VoucherDocument,
        receiver: str, action: str,
    ) -> VoucherRow:
        target = repo.get_party(uow.conn, receiver)
        if target.kind not in doc.vtype.receivers:
            raise PermissionDenied(
                f"{doc.vtype.name} goes to {[k.value for k in doc.vtype.receivers]}, "
                f"not to {target.kind.value} {target.code}", receiver=receiver,
            )
        xml = to_xml(doc)
        at = iso(self.clock())
        row = repo.insert_voucher(
            uow.conn, admdiv=doc.header["AdmDivCode"], st_year=doc.year, vt_code=doc.vt_code,
            voucher_no=doc.voucher_no, version=doc.version, direction="out",
            state=lifecycle.INITIAL_CREATED.value, amount_fen=doc.amount.fen,
            vou_date=doc.header["VouDate"], sender_party=user.party.code,
            receiver_party=target.code, xml=xml, entered_by=user.username, print_count=0,
            is_current=True, created_at=at, updated_at=at,
        )
        self.record(uow, user.username, post, row, action, None, row.state, at, None)
        return row

    def check(self, username: str, voucher_id: int) -> VoucherRow:
        """审核."""
        return self._act(username, voucher_id, Action.CHECK, "out", checked_by=username)

    def uncheck(self, username: str, voucher_id: int, reason: str) -> VoucherRow:
        return self._act(username, voucher_id, Action.UNCHECK, "out", reason, checked_by=None)

    def seal(self, username: str, voucher_id: int) -> VoucherRow:
        """盖章: every seal position of the type, through the sealer (signing server, USB key)."""

        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            row = self._load_own(uow, user, voucher_id, "out")
            self._check_seal(user, row)
            sealed = self.sealer.seal(from_xml(row.xml), user, self.clock())
            return self._transition(uow, user, row, Action.SEAL, sealed_by=username,
                                    xml=to_xml(sealed))

        return self._run(username, Action.SEAL, f"#{voucher_id}", work)

    @staticmethod
    def _check_seal(user: User, row: VoucherRow) -> None:
        """Permission, separation and state — checked before any signature is made."""
        check_permission(user.username, user.grants, Action.SEAL, row.vt_code)
        check_separation(user.username, Action.SEAL, {Action.CREATE: row.entered_by,
                                                      Action.CHECK: row.checked_by})
        lifecycle.next_state(State(row.state), Event.SEAL)

    def send(self, username: str, voucher_id: int) -> VoucherRow:
        """发送: the state change and the outgoing message commit together (outbox)."""

        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            row = self._load_own(uow, user, voucher_id, "out")
            new = self._transition(uow, user, row, Action.SEND)
            self._enqueue(uow, new, new.sender_party, new.receiver_party, "voucher", new.xml)
            return new

        return self._run(username, Action.SEND, f"#{voucher_id}", work)

    def _enqueue(self, uow: UnitOfWork, row: VoucherRow, sender: str, receiver: str,
                 kind: str, payload: bytes) -> None:
        msg.enqueue(uow.conn, at=iso(self.clock()), admdiv=row.admdiv, sender=sender,
                    receiver=receiver, kind=kind, vt_code=row.vt_code, voucher_id=row.id,
                    payload=payload)

    # --- batches (批量审核、批量签章、批量发送): one transaction, all or nothing -----------------

    def create_many(
        self, username: str, vt_code: str,
        entries: Sequence[tuple[Mapping[str, str], Sequence[Mapping[str, str]]]], *,
        receiver: str,
    ) -> list[VoucherRow]:
        """录入 many vouchers of one type for one receiver."""

        def work(uow: UnitOfWork) -> list[VoucherRow]:
            user = self._user(uow, username)
            post = check_permission(username, user.grants, Action.CREATE, vt_code)
            return [
                self._insert_draft(uow, user, post, self._new_document(
                    user, vt_code, header, details, version=1), receiver, "create")
                for header, details in entries
            ]

        return self._run(username, Action.CREATE, f"{vt_code}/batch", work)

    def check_many(self, username: str, voucher_ids: Sequence[int]) -> list[VoucherRow]:
        return self._many(username, voucher_ids, Action.CHECK, checked_by=username)

    def send_many(self, username: str, voucher_ids: Sequence[int]) -> list[VoucherRow]:
        def one(uow: UnitOfWork, user: User, row: VoucherRow) -> VoucherRow:
            new = self._transition(uow, user, row, Action.SEND)
            self._enqueue(uow, new, new.sender_party, new.receiver_party, "voucher", new.xml)
            return new

        return self._batch(username, voucher_ids, Action.SEND, one)

    def seal_many(self, username: str, voucher_ids: Sequence[int]) -> list[VoucherRow]:
        """盖章 many vouchers: every check first, then the signing server in batches."""

        def work(uow: UnitOfWork) -> list[VoucherRow]:
            user = self._user(uow, username)
            rows = self._load_own_many(uow, user, voucher_ids, "out")
            for row in rows:
                self._check_seal(user, row)
            sealed = self.sealer.seal_many([from_xml(r.xml) for r in rows], user, self.clock())
            return [self._transition(uow, user, row, Action.SEAL, sealed_by=username,
                                     xml=to_xml(doc)) for row, doc in zip(rows, sealed,
                                                                          strict=True)]

        return self._run(username, Action.SEAL, "batch", work)

    def _many(self, username: str, voucher_ids: Sequence[int], action: Action,
              **values: Any) -> list[VoucherRow]:
        def one(uow: UnitOfWork, user: User, row: VoucherRow) -> VoucherRow:
            return self._transition(uow, user, row, action, None, **values)

        return self._batch(username, voucher_ids, action, one)

    def _batch(
        self, username: str, voucher_ids: Sequence[int], action: Action,
        one: Callable[[UnitOfWork, User, VoucherRow], VoucherRow],
    ) -> list[VoucherRow]:
        def work(uow: UnitOfWork) -> list[VoucherRow]:
            user = self._user(uow, username)
            return [one(uow, user, row)
                    for row in self._load_own_many(uow, user, voucher_ids, "out")]

        return self._run(username, action, "batch", work)

    def void(self, username: str, voucher_id: int, reason: str) -> VoucherRow:
        """作废."""
        return self._act(username, voucher_id, Action.VOID, "out", reason)

    def restore(self, username: str, voucher_id: int) -> VoucherRow:
        """恢复: back to draft; earlier review and seals no longer count."""

        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            row = self._load_own(uow, user, voucher_id, "out")
            if repo.was_sent(uow.conn, row.id):  # the receiver saw this version: reinstate
                return self._transition(uow, user, row, Action.REINSTATE)
            unstamped = to_xml(from_xml(row.xml).without_stamps())
            return self._transition(uow, user, row, Action.RESTORE, None, checked_by=None,
                                    sealed_by=None, xml=unstamped)

        return self._run(username, Action.RESTORE, f"#{voucher_id}", work)

    def revise(
        self, username: str, voucher_id: int, changes: Mapping[str, str],
        details: Sequence[Mapping[str, str]] | None = None,
    ) -> VoucherRow:
        """A corrected voucher: a new version of the same voucher no; the old one is superseded."""

        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            row = self._load(uow, user, voucher_id)
            old = from_xml(row.xml)
            header = {**old.header, **changes, "VoucherNo": old.voucher_no,
                      "AdmDivCode": old.header["AdmDivCode"]}
            lines = old.details if details is None else tuple(dict(d) for d in details)
            doc = self._new_document(user, row.vt_code, header, lines, row.version + 1)
            self._transition(uow, user, row, Action.REVISE, None, is_current=False)
            post = check_permission(username, user.grants, Action.REVISE, row.vt_code)
            return self._insert_draft(uow, user, post, doc, row.receiver_party, "revise")

        return self._run(username, Action.REVISE, f"#{voucher_id}", work)

    # --- receiver side -------------------------------------------------------------------------

    def receive(
        self, sender: str, receiver: str, message_id: str, kind: str, payload: bytes
    ) -> str:
        """Apply one item from a peer exactly once (see :mod:`guoku.library.inbound`)."""
        return self.inbound.receive(sender, receiver, message_id, kind, payload)

    def receive_many(self, sender: str, receiver: str,
                     items: Sequence[tuple[str, str, bytes]]) -> list[str]:
        """Apply the (message id, kind, payload) items of one envelope in one transaction."""
        return self.inbound.receive_many(sender, receiver, items)

    def sweep(self) -> int:
        """Time limits: overdue vouchers become indeterminate and are queried."""
        return self.inbound.sweep(self.clock())

    def _answer(self, username: str, voucher_id: int, action: Action,
                reason: str | None) -> VoucherRow:
        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            return self.answer_in(uow, user, self._load(uow, user, voucher_id), action, reason)

        return self._run(username, action, f"#{voucher_id}", work)

    def answer_in(self, uow: UnitOfWork, user: User, row: VoucherRow, action: Action,
                  reason: str | None) -> VoucherRow:
        """签收 or 退回 ``row`` in the caller's transaction; the receipt goes back with it."""
        if row.direction != "in" or row.receiver_party != user.party.code:
            raise PermissionDenied(f"only the receiver may {action.value} a voucher",
                                   voucher_id=row.id)
        new = self._transition(uow, user, row, action, reason, return_reason=reason)
        receipt = msg.Receipt(new.admdiv, new.st_year, new.vt_code, new.voucher_no,
                              new.version, new.state, reason, new.updated_at)
        self._enqueue(uow, new, new.receiver_party, new.sender_party, msg.RECEIPT,
                      msg.dump(receipt))
        return new

    def accept(self, username: str, voucher_id: int) -> VoucherRow:
        """签收: the receipt goes back to the sender in the same transaction."""
        return self._answer(username, voucher_id, Action.ACCEPT, None)

    def accept_many(self, username: str, voucher_ids: Sequence[int]) -> list[VoucherRow]:
        """批量签收: every voucher accepted and its receipt queued in one transaction, all or
        nothing — the same checks as :meth:`accept`, voucher by voucher."""

        def work(uow: UnitOfWork) -> list[VoucherRow]:
            user = self._user(uow, username)
            return [self.answer_in(uow, user, row, Action.ACCEPT, None)
                    for row in self._load_many(uow, user, voucher_ids)]

        return self._run(username, Action.ACCEPT, "batch", work)

    def return_(self, username: str, voucher_id: int, reason: str) -> VoucherRow:
        """退回 with a reason, which travels to the sender."""
        if not reason.strip():
            raise PermissionDenied("a return needs a reason")
        return self._answer(username, voucher_id, Action.RETURN, reason.strip())

    # --- emergency: the paper fallback (应急, decision 0021) --------------------------------

    def fallback(self, username: str, voucher_id: int, reason: str, *,
                 after: timedelta) -> VoucherRow:
        """应急: switch a voucher stuck on the wire (sent or indeterminate) to paper, once
        ``after`` (the policy of its type, ``guoku.ops.fallback``) has passed since it was
        sent. Its electronic copy stays queued; the receiver's answer settles it."""
        if not reason.strip():
            raise PermissionDenied("a switch to paper needs a reason")

        def work(uow: UnitOfWork) -> VoucherRow:
            user = self._user(uow, username)
            row = self._load_own(uow, user, voucher_id, "out")
            paper.check_due(uow.conn, row, self.clock(), after)
            return self._transition(uow, user, row, Action.FALLBACK, reason.strip())

        return self._run(username, Action.FALLBACK, f"#{voucher_id}", work)

    def register_paper(self, username: str, facts: paper.PaperFacts) -> paper.PaperRecord:
        """登记: the receiver records a paper voucher it processed (number, amount, date of the
        paper) under its receiving post; the electronic copy, when it arrives, is matched."""

        def work(uow: UnitOfWork) -> paper.PaperRecord:
            user = self._user(uow, username)
            return paper.register(uow, self, user, facts)

        return self._run(username, Action.ACCEPT, facts.ref, work)

    # --- reading ---------------------------------------------------------------------------

    def node_parties(self) -> list[str]:
        """Every party this node serves: itself and, for finance, the units it hosts."""
        return list(self.served)

    def party_kind(self) -> PartyKind:
        with UnitOfWork(self.engine) as uow:
            return repo.get_party(uow.conn, self.node_party).kind

    def find(self, username: str, vt_code: str, st_year: int, voucher_no: str, version: int,
             direction: str) -> VoucherRow:
        """A voucher by its key, within the caller's tenant and party (one indexed look-up)."""
        return self.find_many(username, [(vt_code, st_year, voucher_no, version)], direction)[0]

    def find_many(self, username: str, keys: Sequence[VoucherKey],
                  direction: str) -> list[VoucherRow]:
        """:meth:`find` for many (vt_code, st_year, voucher_no, version) keys in one read."""
        with UnitOfWork(self.engine) as uow:
            user = self._user(uow, username)
            return [self._found(user, repo.find_voucher(uow.conn, user.admdiv.code, year, vt,
                                                        no, version, direction), vt, no, version,
                                direction) for vt, year, no, version in keys]

    @staticmethod
    def _found(user: User, row: VoucherRow | None, vt_code: str, voucher_no: str, version: int,
               direction: str) -> VoucherRow:
        if row is None or user.party.code not in (row.sender_party, row.receiver_party):
            raise NotFound(f"no voucher {vt_code}/{voucher_no} v{version} ({direction})")
        return row

    def get(self, username: str, voucher_id: int) -> VoucherRow:
        with UnitOfWork(self.engine) as uow:
            return self._load(uow, self._user(uow, username), voucher_id)

    def query(
        self, username: str, q: VoucherQuery | None = None, page: int = 1, page_size: int = 50,
        all_tenants: bool = False,
    ) -> Page:
        """Vouchers of the caller's tenant; an administrator may ask for every tenant."""
        page, page_size = max(page, 1), min(max(page_size, 1), MAX_PAGE_SIZE)
        with UnitOfWork(self.engine) as uow:
            user = self._user(uow, username)
            if all_tenants and not user.holds(Post.ADMIN):
                raise PermissionDenied("only an administrator may query across tenants")
            tenants = None if all_tenants else [user.admdiv.code]
            items, total = repo.query_vouchers(uow.conn, q or VoucherQuery(), tenants, page,
                                               page_size)
            if not all_tenants:
                items = [r for r in items if readable(user, r)]
            return Page(items, total, page, page_size)

    def payee_check(self, username: str, voucher_id: int) -> AccountCheck | None:
        """The newest automatic payee-account check — what the reviewer sees before sealing."""
        with UnitOfWork(self.engine) as uow:
            row = self._load(uow, self._user(uow, username), voucher_id)
            return latest_check(uow.conn, row.id)

    def history(self, username: str, voucher_id: int) -> list[dict[str, Any]]:
        """Every event of every version of the voucher, oldest first (凭证版本 and trail)."""
        with UnitOfWork(self.engine) as uow:
            row = self._load(uow, self._user(uow, username), voucher_id)
            versions = repo.versions_of(uow.conn, row)
            by_id = {v.id: v.version for v in versions}
            events = repo.events_of(uow.conn, list(by_id))
            return [
                {"version": by_id[e.voucher_id], "event": e.event, "from": e.from_state,
                 "to": e.to_state, "actor": e.actor, "post": e.post, "reason": e.reason,
                 "at": e.at}
                for e in events
            ]

    def print_(self, username: str, voucher_id: int) -> int:
        """Controlled printing: count every print; returns this print's number (1 = original)."""

        def work(uow: UnitOfWork) -> int:
            user = self._user(uow, username)
            row = self._load(uow, user, voucher_id)
            post = check_permission(username, user.grants, Action.PRINT, row.vt_code)
            count = row.print_count + 1
            at = iso(self.clock())
            repo.update_voucher(uow.conn, row.id, row.state, print_count=count, updated_at=at)
            audit.append(uow.conn, admdiv=row.admdiv, at=at, actor=username,
                         post=post.value if post else None, action="print",
                         voucher_ref=row.ref, detail={"print_no": count})
            return count

        return self._run(username, Action.PRINT, f"#{voucher_id}", work)
