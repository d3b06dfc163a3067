"""The account directory (账户信息库) and its maintenance workflow (账户信息维护审核).

Payee and unit accounts are maintained by the party that uses them. Every change — a new
account, a changed name or bank, a closure — is entered as a *pending* version by one user with
the entry post and takes effect only when *another* user with the review post approves it (the
seed 000: "增加账户信息维护审核流程"). Until then the previous version stays in force, and
:func:`lookup` — what the automatic payee check reads — only ever sees *active* versions.

Every entry, approval, rejection and refusal is audited in the same transaction as the change.
The database backs the rules up: at most one pending and one active version per account (a
partial unique index), and a reviewer never equal to the one who entered (a check constraint).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from guoku.domain.accounts import (
    MAX_NAME_CHARS,
    AccountCheck,
    AccountLookup,
    KnownAccount,
    validate_account_no,
)
from guoku.domain.controls import Post
from guoku.domain.errors import (
    Conflict,
    GuokuError,
    NotFound,
    PermissionDenied,
    SeparationOfDuties,
    ValidationError,
)
from guoku.domain.parties import AdmDiv
from guoku.library.ports import Clock, iso, system_clock
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.repository import User
from guoku.store.tables import account_checks, accounts
from guoku.store.uow import UnitOfWork

T = TypeVar("T")

MAX_NOTE: Final = 200
MAX_PENDING_LIST: Final = 500


class AccountKind(enum.StrEnum):
    PAYEE = "payee"
    """收款人账户 — suppliers, individuals: whom vouchers pay."""
    UNIT = "unit"
    """单位账户 — a budget unit's own (zero-balance) account."""


class EntryStatus(enum.StrEnum):
    PENDING = "pending"
    """待审核 — entered, not yet in force."""
    ACTIVE = "active"
    """有效 — the version lookups see."""
    REJECTED = "rejected"
    """审核未通过."""
    CLOSED = "closed"
    """销户 — an approved closure; the account is no longer found."""
    SUPERSEDED = "superseded"
    """An earlier active version replaced by an approved change."""


