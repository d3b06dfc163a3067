"""Administration: divisions, parties, users and their posts — every change audited.

Changes made through :class:`Administration` need the administrator post; ``install`` is the
one-time seeding of a fresh node (actor ``bootstrap``), audited the same way.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, select

from guoku.domain.controls import Post
from guoku.domain.errors import PermissionDenied
from guoku.domain.parties import AdmDiv
from guoku.library.ports import Clock, iso, system_clock
from guoku.province import NodeSpec, ProvinceSpec, UserSpec
from guoku.security.crypto import pbkdf2_sm3, random_bytes
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.tables import admdivs
from guoku.store.uow import UnitOfWork

PASSWORD_ITERATIONS = 50_000
BOOTSTRAP_ACTOR = "bootstrap"


def hash_password(password: str, iterations: int = PASSWORD_ITERATIONS) -> str:
    """``pbkdf2-sm3$iterations$salt$hash`` (hex)."""
    salt = random_bytes(16)
    digest = pbkdf2_sm3(password.encode(), salt, iterations, 32)
    return f"pbkdf2-sm3${iterations}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    import hmac

    if not stored or stored.count("$") != 3:
        return False
    _, iterations, salt, digest = stored.split("$")
    actual = pbkdf2_sm3(password.encode(), bytes.fromhex(salt), int(iterations), 32)
    return hmac.compare_digest(actual.hex(), digest)


def _add_user(conn: Connection, actor: str, spec: UserSpec, at: str, password: str | None) -> None:
    user_id = repo.add_user(
        conn, spec.username, spec.name, spec.party, AdmDiv(spec.admdiv), at,
        hash_password(password) if password else None,
    )
    for post in spec.posts:
        repo.grant(conn, user_id, post, spec.vt_code)
    audit.append(
        conn, admdiv=spec.admdiv, at=at, actor=actor, action="user.create",
        post=Post.ADMIN.value,
        detail={"user": spec.username, "party": spec.party,
                "posts": [p.value for p in spec.posts], "vt_code": spec.vt_code},
    )


def install(
    engine: Engine, province: ProvinceSpec, node: NodeSpec, clock: Clock = system_clock,
    default_password: str | None = None,
) -> bool:
    """Seed reference data and the node's users once; returns False when already seeded."""
    with UnitOfWork(engine) as uow:
        if uow.conn.execute(select(admdivs.c.code).limit(1)).first() is not None:
            return False
        at = iso(clock())
        for code, name in sorted(province.admdivs.items()):
            repo.add_admdiv(uow.conn, AdmDiv(code), name)
        for party in province.parties:
            repo.add_party(uow.conn, party)
        for spec in province.users_of(node):
            _add_user(uow.conn, BOOTSTRAP_ACTOR, spec, at, default_password)
        audit.append(uow.conn, admdiv="000000", at=at, actor=BOOTSTRAP_ACTOR,
                     action="node.install", detail={"node": node.name})
        uow.commit()
    return True


class Administration:
    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.clock = clock

    def _admin(self, conn: Connection, username: str) -> repo.User:
        user = repo.get_user(conn, username)
        if not user.holds(Post.ADMIN):
            raise PermissionDenied(f"user {username} is not an administrator", user=username)
        return user

    def add_user(self, admin: str, spec: UserSpec, password: str | None = None) -> None:
        with UnitOfWork(self.engine) as uow:
            self._admin(uow.conn, admin)
            _add_user(uow.conn, admin, spec, iso(self.clock()), password)
            uow.commit()

    def grant(self, admin: str, username: str, post: Post, vt_code: str = "*") -> None:
        with UnitOfWork(self.engine) as uow:
            self._admin(uow.conn, admin)
            user = repo.get_user(uow.conn, username)
            repo.grant(uow.conn, user.id, post, vt_code)
            audit.append(uow.conn, admdiv=user.admdiv.code, at=iso(self.clock()), actor=admin,
                         post=Post.ADMIN.value, action="user.grant",
                         detail={"user": username, "post": post.value, "vt_code": vt_code})
            uow.commit()
