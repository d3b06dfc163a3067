"""Reading the sides of a reconciliation: streaming sorted merges, and joins in SQL.

Two nodes keep two databases. The portable way to compare them is a *streaming sorted merge*:
each side runs one query ordered by the comparison key, rows arrive in chunks through a
server-side cursor (``stream_results`` / ``yield_per``), and the merge walks both streams once,
holding one chunk per side — flat memory for any number of rows, on SQLite and PostgreSQL.

The merge compares keys in Python, so both databases must sort exactly as Python does (by code
point). PostgreSQL sorts text by the column's collation: :func:`ordered` adds ``COLLATE "C"``
unless the database's collation already sorts by code point, and every stream checks that its
keys strictly ascend — a collation that disagrees fails loudly (:class:`StreamOutOfOrder`),
never as a wrong reconciliation.

When all sides are schemas of one PostgreSQL database (:func:`colocated_schemas`), the layers
join them in SQL instead and read back only the candidate breaks.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from operator import itemgetter
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    create_engine,
    text,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Select

from guoku.domain.errors import GuokuError, ValidationError

CHUNK: Final = 10_000
"""Rows fetched per round trip of a server-side cursor: one chunk per side is all the merge
holds in memory."""

PG_SESSION: Final = (
    "SET LOCAL jit = off",
    "SET LOCAL cursor_tuple_fraction = 1.0",
    "SET LOCAL random_page_cost = 1.1",
)
"""Settings of a reconciliation's PostgreSQL transaction (docs/decisions/0015):

* JIT compilation pays off for long analytic queries with accurate estimates; the joins here
  are estimated badly (expressions on both sides) and JIT spent seconds compiling what then
  ran in one or two;
* rows come through a server-side cursor, which the planner otherwise plans for its first
  10% of rows; a reconciliation reads them all;
* random reads cost what they cost on SSD or in memory (1.1, the usual SSD setting, not the
  spinning-disk default 4): the planner then merges two key indexes where the data follows
  them, instead of hashing a million rows — and still hashes where it does not."""

CODEPOINT_COLLATIONS: Final = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"})
"""Database collations whose text order is code point order, i.e. Python's."""

Method = Literal["auto", "sql", "merge"]
"""How a layer reads its sides: ``sql`` joins schemas of one PostgreSQL database, ``merge``
streams each side and merges in Python, ``auto`` takes ``sql`` when it can."""

K = TypeVar("K")
R = TypeVar("R")


class StreamOutOfOrder(GuokuError):
    """A side's rows did not arrive in strictly ascending key order (a collation mismatch)."""

    code = "RECONCILE_STREAM_OUT_OF_ORDER"


class NotColocated(ValidationError):
    """``method="sql"`` was asked for, but the sides are not schemas of one database."""

    code = "RECONCILE_NOT_COLOCATED"


# --- ordering --------------------------------------------------------------------------------


def codepoint_order(conn: Connection) -> bool:
    """True when the database sorts text by code point without being told (SQLite always)."""
    if conn.dialect.name != "postgresql":
        return True
    collation = conn.execute(text(
        "SELECT datcollate FROM pg_database WHERE datname = current_database()")).scalar_one()
    return str(collation) in CODEPOINT_COLLATIONS


