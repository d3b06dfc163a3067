"""Repositories: the only place that writes SQL for parties, users and vouchers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from guoku.domain.controls import Grant, Post
from guoku.domain.errors import Conflict, NotFound
from guoku.domain.parties import AdmDiv, Party, PartyKind
from guoku.store.tables import (
    admdivs,
    outbox,
    parties,
    user_posts,
    users,
    voucher_events,
    vouchers,
)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    name: str
    party: Party
    admdiv: AdmDiv
    grants: frozenset[Grant]
    active: bool

    def holds(self, post: Post) -> bool:
        return any(g.post is post for g in self.grants)


@dataclass(frozen=True, slots=True)
class VoucherRow:
    """One stored voucher version, as the library service hands it out."""

    id: int
    admdiv: str
    st_year: int
    vt_code: str
    voucher_no: str
    version: int
    direction: str
    state: str
    amount_fen: int
    vou_date: str
    sender_party: str
    receiver_party: str
    xml: bytes
    entered_by: str | None
    checked_by: str | None
    sealed_by: str | None
    return_reason: str | None
    print_count: int
    is_current: bool
    created_at: str
    updated_at: str

    @property
    def ref(self) -> str:
        return f"{self.vt_code}/{self.st_year}/{self.voucher_no}/v{self.version}"


# --- parties and divisions -------------------------------------------------------------------


def add_admdiv(conn: Connection, div: AdmDiv, name: str) -> None:
    parent = div.parent
    conn.execute(
        insert(admdivs).values(
            code=div.code, name=name, level=div.level.value,
            parent_code=parent.code if parent else None,
        )
    )


_known_parties: WeakKeyDictionary[Engine, dict[str, Party]] = WeakKeyDictionary()
"""Parties read from each engine's database. A party is inserted once and never updated or
deleted, so a committed read stays true; every library call looks several up (sender, receiver,
the ledger's side), which made these reads a tenth of a node's statements."""
_ADDED_PARTIES: Final = "guoku_added_parties"
"""``Connection.info`` holds the transaction that inserted a party: reads in that transaction
are not cached, since it may still roll back."""


def add_party(conn: Connection, party: Party) -> None:
    conn.info[_ADDED_PARTIES] = conn.get_transaction()
    conn.execute(
        insert(parties).values(
            code=party.code, kind=party.kind.value, name=party.name, admdiv=party.admdiv.code
        )
    )


_GET_PARTY: Final = select(parties).where(parties.c.code == bindparam("code"))


def get_party(conn: Connection, code: str) -> Party:
    adding = conn.info.get(_ADDED_PARTIES)
    known = (None if adding is not None and adding is conn.get_transaction()
             else _known_parties.setdefault(conn.engine, {}))
    if known is not None and code in known:
        return known[code]
    row = conn.execute(_GET_PARTY, {"code": code}).first()
    if row is None:
        raise NotFound(f"no party {code}", party=code)
    party = Party(row.code, PartyKind(row.kind), row.name, AdmDiv(row.admdiv))
    if known is not None:
        known[code] = party
    return party


def party_exists(conn: Connection, code: str) -> bool:
    return conn.execute(select(parties.c.code).where(parties.c.code == code)).first() is not None


def list_parties(conn: Connection) -> list[Party]:
    rows = conn.execute(select(parties).order_by(parties.c.code)).all()
    return [Party(r.code, PartyKind(r.kind), r.name, AdmDiv(r.admdiv)) for r in rows]


# --- users and posts -------------------------------------------------------------------------


def add_user(
    conn: Connection, username: str, name: str, party_code: str, admdiv: AdmDiv, at: str,
    password_hash: str | None = None,
) -> int:
    try:
        result = conn.execute(
            insert(users).values(
                username=username, name=name, party_code=party_code, admdiv=admdiv.code,
                password_hash=password_hash, active=True, created_at=at,
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"user {username} exists already or its party is unknown") from exc
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def grant(conn: Connection, user_id: int, post: Post, vt_code: str) -> None:
    conn.execute(insert(user_posts).values(user_id=user_id, post=post.value, vt_code=vt_code))


_GET_USER: Final = select(users).where(users.c.username == bindparam("username"))
_GRANTS: Final = select(user_posts.c.post, user_posts.c.vt_code).where(
    user_posts.c.user_id == bindparam("user_id"))


def get_user(conn: Connection, username: str) -> User:
    row = conn.execute(_GET_USER, {"username": username}).first()
    if row is None:
        raise NotFound(f"no user {username}", user=username)
    grants = conn.execute(_GRANTS, {"user_id": row.id}).all()
    return User(
        id=row.id, username=row.username, name=row.name,
        party=get_party(conn, row.party_code), admdiv=AdmDiv(row.admdiv),
        grants=frozenset(Grant(Post(g.post), g.vt_code) for g in grants), active=row.active,
    )


def list_users(conn: Connection, admdiv: str | None = None) -> list[User]:
    query = select(users.c.username).order_by(users.c.username)
    if admdiv is not None:
        query = query.where(users.c.admdiv == admdiv)
    return [get_user(conn, u) for u in conn.execute(query).scalars()]


# --- vouchers --------------------------------------------------------------------------------


def _exists_already(values: dict[str, Any]) -> Conflict:
    return Conflict(
        f"voucher {values['vt_code']}/{values['voucher_no']} version {values['version']} "
        "exists already",
        voucher_no=values["voucher_no"],
    )


def insert_voucher(conn: Connection, **values: Any) -> VoucherRow:
    """Insert a voucher and hand back the row as stored (built from ``values``: no read)."""
    try:
        result = conn.execute(_INSERT_VOUCHER, values)
    except IntegrityError as exc:
        raise _exists_already(values) from exc
    key = result.inserted_primary_key
    assert key is not None
    return VoucherRow(**{**dict.fromkeys(VoucherRow.__slots__), **values, "id": int(key[0])})


_INSERT_VOUCHER: Final = insert(vouchers)
"""Statements built once and executed with parameters: building ``.values(**kw)`` anew costs
SQLAlchemy more than SQLite takes to run the statement."""


def insert_voucher_row(conn: Connection, **values: Any) -> VoucherRow:
    """Insert and hand back the stored row in the same round trip (RETURNING every column but
    the XML, which is what the caller gave)."""
    try:
        row = conn.execute(_INSERT_VOUCHER_RETURNING, values).one()
    except IntegrityError as exc:
        raise _exists_already(values) from exc
    return VoucherRow(**row._asdict(), xml=values["xml"])


_INSERT_VOUCHER_RETURNING: Final = insert(vouchers).returning(
    *(vouchers.c[c] for c in VoucherRow.__slots__ if c != "xml"))


def _to_row(r: Any) -> VoucherRow:
    return VoucherRow(**{c: getattr(r, c) for c in VoucherRow.__slots__})


_GET_VOUCHER: Final = select(vouchers).where(vouchers.c.id == bindparam("voucher_id"))
_GET_TENANTS_VOUCHER: Final = _GET_VOUCHER.where(
    vouchers.c.admdiv.in_(bindparam("tenants", expanding=True)))


_GET_TENANTS_VOUCHERS: Final = select(vouchers).where(
    vouchers.c.id.in_(bindparam("voucher_ids", expanding=True)),
    vouchers.c.admdiv.in_(bindparam("tenants", expanding=True)))


def get_vouchers(conn: Connection, voucher_ids: Sequence[int],
                 tenants: Sequence[str]) -> list[VoucherRow]:
    """:func:`get_voucher` of each id (in the order given), in one read: a batch's rows."""
    found = {r.id: _to_row(r) for r in conn.execute(
        _GET_TENANTS_VOUCHERS, {"voucher_ids": list(voucher_ids), "tenants": list(tenants)})}
    missing = next((i for i in voucher_ids if i not in found), None)
    if missing is not None:
        raise NotFound(f"no voucher {missing}", voucher_id=missing)
    return [found[i] for i in voucher_ids]


def get_voucher(conn: Connection, voucher_id: int, tenants: Sequence[str] | None) -> VoucherRow:
    """Load one voucher; outside the caller's tenants it does not exist (no existence leak)."""
    if tenants is None:
        row = conn.execute(_GET_VOUCHER, {"voucher_id": voucher_id}).first()
    else:
        row = conn.execute(_GET_TENANTS_VOUCHER,
                           {"voucher_id": voucher_id, "tenants": list(tenants)}).first()
    if row is None:
        raise NotFound(f"no voucher {voucher_id}", voucher_id=voucher_id)
    return _to_row(row)


def find_voucher(
    conn: Connection, admdiv: str, st_year: int, vt_code: str, voucher_no: str,
    version: int, direction: str,
) -> VoucherRow | None:
    row = conn.execute(_FIND_VOUCHER, {
        "admdiv": admdiv, "st_year": st_year, "vt_code": vt_code, "voucher_no": voucher_no,
        "version": version, "direction": direction}).first()
    return None if row is None else _to_row(row)


_FIND_VOUCHER: Final = select(vouchers).where(*(
    vouchers.c[key] == bindparam(key)
    for key in ("admdiv", "st_year", "vt_code", "voucher_no", "version", "direction")))


def sent_as(conn: Connection, message_id: str, kind: str, receiver: str) -> VoucherRow | None:
    """The voucher the outbox sent to ``receiver`` as item ``message_id`` of ``kind``."""
    row = conn.execute(_SENT_AS, {"message_id": message_id, "kind": kind,
                                  "receiver": receiver}).first()
    return None if row is None else _to_row(row)


_SENT_AS: Final = select(vouchers).join(outbox, outbox.c.voucher_id == vouchers.c.id).where(
    outbox.c.message_id == bindparam("message_id"), outbox.c.kind == bindparam("kind"),
    outbox.c.receiver_party == bindparam("receiver"))


_UPDATE_VOUCHER: Final = update(vouchers).where(
    vouchers.c.id == bindparam("expected_id"), vouchers.c.state == bindparam("expected_state"))
"""The SET clause comes from the parameters' keys (SQLAlchemy caches one per key set)."""


def update_voucher(conn: Connection, voucher_id: int, expected_state: str, **values: Any) -> None:
    """Compare-and-set on the state: a concurrent change is a Conflict, not a lost update."""
    result = conn.execute(_UPDATE_VOUCHER,
                          {**values, "expected_id": voucher_id, "expected_state": expected_state})
    if result.rowcount != 1:
        raise Conflict(f"voucher {voucher_id} changed concurrently", voucher_id=voucher_id)


_INSERT_EVENT: Final = insert(voucher_events)


def add_event(conn: Connection, **values: Any) -> None:
    """A voucher's event, inserted at once: business hooks count them in the same transaction
    (a payment's quota hold is named after its sends)."""
    conn.execute(_INSERT_EVENT, values)


def was_sent(conn: Connection, voucher_id: int) -> bool:
    return conn.execute(select(voucher_events.c.id).where(
        voucher_events.c.voucher_id == voucher_id, voucher_events.c.event == "send")
    ).first() is not None


def events_of(conn: Connection, voucher_ids: Sequence[int]) -> list[Any]:
    return list(
        conn.execute(
            select(voucher_events)
            .where(voucher_events.c.voucher_id.in_(voucher_ids))
            .order_by(voucher_events.c.id)
        ).all()
    )


def versions_of(conn: Connection, row: VoucherRow) -> list[VoucherRow]:
    rows = conn.execute(
        select(vouchers)
        .where(
            vouchers.c.admdiv == row.admdiv, vouchers.c.st_year == row.st_year,
            vouchers.c.vt_code == row.vt_code, vouchers.c.voucher_no == row.voucher_no,
            vouchers.c.direction == row.direction,
        )
        .order_by(vouchers.c.version)
    ).all()
    return [_to_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class VoucherQuery:
    vt_code: str | None = None
    state: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    amount_min_fen: int | None = None
    amount_max_fen: int | None = None
    counterparty: str | None = None
    direction: str | None = None
    current_only: bool = True


def query_vouchers(
    conn: Connection, q: VoucherQuery, tenants: Sequence[str] | None, page: int, page_size: int
) -> tuple[list[VoucherRow], int]:
    conditions: list[ColumnElement[bool]] = []
    if tenants is not None:
        conditions.append(vouchers.c.admdiv.in_(tenants))
    if q.vt_code:
        conditions.append(vouchers.c.vt_code == q.vt_code)
    if q.state:
        conditions.append(vouchers.c.state == q.state)
    if q.date_from:
        conditions.append(vouchers.c.vou_date >= q.date_from)
    if q.date_to:
        conditions.append(vouchers.c.vou_date <= q.date_to)
    if q.amount_min_fen is not None:
        conditions.append(vouchers.c.amount_fen >= q.amount_min_fen)
    if q.amount_max_fen is not None:
        conditions.append(vouchers.c.amount_fen <= q.amount_max_fen)
    if q.counterparty:
        conditions.append(
            (vouchers.c.sender_party == q.counterparty)
            | (vouchers.c.receiver_party == q.counterparty)
        )
    if q.direction:
        conditions.append(vouchers.c.direction == q.direction)
    if q.current_only:
        conditions.append(vouchers.c.is_current.is_(True))
    total = conn.execute(select(func.count()).select_from(vouchers).where(*conditions)).scalar_one()
    rows = conn.execute(
        select(vouchers).where(*conditions).order_by(vouchers.c.id)
        .limit(page_size).offset((page - 1) * page_size)
    ).all()
    return [_to_row(r) for r in rows], int(total)
