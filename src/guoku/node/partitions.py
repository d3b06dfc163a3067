"""Partitions of a node's work, and the leases that share them among its worker processes.

A scaled-out node has ``P`` partitions (the same ``P`` everywhere in a deployment). An outbox
row belongs to the partition of its division (:func:`partition_of` of its ``admdiv``); an
envelope carries rows of one partition only and goes to the receiver's queue of that partition.
Everything about one voucher carries the voucher's division, so one voucher's messages stay in
one partition, in outbox order, end to end; different partitions are worked in parallel.

A partition is worked — relayed from the outbox and consumed from its queue — by the one worker
holding its lease: a PostgreSQL session-level advisory lock ``(node key, k)`` on a connection
the worker keeps for that purpose. A worker that dies loses its connection, and with it its
leases, at once. Every worker also holds the node's *presence* lock in shared mode, so
``pg_locks`` tells how many workers are alive; each takes at most ``ceil(P / alive)``
partitions and gives back what is beyond that share when a worker joins. One more exclusive
lock, *housekeeping*, picks the single worker that sweeps time limits and drains dead letters.

The leases distribute the work; they are not what keeps order on their own. Each partition
queue is declared with a single active consumer, so the broker also never hands one partition
to two consumers at once, even in the moment between a lease lost and its consumer stopped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Final, Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from guoku.transport.ports import TransientError

log = logging.getLogger(__name__)

PRESENCE: Final = -1
HOUSEKEEPING: Final = -2
STARTUP: Final = -3


def partition_of(admdiv: str, partitions: int) -> int:
    """The partition of a division: the first 32 bits of SHA-256 of its code modulo
    ``partitions`` — stable across processes, machines and Python versions, and spread well
    even for codes that differ in one digit (CRC-32 is linear: neighbouring county codes fell
    into every other partition of four)."""
    assert partitions >= 1
    digest = hashlib.sha256(admdiv.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % partitions


def split(admdivs: Iterable[str], partitions: int) -> dict[int, set[str]]:
    """Divisions grouped by partition."""
    groups: dict[int, set[str]] = {}
    for admdiv in admdivs:
        groups.setdefault(partition_of(admdiv, partitions), set()).add(admdiv)
    return groups


def lock_key(prefix: str, node: str) -> int:
    """The advisory-lock class of a node's leases: a signed 32-bit hash of prefix and node."""
    value = zlib.crc32(f"guoku:{prefix}:{node}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value


Release = Callable[[int], None]
"""Called with a partition before its lease is given back: stop working it, then return."""


class Leases(Protocol):
    @property
    def partitions(self) -> int: ...

    def balance(self, release: Release) -> tuple[frozenset[int], bool]:
        """Take or give back leases towards this worker's share; returns (partitions held,
        whether this worker is the housekeeper). Raises TransientError when the lease store is
        unreachable — after releasing everything."""
        ...

    def live_workers(self) -> int: ...

    def close(self, release: Release) -> None: ...


class SoleLeases:
    """One worker holds everything (a single process, or a database without advisory locks)."""

    def __init__(self, partitions: int) -> None:
        self._all = frozenset(range(partitions))
        self._partitions = partitions

    @property
    def partitions(self) -> int:
        return self._partitions

    def balance(self, release: Release) -> tuple[frozenset[int], bool]:
        return self._all, True

    def live_workers(self) -> int:
        return 1

    def close(self, release: Release) -> None:
        for k in sorted(self._all):
            release(k)


class PgLeases:
    """Leases as PostgreSQL advisory locks on a connection of their own (see the module)."""

    def __init__(self, engine: Engine, key: int, partitions: int) -> None:
        assert partitions >= 1
        self._engine = engine
        self._key = key
        self._partitions = partitions
        self._conn: Connection | None = None
        self._held: set[int] = set()
        self._housekeeper = False
        self._live = 1
        self._order = list(range(partitions))
        random.shuffle(self._order)  # workers starting together reach for different ones first
        self._lock = threading.Lock()

    @property
    def partitions(self) -> int:
        return self._partitions

    def live_workers(self) -> int:
        return self._live

    def balance(self, release: Release) -> tuple[frozenset[int], bool]:
        with self._lock:
            try:
                return self._balance(release)
            except Exception as exc:
                self._lose(release)
                raise TransientError(f"partition leases unavailable: {type(exc).__name__}: "
                                     f"{exc}"[:300]) from exc

    def _balance(self, release: Release) -> tuple[frozenset[int], bool]:
        conn = self._connection()
        self._live = max(1, int(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = "
            "CAST(:key AS oid) AND objid = CAST(:k AS oid) AND objsubid = 2 AND granted"),
            {"key": self._key & 0xFFFFFFFF, "k": PRESENCE & 0xFFFFFFFF}).scalar_one()))
        share = math.ceil(self._partitions / self._live)
        for k in sorted(self._held, reverse=True)[: max(0, len(self._held) - share)]:
            log.info("giving back partition %d (share %d of %d workers)", k, share, self._live)
            release(k)
            self._unlock(conn, k)
            self._held.discard(k)
        for k in self._order:
            if len(self._held) >= share:
                break
            if k not in self._held and self._try(conn, k):
                log.info("took partition %d", k)
                self._held.add(k)
        if not self._housekeeper:
            self._housekeeper = self._try(conn, HOUSEKEEPING)
        return frozenset(self._held), self._housekeeper

    def close(self, release: Release) -> None:
        with self._lock:
            self._lose(release)

    def _connection(self) -> Connection:
        if self._conn is not None:
            self._conn.execute(text("SELECT 1"))  # a lost session has lost its locks
            return self._conn
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("SELECT pg_advisory_lock_shared(:key, :k)"),
                     {"key": self._key, "k": PRESENCE})
        self._conn = conn
        return conn

    def _try(self, conn: Connection, k: int) -> bool:
        return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key, :k)"),
                                 {"key": self._key, "k": k}).scalar_one())

    def _unlock(self, conn: Connection, k: int) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:key, :k)"), {"key": self._key, "k": k})

    def _lose(self, release: Release) -> None:
        """Stop working every partition, then drop the session (the server frees its locks)."""
        for k in sorted(self._held):
            release(k)
        self._held.clear()
        self._housekeeper = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:  # invalidate: the server session ends (never back to the pool, locks held)
                conn.invalidate()
                conn.close()
            except Exception as exc:  # the connection is what failed
                log.debug("closing the lease connection: %s", exc)


@contextmanager
def startup_lock(url: str, prefix: str, node: str) -> Iterator[None]:
    """Workers of one node starting together migrate and seed their database one at a time
    (a PostgreSQL advisory lock held while the block runs; nothing to hold elsewhere)."""
    if not url.startswith("postgresql"):
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key, :k)"),
                         {"key": lock_key(prefix, node), "k": STARTUP})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key, :k)"),
                             {"key": lock_key(prefix, node), "k": STARTUP})
    finally:
        engine.dispose()


def leases_for(engine: Engine, prefix: str, node: str, partitions: int) -> Leases:
    """Advisory-lock leases on PostgreSQL; elsewhere (SQLite) the one process holds all."""
    if engine.dialect.name == "postgresql":
        return PgLeases(engine, lock_key(prefix, node), partitions)
    return SoleLeases(partitions)


def owned(admdivs: Collection[str], held: Collection[int], partitions: int) -> dict[int, set[str]]:
    """The pending divisions of the partitions held, by partition."""
    return {k: v for k, v in split(admdivs, partitions).items() if k in held}