def ordered(conn: Connection, *columns: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    """``ORDER BY`` terms that sort text columns by code point on this database."""
    if codepoint_order(conn):
        return list(columns)
    return [c.collate("C") if _is_text(c) else c for c in columns]


def _is_text(column: ColumnElement[Any]) -> bool:
    return column.type.python_type is str if _has_python_type(column) else False


def _has_python_type(column: ColumnElement[Any]) -> bool:
    try:
        column.type.python_type  # noqa: B018 - probing NotImplementedError
    except NotImplementedError:
        return False
    return True


# --- streams ---------------------------------------------------------------------------------


def stream(conn: Connection, stmt: Select[Any], chunk: int = CHUNK) -> Iterator[Any]:
    """The rows of ``stmt`` through a server-side cursor, ``chunk`` rows per round trip."""
    result = conn.execute(stmt.execution_options(stream_results=True, yield_per=chunk))
    try:
        for part in result.partitions():
            yield from part
    finally:
        result.close()


def ascending(rows: Iterable[R], key: Callable[[R], Any], side: str) -> Iterator[R]:
    """``rows`` unchanged, checking that their keys strictly ascend."""
    previous: Any = None
    for row in rows:
        current = key(row)
        if previous is not None and not previous < current:
            raise StreamOutOfOrder(
                f"{side}: key {current!r} arrived after {previous!r}; the database does not "
                "sort as the merge compares (collation?) or a key repeats", side=side)
        previous = current
        yield row


def merge_join(
    left: Iterable[R], right: Iterable[R], key: Callable[[R], Any],
    agree: Callable[[R, R], bool],
) -> Iterator[tuple[R | None, R | None]]:
    """Walk two streams sorted by a unique ``key``; yield the pairs that do not ``agree``.

    A key on one side only comes out as ``(row, None)`` or ``(None, row)``. The pairs that
    agree — nearly all of them — are dropped here, in the loop, at the cost of one call.
    """
    lefts, rights = iter(left), iter(right)
    lrow, rrow = next(lefts, None), next(rights, None)
    while lrow is not None and rrow is not None:
        lkey, rkey = key(lrow), key(rrow)
        if lkey == rkey:
            if not agree(lrow, rrow):
                yield lrow, rrow
            lrow, rrow = next(lefts, None), next(rights, None)
        elif lkey < rkey:
            yield lrow, None
            lrow = next(lefts, None)
        else:
            yield None, rrow
            rrow = next(rights, None)
    while lrow is not None:
        yield lrow, None
        lrow = next(lefts, None)
    while rrow is not None:
        yield None, rrow
        rrow = next(rights, None)


def merge_runs(
    left: Iterable[R], right: Iterable[R], key: Callable[[R], Any],
) -> Iterator[tuple[list[R], list[R]]]:
    """Walk two streams sorted by ``key`` (keys may repeat); yield, per key, the run of rows
    each side has for it (one of the two lists may be empty)."""
    lefts, rights = iter(left), iter(right)
    lrow, rrow = next(lefts, None), next(rights, None)
    while lrow is not None or rrow is not None:
        if lrow is None:
            current = key(rrow)  # type: ignore[arg-type]  # one of the two is a row
        elif rrow is None:
            current = key(lrow)
        else:
            current = min(key(lrow), key(rrow))
        xs: list[R] = []
        while lrow is not None and key(lrow) == current:
            xs.append(lrow)
            lrow = next(lefts, None)
        ys: list[R] = []
        while rrow is not None and key(rrow) == current:
            ys.append(rrow)
            rrow = next(rights, None)
        yield xs, ys


def merge_groups(
    streams: Sequence[Iterable[R]], key: Callable[[R], K],
) -> Iterator[tuple[K, list[list[R]]]]:
    """Merge ``streams`` sorted by ``key`` (keys may repeat within a stream); yield each key
    with the rows every stream has for it, one list per stream."""
    def tag(side: int, rows: Iterable[R]) -> Iterator[tuple[K, int, R]]:
        for row in rows:
            yield key(row), side, row

    tagged = [tag(side, rows) for side, rows in enumerate(streams)]
    merged = heapq.merge(*tagged, key=itemgetter(0, 1))
    for group_key, items in itertools.groupby(merged, key=itemgetter(0)):
        sides: list[list[R]] = [[] for _ in streams]
        for _, side, row in items:
            sides[side].append(row)
        yield group_key, sides


# --- connections and schemas -----------------------------------------------------------------


def connect_all(stack: ExitStack, engines: Sequence[Engine],
                snapshot: str | None = None) -> list[Connection]:
    """One connection per distinct database: two sides in one SQLite file share a connection
    (a second would wait on the first's lock), the same for two engines of one URL.
    ``snapshot`` (PostgreSQL, from :func:`export_snapshot`): every connection reads it."""
    opened: dict[str, Connection] = {}
    conns = []
    for engine in engines:
        url = engine.url.render_as_string(hide_password=False)
        if url not in opened:
            opened[url] = _reading(stack, engine, snapshot)
        conns.append(opened[url])
    return conns


_SNAPSHOT_ID: Final = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


def export_snapshot(stack: ExitStack, engine: Engine) -> str:
    """A PostgreSQL snapshot that other transactions of the same database can read
    (``pg_export_snapshot``): joins run side by side on their own connections still see one
    moment of the books. It stays importable while ``stack`` is open."""
    conn = _reading(stack, engine)
    snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise GuokuError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def _reading(stack: ExitStack, engine: Engine, snapshot: str | None = None) -> Connection:
    """A connection that reads one consistent snapshot and locks no writer out.

    PostgreSQL: a REPEATABLE READ transaction with :data:`PG_SESSION`. A SQLite file: the
    node's engine begins every transaction IMMEDIATE (it serializes writers), which would hold
    the write lock for the whole run; a private engine begins a deferred transaction instead —
    in WAL mode, a read snapshot that writers go past.
    """
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        reader = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        stack.callback(reader.dispose)
        conn = stack.enter_context(reader.connect())
        conn.exec_driver_sql("BEGIN")
        stack.callback(conn.exec_driver_sql, "ROLLBACK")
        return conn
    conn = stack.enter_context(engine.connect())
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        if snapshot is not None:  # first in the transaction; the id was checked on export
            conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        for setting in PG_SESSION:
            conn.execute(text(setting))
    return conn


def colocated_schemas(engines: Sequence[Engine]) -> list[str] | None:
    """The schema each engine works in, when all are sessions of one PostgreSQL database and
    the first engine's role may read the others' tables; otherwise ``None``.

    Sameness is proved, not guessed from URLs: while each other engine holds a connection, the
    first engine's session must see that backend (its pid and start time) in
    ``pg_stat_activity`` of the same database.
    """
    if any(e.dialect.name != "postgresql" for e in engines):
        return None
    with ExitStack() as stack:
        first = stack.enter_context(engines[0].connect())
        schemas = [str(first.execute(text("SELECT current_schema()")).scalar_one())]
        for other in engines[1:]:
            conn = stack.enter_context(other.connect())
            me = conn.execute(text(
                "SELECT current_database() AS db, current_schema() AS schema, pid, "
                "backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")).one()
            first.execute(text("SELECT pg_stat_clear_snapshot()"))  # see backends opened since
            seen = first.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND "
                "backend_start = :start AND datname = current_database() AND "
                "datname = :db"), {"pid": me.pid, "start": me.backend_start, "db": me.db}
            ).scalar_one()
            if seen != 1 or me.schema is None:
                return None
            schemas.append(str(me.schema))
        for schema in set(schemas[1:]):
            readable = first.execute(text(
                "SELECT has_schema_privilege(:s, 'USAGE')"), {"s": schema}).scalar_one()
            if not readable:
                return None
        return schemas


