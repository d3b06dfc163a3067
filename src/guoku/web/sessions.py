"""Server-side web sessions and sign-in attempts, in the signed-in user's node database.

The browser holds ``<node>.<token>``: the node names the database that holds the user (users
live in their party's node), the token is 32 random bytes of which only the SM3 hash is stored.
A session ends at whichever comes first: :data:`IDLE_S` without a request, :data:`ABSOLUTE_S`
after sign-in, or logout. Sign-in attempts are kept to refuse guessing: :data:`MAX_USER_FAILURES`
failed attempts for one user, or :data:`MAX_CLIENT_FAILURES` from one client address, within
:data:`WINDOW_S` block further attempts until the window has passed.

Sign-in challenges (:mod:`guoku.web.keylogin`) are kept here too, so that every web process of
a deployment sees the same ones: :func:`consume_challenge` marks one used with a single
``UPDATE ... WHERE used_at IS NULL``, which exactly one request can win on SQLite (writers
serialize at ``BEGIN IMMEDIATE``) and on PostgreSQL (the row lock; the loser re-reads the row and
no longer matches).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine, delete, func, insert, select, update

from guoku.library.ports import iso
from guoku.security.crypto import sm3_hex
from guoku.store import audit
from guoku.store.tables import login_attempts, login_challenges, users, web_sessions
from guoku.store.uow import UnitOfWork

IDLE_S: Final = 30 * 60
ABSOLUTE_S: Final = 10 * 60 * 60
TOUCH_EVERY_S: Final = 60
"""``last_seen_at`` is written at most this often (a page view is not worth a write each)."""
WINDOW_S: Final = 15 * 60
MAX_USER_FAILURES: Final = 5
MAX_CLIENT_FAILURES: Final = 20
TOKEN_BYTES: Final = 32
MAX_COOKIE_CHARS: Final = 128
CHALLENGE_KEEP_S: Final = WINDOW_S
"""A challenge's row is deleted this long after it expired (meanwhile a late try is told why)."""


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    node: str
    username: str
    party: str
    admdiv: str
    csrf_token: str
    last_seen_at: str


def _hash(token: str) -> str:
    return sm3_hex(token.encode())


def split_cookie(value: str | None) -> tuple[str, str] | None:
    """``(node, token)`` of a well-formed cookie value, else None."""
    if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
        return None
    node, token = value.split(".")
    return (node, token) if node and token else None