class Change(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One version of one account (satisfies ``domain.accounts.KnownAccount``)."""

    id: int
    admdiv: str
    account_no: str
    version: int
    kind: AccountKind
    change: Change
    name: str
    bank_name: str
    bank_no: str | None
    status: EntryStatus
    entered_by: str
    entered_at: str
    reviewed_by: str | None
    reviewed_at: str | None
    review_note: str | None
    updated_at: str

    @property
    def closed(self) -> bool:
        return self.status is EntryStatus.CLOSED

    @property
    def ref(self) -> str:
        return f"account/{self.admdiv}/{self.account_no}/v{self.version}"


def _entry(r: Any) -> DirectoryEntry:
    return DirectoryEntry(
        id=r.id, admdiv=r.admdiv, account_no=r.account_no, version=r.version,
        kind=AccountKind(r.kind), change=Change(r.change), name=r.name, bank_name=r.bank_name,
        bank_no=r.bank_no, status=EntryStatus(r.status), entered_by=r.entered_by,
        entered_at=r.entered_at, reviewed_by=r.reviewed_by, reviewed_at=r.reviewed_at,
        review_note=r.review_note, updated_at=r.updated_at,
    )


# --- reads (usable inside any unit of work) --------------------------------------------------


def lookup(conn: Connection, admdiv: str, account_no: str) -> DirectoryEntry | None:
    """The account's active version, or None: pending, rejected and closed ones never show."""
    row = conn.execute(
        select(accounts).where(
            accounts.c.admdiv == admdiv, accounts.c.account_no == account_no,
            accounts.c.status == EntryStatus.ACTIVE.value,
        )
    ).first()
    return None if row is None else _entry(row)


def directory_lookup(conn: Connection, admdiv: str) -> AccountLookup:
    """The ``lookup`` argument of :func:`guoku.domain.accounts.check_payee` for one division."""

    def find(account_no: str) -> KnownAccount | None:
        return lookup(conn, admdiv, account_no)

    return find


def get_entry(conn: Connection, entry_id: int) -> DirectoryEntry:
    row = conn.execute(select(accounts).where(accounts.c.id == entry_id)).first()
    if row is None:
        raise NotFound(f"no account entry {entry_id}", entry_id=entry_id)
    return _entry(row)


def history(conn: Connection, admdiv: str, account_no: str) -> list[DirectoryEntry]:
    rows = conn.execute(
        select(accounts)
        .where(accounts.c.admdiv == admdiv, accounts.c.account_no == account_no)
        .order_by(accounts.c.version)
    ).all()
    return [_entry(r) for r in rows]


def pending(conn: Connection, admdivs: Sequence[str] | None = None) -> list[DirectoryEntry]:
    """Changes waiting for review, oldest first (at most ``MAX_PENDING_LIST``)."""
    query = select(accounts).where(accounts.c.status == EntryStatus.PENDING.value)
    if admdivs is not None:
        query = query.where(accounts.c.admdiv.in_(list(admdivs)))
    rows = conn.execute(query.order_by(accounts.c.id).limit(MAX_PENDING_LIST)).all()
    return [_entry(r) for r in rows]


# --- the checks kept with vouchers -----------------------------------------------------------


def record_check(
    conn: Connection, voucher_id: int, admdiv: str, check: AccountCheck, at: str
) -> int:
    """Keep ``check`` with voucher ``voucher_id`` (in the caller's transaction)."""
    data = check.to_dict()
    result = conn.execute(
        insert(account_checks).values(
            voucher_id=voucher_id, admdiv=admdiv, account_no=check.account_no[:42],
            account_found=check.account_found, name_match=check.name_match.value,
            bank_match=check.bank_match.value, passed=check.passed,
            problems=json.dumps(data["problems"], ensure_ascii=False), checked_at=at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def latest_check(conn: Connection, voucher_id: int) -> AccountCheck | None:
    """The newest check of a voucher — what the reviewer is shown before sealing."""
    row = conn.execute(
        select(account_checks).where(account_checks.c.voucher_id == voucher_id)
        .order_by(account_checks.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return AccountCheck.from_dict({
        "account_no": row.account_no, "account_found": row.account_found,
        "name_match": row.name_match, "bank_match": row.bank_match,
        "problems": json.loads(row.problems),
    })


# --- the maintenance workflow ----------------------------------------------------------------


def _text(value: str | None, what: str, limit: int, required: bool = True) -> str | None:
    if value is None or not value.strip():
        if required:
            raise ValidationError(f"{what} is required")
        return None
    if len(value) > limit:
        raise ValidationError(f"{what} is longer than {limit} characters")
    return value.strip()


class AccountDirectory:
    """Entry, review and lookup of the account directory of one node; every call audited."""

    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.clock = clock

    # entry ---------------------------------------------------------------------------------

    def enter_new(
        self, username: str, admdiv: str, account_no: str, name: str, bank_name: str,
        bank_no: str | None = None, kind: AccountKind = AccountKind.PAYEE,
    ) -> DirectoryEntry:
        """Enter an account the directory does not have in force (a new or a reopened one)."""

        def work(conn: Connection, user: User) -> DirectoryEntry:
            if lookup(conn, admdiv, account_no) is not None:
                raise Conflict(f"account {account_no} is in the directory already: enter a "
                               "change instead", account_no=account_no)
            return self._insert(conn, user, admdiv, account_no, Change.CREATE, AccountKind(kind),
                                name, bank_name, bank_no)

        return self._run(username, Post.ENTRY, "account.enter", admdiv, work)

    def enter_change(
        self, username: str, admdiv: str, account_no: str, *, name: str | None = None,
        bank_name: str | None = None, bank_no: str | None = None,
    ) -> DirectoryEntry:
        """Enter a change of name or bank of an account in force; unchanged fields are kept."""

        def work(conn: Connection, user: User) -> DirectoryEntry:
            current = self._active(conn, admdiv, account_no)
            return self._insert(
                conn, user, admdiv, account_no, Change.UPDATE, current.kind,
                name if name is not None else current.name,
                bank_name if bank_name is not None else current.bank_name,
                bank_no if bank_no is not None else current.bank_no,
            )

        return self._run(username, Post.ENTRY, "account.enter", admdiv, work)

    def enter_close(self, username: str, admdiv: str, account_no: str,
                    note: str | None = None) -> DirectoryEntry:
        """Enter the closure (销户) of an account in force."""

        def work(conn: Connection, user: User) -> DirectoryEntry:
            current = self._active(conn, admdiv, account_no)
            return self._insert(conn, user, admdiv, account_no, Change.CLOSE, current.kind,
                                current.name, current.bank_name, current.bank_no,
                                _text(note, "note", MAX_NOTE, required=False))

        return self._run(username, Post.ENTRY, "account.enter", admdiv, work)

    # review --------------------------------------------------------------------------------

    def approve(self, username: str, entry_id: int, note: str | None = None) -> DirectoryEntry:
        """Put a pending change in force; refused to the user who entered it."""
        return self._review(username, entry_id, approve=True, note=note)

    def reject(self, username: str, entry_id: int, reason: str) -> DirectoryEntry:
        """Refuse a pending change; the version in force (if any) stays as it is."""
        reason_text = _text(reason, "reason", MAX_NOTE)
        return self._review(username, entry_id, approve=False, note=reason_text)

    # reads ---------------------------------------------------------------------------------

    def lookup(self, admdiv: str, account_no: str) -> DirectoryEntry | None:
        with self.engine.connect() as conn:
            return lookup(conn, admdiv, account_no)

    def pending(self, username: str) -> list[DirectoryEntry]:
        """What ``username`` may review: pending changes in divisions the user covers."""
        with self.engine.connect() as conn:
            user = self._user(conn, username, Post.REVIEW)
            return [e for e in pending(conn) if user.admdiv.contains(AdmDiv(e.admdiv))]

    def history(self, admdiv: str, account_no: str) -> list[DirectoryEntry]:
        with self.engine.connect() as conn:
            return history(conn, admdiv, account_no)

    # internals -----------------------------------------------------------------------------

    def _user(self, conn: Connection, username: str, post: Post,
              admdiv: str | None = None) -> User:
        user = repo.get_user(conn, username)
        if not user.active:
            raise PermissionDenied(f"user {username} is disabled", user=username)
        if not user.holds(post):
            raise PermissionDenied(f"user {username} does not hold the {post.value} post",
                                   user=username, post=post.value)
        if admdiv is not None and not user.admdiv.contains(AdmDiv(admdiv)):
            raise PermissionDenied(f"user {username} does not serve division {admdiv}",
                                   user=username, admdiv=admdiv)
        return user

    @staticmethod
    def _active(conn: Connection, admdiv: str, account_no: str) -> DirectoryEntry:
        current = lookup(conn, admdiv, account_no)
        if current is None:
            raise NotFound(f"account {account_no} is not in force in {admdiv}",
                           account_no=account_no)
        return current

    def _insert(
        self, conn: Connection, user: User, admdiv: str, account_no: str, change: Change,
        kind: AccountKind, name: str, bank_name: str, bank_no: str | None,
        note: str | None = None,
    ) -> DirectoryEntry:
        clean_name = _text(name, "account name", MAX_NAME_CHARS)
        clean_bank = _text(bank_name, "bank name", MAX_NAME_CHARS)
        clean_no = _text(bank_no, "bank number", 12, required=False)
        assert clean_name is not None and clean_bank is not None
        validate_account_no(account_no, clean_no, clean_bank)
        version = int(conn.execute(
            select(func.coalesce(func.max(accounts.c.version), 0)).where(
                accounts.c.admdiv == admdiv, accounts.c.account_no == account_no)
        ).scalar_one()) + 1
        at = iso(self.clock())
        try:
            result = conn.execute(insert(accounts).values(
                admdiv=admdiv, account_no=account_no, version=version, kind=kind.value,
                change=change.value, name=clean_name, bank_name=clean_bank, bank_no=clean_no,
                status=EntryStatus.PENDING.value, entered_by=user.username, entered_at=at,
                review_note=note, updated_at=at,
            ))
        except IntegrityError as exc:
            raise Conflict(f"account {account_no} has a change waiting for review already",
                           account_no=account_no) from exc
        key = result.inserted_primary_key
        assert key is not None
        entry = get_entry(conn, int(key[0]))
        audit.append(conn, admdiv=admdiv, at=at, actor=user.username, post=Post.ENTRY.value,
                     action="account.enter", voucher_ref=entry.ref, state_after=entry.status.value,
                     detail=_detail(entry))
        return entry

    def _review(self, username: str, entry_id: int, *, approve: bool,
                note: str | None) -> DirectoryEntry:
        action = "account.approve" if approve else "account.reject"
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts.c.admdiv).where(accounts.c.id == entry_id)).first()
        if row is None:
            raise NotFound(f"no account entry {entry_id}", entry_id=entry_id)

        def work(conn: Connection, user: User) -> DirectoryEntry:
            entry = get_entry(conn, entry_id)
            if entry.status is not EntryStatus.PENDING:
                raise Conflict(f"{entry.ref} is {entry.status}, not pending",
                               entry_id=entry_id, status=entry.status.value)
            if entry.entered_by == user.username:
                raise SeparationOfDuties(
                    f"user {user.username} entered {entry.ref} and may not also review it",
                    user=user.username, action=action, earlier_step="account.enter")
            at = iso(self.clock())
            target = EntryStatus.REJECTED
            if approve:
                target = EntryStatus.CLOSED if entry.change is Change.CLOSE else EntryStatus.ACTIVE
                current = lookup(conn, entry.admdiv, entry.account_no)
                if current is not None:
                    self._set_status(conn, current, EntryStatus.SUPERSEDED, at)
            self._set_status(conn, entry, target, at, reviewed_by=user.username,
                             reviewed_at=at, review_note=note)
            done = get_entry(conn, entry_id)
            audit.append(conn, admdiv=done.admdiv, at=at, actor=user.username,
                         post=Post.REVIEW.value, action=action, voucher_ref=done.ref,
                         state_before=entry.status.value, state_after=done.status.value,
                         detail={**_detail(done), "note": note})
            return done

        return self._run(username, Post.REVIEW, action, row.admdiv, work)

    @staticmethod
    def _set_status(conn: Connection, entry: DirectoryEntry, status: EntryStatus, at: str,
                    **values: Any) -> None:
        """Compare-and-set: a concurrent review of the same entry is a Conflict, not a lost
        update."""
        result = conn.execute(
            update(accounts)
            .where(accounts.c.id == entry.id, accounts.c.status == entry.status.value)
            .values(status=status.value, updated_at=at, **values)
        )
        if result.rowcount != 1:
            raise Conflict(f"{entry.ref} changed concurrently", entry_id=entry.id)

    def _run(self, username: str, post: Post, action: str, admdiv: str,
             work: Callable[[Connection, User], T]) -> T:
        """One transaction; a refusal changes nothing and leaves one ``refused`` audit entry."""
        try:
            with UnitOfWork(self.engine) as uow:
                user = self._user(uow.conn, username, post, admdiv)
                result = work(uow.conn, user)
                uow.commit()
                return result
        except IntegrityError as exc:
            refusal = Conflict("the account directory changed concurrently: try again")
            self._refused(username, action, admdiv, refusal)
            raise refusal from exc
        except GuokuError as exc:
            self._refused(username, action, admdiv, exc)
            raise

    def _refused(self, username: str, action: str, admdiv: str, exc: GuokuError) -> None:
        with UnitOfWork(self.engine) as uow:
            audit.append(uow.conn, admdiv=admdiv, at=iso(self.clock()), actor=username,
                         action=action, outcome="refused",
                         detail={"code": exc.code, "message": exc.message})
            uow.commit()


def _detail(entry: DirectoryEntry) -> dict[str, Any]:
    return {"account_no": entry.account_no, "version": entry.version, "kind": entry.kind.value,
            "change": entry.change.value, "name": entry.name, "bank_name": entry.bank_name,
            "bank_no": entry.bank_no, "entered_by": entry.entered_by}