def resolve_method(method: Method, engines: Sequence[Engine]) -> list[str] | None:
    """The schemas to join in SQL, or ``None`` to merge streams."""
    if method not in ("auto", "sql", "merge"):
        raise ValidationError(f"unknown method {method!r}: auto, sql or merge")
    if method == "merge":
        return None
    schemas = colocated_schemas(engines)
    if schemas is None and method == "sql":
        raise NotColocated("method=sql needs every side in one PostgreSQL database, readable "
                           "from the first side's session")
    return schemas


def in_schema(table: Table, schema: str) -> Table:
    """``table`` as it stands in ``schema`` (a copy, for schema-qualified SQL)."""
    columns: list[Column[Any]] = [Column(c.name, c.type) for c in table.columns]
    return Table(table.name, MetaData(), *columns, schema=schema)


# --- independent runs side by side -----------------------------------------------------------

BATCH: Final = 1_000
"""Items a worker hands over at a time."""
_DONE: Final = object()


def concurrently(sources: Sequence[Callable[[], Iterable[R]]],
                 buffer: int = 2 * BATCH) -> Iterator[R]:
    """Everything ``sources`` yield, source after source — as if run one after the other —
    while each runs in its own thread with its own connections.

    A layer spends most of its time waiting for its database (the join, the sort) before the
    first break arrives: run side by side, those waits overlap (on PostgreSQL, one backend per
    CPU). Each worker holds at most ``buffer`` items ahead of the reader, so memory stays flat;
    a worker's error is raised in the reader, and a reader that stops early stops the workers.
    """
    stop = threading.Event()
    queues: list[queue.Queue[Any]] = [queue.Queue(max(1, buffer // BATCH)) for _ in sources]

    def hand_over(q: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work(source: Callable[[], Iterable[R]], q: queue.Queue[Any]) -> None:
        items = source()
        try:
            batch: list[R] = []
            for item in items:
                batch.append(item)
                if len(batch) >= BATCH:
                    if not hand_over(q, batch):
                        return
                    batch = []
            if batch and not hand_over(q, batch):
                return
            hand_over(q, _DONE)
        except BaseException as exc:  # handed to the reader, raised there
            hand_over(q, exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's connections go back now, not at collection

    threads = [threading.Thread(target=work, args=(s, q), daemon=True,
                                name=f"reconcile-{i}")
               for i, (s, q) in enumerate(zip(sources, queues, strict=True))]
    for thread in threads:
        thread.start()
    try:
        for q in queues:
            while (item := q.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield from item
    finally:
        stop.set()
        for thread in threads:
            thread.join()
