"""Service-API tokens (接口令牌): one bearer token per business system and service user.

A business system calls the voucher library service over HTTP as a *service user* of one node:
a user like any clerk, whose posts an administrator granted, so the library's post and
separation-of-duties checks apply to it unchanged. Since no one user may enter, review and seal
the same voucher, a system that does all three holds one token per desk.

The token is shown once, when issued; the database keeps only its SM3 hash (a copy of the
database cannot be replayed as a token). A token is scoped to its user's party and division,
checked again on every call (a user moved to another division loses the token's use). Issuing
and revoking need the administrator post and are audited in the same transaction.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine, insert, select, update

from guoku.domain.controls import Post
from guoku.domain.errors import Conflict, NotFound, PermissionDenied, ValidationError
from guoku.library.ports import Clock, iso, system_clock
from guoku.security.crypto import sm3_hex
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.tables import api_tokens
from guoku.store.uow import UnitOfWork

TOKEN_PREFIX: Final = "gkt_"
TOKEN_BYTES: Final = 32
MAX_TOKEN_CHARS: Final = 128
"""Longer bearer values are refused before they are hashed."""
_SYSTEM = re.compile(r"[0-9A-Za-z][0-9A-Za-z._\-]{0,63}")


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's record (never the token itself)."""

    id: int
    system: str
    username: str
    party: str
    admdiv: str
    created_at: str
    created_by: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "system": self.system, "username": self.username,
                "party": self.party, "admdiv": self.admdiv, "created_at": self.created_at,
                "created_by": self.created_by, "revoked_at": self.revoked_at}


def token_hash(token: str) -> str:
    return sm3_hex(token.encode())


def _record(row: Any) -> ApiToken:
    return ApiToken(row.id, row.system, row.username, row.party, row.admdiv, row.created_at,
                    row.created_by, row.revoked_at)


def _admin(conn: Connection, username: str) -> repo.User:
    user = repo.get_user(conn, username)
    if not (user.active and user.holds(Post.ADMIN)):
        raise PermissionDenied(f"user {username} is not an administrator", user=username)
    return user


def issue(engine: Engine, admin: str, system: str, username: str,
          clock: Clock = system_clock) -> tuple[str, ApiToken]:
    """A new token for ``system`` acting as ``username``; returns (the token, its record)."""
    if not _SYSTEM.fullmatch(system):
        raise ValidationError(f"system name {system!r} must be 1-64 letters, digits, . _ -")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    at = iso(clock())
    with UnitOfWork(engine) as uow:
        _admin(uow.conn, admin)
        user = repo.get_user(uow.conn, username)
        if not user.active:
            raise PermissionDenied(f"user {username} is disabled", user=username)
        token_id = uow.conn.execute(insert(api_tokens).values(
            token_hash=token_hash(token), system=system, username=username,
            party=user.party.code, admdiv=user.admdiv.code, created_at=at, created_by=admin,
        )).inserted_primary_key
        assert token_id is not None
        audit.append(uow.conn, admdiv=user.admdiv.code, at=at, actor=admin,
                     post=Post.ADMIN.value, action="api_token.issue",
                     detail={"token": int(token_id[0]), "system": system, "user": username})
        row = uow.conn.execute(select(api_tokens).where(api_tokens.c.id == token_id[0])).one()
        uow.commit()
    return token, _record(row)


def revoke(engine: Engine, admin: str, token_id: int, clock: Clock = system_clock) -> ApiToken:
    at = iso(clock())
    with UnitOfWork(engine) as uow:
        _admin(uow.conn, admin)
        row = uow.conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no API token {token_id}")
        if row.revoked_at is not None:
            raise Conflict(f"API token {token_id} was revoked at {row.revoked_at}")
        uow.conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                         .values(revoked_at=at))
        audit.append(uow.conn, admdiv=row.admdiv, at=at, actor=admin, post=Post.ADMIN.value,
                     action="api_token.revoke",
                     detail={"token": token_id, "system": row.system, "user": row.username})
        row = uow.conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).one()
        uow.commit()
    return _record(row)


def list_tokens(engine: Engine) -> list[ApiToken]:
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(select(api_tokens).order_by(api_tokens.c.id))]


def resolve(conn: Connection, token: str) -> ApiToken | None:
    """The active token record of a presented bearer value, or None (unknown or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    row = conn.execute(select(api_tokens).where(
        api_tokens.c.token_hash == token_hash(token), api_tokens.c.revoked_at.is_(None))).first()
    return None if row is None else _record(row)