def start(engine: Engine, node: str, username: str, party: str, admdiv: str,
          now: datetime) -> tuple[str, Session]:
    """A new session after a full sign-in (password and USB key); returns the cookie value."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf = secrets.token_urlsafe(TOKEN_BYTES)
    at = iso(now)
    with UnitOfWork(engine) as uow:
        result = uow.conn.execute(insert(web_sessions).values(
            token_hash=_hash(token), username=username, party=party, admdiv=admdiv,
            csrf_token=csrf, key_verified=True, created_at=at, last_seen_at=at,
            expires_at=iso(now + timedelta(seconds=ABSOLUTE_S))))
        audit.append(uow.conn, admdiv=admdiv, at=at, actor=username, action="web.login",
                     detail={"party": party})
        uow.commit()
    key = result.inserted_primary_key
    assert key is not None
    return f"{node}.{token}", Session(int(key[0]), node, username, party, admdiv, csrf, at)


def find(engine: Engine, node: str, token: str, now: datetime) -> Session | None:
    """The live session of ``token``, touched; None when unknown, ended or expired."""
    with UnitOfWork(engine) as uow:
        row = uow.conn.execute(select(web_sessions).where(
            web_sessions.c.token_hash == _hash(token), web_sessions.c.ended_at.is_(None),
            web_sessions.c.key_verified.is_(True))).first()
        at = iso(now)
        if row is None or row.expires_at <= at or row.last_seen_at < iso(
                now - timedelta(seconds=IDLE_S)):
            return None
        if row.last_seen_at < iso(now - timedelta(seconds=TOUCH_EVERY_S)):
            uow.conn.execute(update(web_sessions).where(web_sessions.c.id == row.id)
                             .values(last_seen_at=at))
            uow.commit()
        return Session(row.id, node, row.username, row.party, row.admdiv, row.csrf_token,
                       row.last_seen_at)


def end(engine: Engine, session: Session, now: datetime) -> None:
    """Logout: the token is dead from now on, whoever holds a copy."""
    at = iso(now)
    with UnitOfWork(engine) as uow:
        uow.conn.execute(update(web_sessions).where(web_sessions.c.id == session.id)
                         .values(ended_at=at))
        audit.append(uow.conn, admdiv=session.admdiv, at=at, actor=session.username,
                     action="web.logout")
        uow.commit()


def password_hash(engine: Engine, username: str) -> str | None:
    """The stored hash of an active user (None: unknown, disabled or without a password)."""
    with engine.connect() as conn:
        row = conn.execute(select(users.c.password_hash, users.c.active)
                           .where(users.c.username == username)).first()
    return row.password_hash if row is not None and row.active else None


def record_attempt(engine: Engine, username: str, client: str, ok: bool, now: datetime,
                   admdiv: str = "000000", reason: str | None = None) -> None:
    with UnitOfWork(engine) as uow:
        uow.conn.execute(insert(login_attempts).values(
            username=username[:64], client=client[:64], at=iso(now), ok=ok))
        if not ok:
            audit.append(uow.conn, admdiv=admdiv, at=iso(now), actor=username[:64],
                         action="web.login", outcome="refused",
                         detail={"client": client[:64], "reason": reason})
        uow.commit()


def blocked(engines: Iterable[Engine], username: str, client: str, now: datetime) -> bool:
    """Too many recent failures for this user or from this client (summed over the nodes)."""
    since = iso(now - timedelta(seconds=WINDOW_S))
    by_user = by_client = 0
    for engine in engines:
        with engine.connect() as conn:
            failed = select(func.count()).select_from(login_attempts).where(
                login_attempts.c.ok.is_(False), login_attempts.c.at >= since)
            by_user += conn.execute(failed.where(
                login_attempts.c.username == username[:64])).scalar_one()
            by_client += conn.execute(failed.where(
                login_attempts.c.client == client[:64])).scalar_one()
    return by_user >= MAX_USER_FAILURES or by_client >= MAX_CLIENT_FAILURES


MAX_OPEN_CHALLENGES: Final = 10
"""Unused, unexpired challenges one user may hold: a flood of challenge requests for a known
name is refused (429) instead of filling the table. Above the failed sign-ins a window allows
(a challenge stays open when its password was wrong), so the rate limit speaks first."""


def record_challenge(engine: Engine, nonce: str, username: str, origin: str, now: datetime,
                     ttl_s: int) -> bool:
    """Keep an issued challenge until it is used or expires (and drop long-expired ones);
    False, storing nothing, when the user already holds :data:`MAX_OPEN_CHALLENGES`."""
    c = login_challenges.c
    with UnitOfWork(engine) as uow:
        uow.conn.execute(delete(login_challenges).where(
            c.expires_at < iso(now - timedelta(seconds=CHALLENGE_KEEP_S))))
        open_now = uow.conn.execute(select(func.count()).select_from(login_challenges).where(
            c.username == username, c.used_at.is_(None), c.expires_at >= iso(now))).scalar_one()
        if open_now >= MAX_OPEN_CHALLENGES:
            return False
        uow.conn.execute(insert(login_challenges).values(
            nonce=nonce, username=username, origin=origin, issued_at=iso(now),
            expires_at=iso(now + timedelta(seconds=ttl_s))))
        uow.commit()
    return True


def consume_challenge(engine: Engine, nonce: str, username: str, origin: str,
                      now: datetime) -> str | None:
    """Use the challenge up: None when this call consumed it, else why it cannot be (never
    issued here for this user and site, used already, or expired). At most one call ever gets
    None for a challenge, whichever process makes it."""
    c = login_challenges.c
    at = iso(now)
    mine = (c.nonce == nonce, c.username == username, c.origin == origin)
    with UnitOfWork(engine) as uow:
        won = uow.conn.execute(update(login_challenges).where(
            *mine, c.used_at.is_(None), c.expires_at >= at).values(used_at=at)).rowcount
        if won == 1:
            uow.commit()
            return None
        row = uow.conn.execute(select(c.used_at).where(*mine)).first()
    if row is None:
        return "the sign-in challenge was not issued here"
    if row.used_at is not None:
        return "the sign-in challenge was used already"
    return "the sign-in challenge has expired; sign in again"
