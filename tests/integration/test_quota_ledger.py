"""The quota ledger on SQLite and PostgreSQL: booking, idempotent redelivery, refusals that change
nothing, and parallel payments at one quota that never overdraw it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from guoku.bootstrap import open_engine
from guoku.domain.errors import NotFound
from guoku.domain.money import Amount
from guoku.domain.quota import (
    HoldNotOpen,
    HoldState,
    LedgerMismatch,
    Outcome,
    QuotaBalance,
    QuotaExceeded,
    QuotaKey,
    QuotaOp,
    QuotaReplayMismatch,
    RefundExceedsSpent,
)
from guoku.store import quota
from guoku.store.engine import make_engine, sqlite_url
from guoku.store.migrate import downgrade, upgrade
from guoku.store.tables import metadata, quota_balances, quota_entries
from guoku.store.uow import UnitOfWork

T = TypeVar("T")
KEY = QuotaKey("533103", 2024, "103001", "1", "2010101", 3)
AT = "2024-03-15T09:00:00.000000Z"
WORKERS = 40
ROUNDS = 5


def yuan(n: int) -> Amount:
    return Amount(n * 100)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "quota.db")
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_engine(db_url)
    yield engine
    engine.dispose()


def booked(engine: Engine, step: Callable[[UnitOfWork], T]) -> T:
    """Run ``step`` in its own unit of work and commit."""
    with UnitOfWork(engine) as uow:
        result = step(uow)
        uow.commit()
    return result


def balance_of(engine: Engine, key: QuotaKey = KEY) -> QuotaBalance:
    with engine.connect() as conn:
        return quota.verify(conn, key)


def entry_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(quota_entries)).scalar_one())


def issue(
    engine: Engine, amount: Amount, ref: str = "5105/2024/Q1/v1", key: QuotaKey = KEY
) -> None:
    booked(engine, lambda u: quota.issue(u.conn, key, amount, ref, AT))


def hold(engine: Engine, amount: Amount, ref: str, key: QuotaKey = KEY) -> quota.Posted:
    return booked(engine, lambda u: quota.hold(u.conn, key, amount, ref, AT))


def settle(engine: Engine, ref: str) -> quota.Posted:
    return booked(engine, lambda u: quota.settle(u.conn, ref, AT))


# --- the schema ------------------------------------------------------------------------------


def test_the_migration_creates_exactly_the_quota_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert [d for d in diff if "quota_" in repr(d)] == []


def test_the_migration_goes_down_and_up_again(engine: Engine) -> None:
    downgrade(engine, "0002")
    with engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
    assert not {"quota_balances", "quota_entries"} & names
    upgrade(engine)
    issue(engine, yuan(1))
    assert balance_of(engine).issued == yuan(1)


def test_the_database_itself_refuses_an_overdrawn_balance(engine: Engine) -> None:
    issue(engine, yuan(1000))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(quota_balances).values(held_fen=yuan(1001).fen))
    assert balance_of(engine).held == Amount(0)


# --- booking ---------------------------------------------------------------------------------


def test_a_payment_holds_then_settles_and_a_refund_restores(engine: Engine) -> None:
    issue(engine, yuan(1000))
    hold(engine, yuan(300), "8202/2024/P1/v1")
    assert balance_of(engine) == QuotaBalance(yuan(1000), yuan(300), Amount(0))
    settle(engine, "8202/2024/P1/v1")
    assert balance_of(engine) == QuotaBalance(yuan(1000), Amount(0), yuan(300))
    booked(
        engine, lambda u: quota.refund(u.conn, "8202/2024/P1/v1", yuan(120), "2204/2024/R1/v1", AT)
    )
    assert balance_of(engine) == QuotaBalance(yuan(1000), Amount(0), yuan(180))
    with engine.connect() as conn:
        entries = [p.entry for p in quota.history(conn, KEY)]
        paid = quota.payment(conn, "8202/2024/P1/v1")
    assert [(e.op, e.voucher_ref) for e in entries] == [
        (QuotaOp.ISSUE, "5105/2024/Q1/v1"),
        (QuotaOp.HOLD, "8202/2024/P1/v1"),
        (QuotaOp.SETTLE, "8202/2024/P1/v1"),
        (QuotaOp.REFUND, "2204/2024/R1/v1"),
    ]
    assert entries[-1].payment_ref == "8202/2024/P1/v1"
    assert (paid.state, paid.refunded, paid.refundable) == (HoldState.PAID, yuan(120), yuan(180))


def test_quota_of_other_months_and_units_is_not_touched(engine: Engine) -> None:
    april = QuotaKey("533103", 2024, "103001", "1", "2010101", 4)
    other_unit = QuotaKey("533103", 2024, "103002", "1", "2010101", 3)
    issue(engine, yuan(100))
    issue(engine, yuan(50), "5105/2024/Q2/v1", april)
    with pytest.raises(QuotaExceeded):
        hold(engine, yuan(1), "8202/2024/P1/v1", other_unit)
    hold(engine, yuan(100), "8202/2024/P2/v1")
    assert balance_of(engine, april) == QuotaBalance(yuan(50), Amount(0), Amount(0))
    assert balance_of(engine, other_unit) == QuotaBalance.empty()


@pytest.mark.parametrize("outcome", [Outcome.RETURNED, Outcome.FAILED, Outcome.VOIDED])
def test_a_payment_that_was_not_paid_gives_its_quota_back(engine: Engine, outcome: Outcome) -> None:
    issue(engine, yuan(1000))
    hold(engine, yuan(1000), "8202/2024/P1/v1")
    booked(engine, lambda u: quota.release(u.conn, "8202/2024/P1/v1", AT, outcome))
    assert balance_of(engine).available == yuan(1000)


def test_an_indeterminate_payment_keeps_its_quota_until_a_definite_outcome(
    engine: Engine,
) -> None:
    issue(engine, yuan(1000))
    hold(engine, yuan(1000), "8202/2024/P1/v1")
    for _ in range(2):
        assert (
            booked(
                engine,
                lambda u: quota.record_outcome(
                    u.conn, "8202/2024/P1/v1", Outcome.INDETERMINATE, AT
                ),
            )
            is None
        )
    assert balance_of(engine).held == yuan(1000)
    with pytest.raises(QuotaExceeded):
        hold(engine, yuan(1), "8202/2024/P2/v1")
    booked(engine, lambda u: quota.record_outcome(u.conn, "8202/2024/P1/v1", Outcome.RETURNED, AT))
    assert balance_of(engine).available == yuan(1000)


# --- idempotency -----------------------------------------------------------------------------


def test_a_redelivered_operation_is_applied_once(engine: Engine) -> None:
    pay, back = "8202/2024/P1/v1", "2204/2024/R1/v1"
    steps: list[Callable[[UnitOfWork], quota.Posted]] = [
        lambda u: quota.issue(u.conn, KEY, yuan(1000), "5105/2024/Q1/v1", AT),
        lambda u: quota.hold(u.conn, KEY, yuan(300), pay, AT),
        lambda u: quota.settle(u.conn, pay, AT),
        lambda u: quota.refund(u.conn, pay, yuan(100), back, AT),
        lambda u: quota.reduce(u.conn, KEY, yuan(50), "5105/2024/Q2/v1", AT),
    ]
    for step in steps:
        first = booked(engine, step)
        after = balance_of(engine)
        again = booked(engine, step)
        assert (first.replayed, again.replayed) == (False, True)
        assert (again.id, again.entry) == (first.id, first.entry)
        assert balance_of(engine) == after
    assert entry_count(engine) == len(steps)
    assert balance_of(engine) == QuotaBalance(yuan(950), Amount(0), yuan(200))


def test_a_released_payment_does_not_count_as_held_when_sent_again(engine: Engine) -> None:
    """A voided payment restored and sent again must hold anew, under a new reference: a replay
    of its old, released hold would let it go out without quota."""
    issue(engine, yuan(1000))
    hold(engine, yuan(300), "8202/2024/P1/v1")
    booked(engine, lambda u: quota.release(u.conn, "8202/2024/P1/v1", AT, Outcome.VOIDED))
    with pytest.raises(HoldNotOpen, match="new reference"):
        hold(engine, yuan(300), "8202/2024/P1/v1")
    hold(engine, yuan(300), "8202/2024/P1/v1#2")
    assert balance_of(engine).held == yuan(300)


@pytest.mark.parametrize(
    "again",
    [
        lambda c: quota.hold(c, KEY, yuan(301), "8202/2024/P1/v1", AT),
        lambda c: quota.hold(
            c,
            QuotaKey("533103", 2024, "103001", "1", "2010101", 4),
            yuan(300),
            "8202/2024/P1/v1",
            AT,
        ),
    ],
    ids=["other amount", "other key"],
)
def test_a_redelivery_asking_for_something_else_is_refused(
    engine: Engine, again: Callable[[object], object]
) -> None:
    issue(engine, yuan(1000))
    issue(
        engine, yuan(1000), "5105/2024/Q2/v1", QuotaKey("533103", 2024, "103001", "1", "2010101", 4)
    )
    hold(engine, yuan(300), "8202/2024/P1/v1")
    count = entry_count(engine)
    with pytest.raises(QuotaReplayMismatch):
        booked(engine, lambda u: again(u.conn))
    assert entry_count(engine) == count


# --- refusals change nothing -----------------------------------------------------------------


def test_a_refused_payment_writes_nothing_and_the_transaction_goes_on(engine: Engine) -> None:
    issue(engine, yuan(1000))
    with UnitOfWork(engine) as uow:
        quota.hold(uow.conn, KEY, yuan(600), "8202/2024/P1/v1", AT)
        with pytest.raises(QuotaExceeded):
            quota.hold(uow.conn, KEY, yuan(401), "8202/2024/P2/v1", AT)
        quota.hold(uow.conn, KEY, yuan(400), "8202/2024/P3/v1", AT)
        uow.commit()
    assert balance_of(engine) == QuotaBalance(yuan(1000), yuan(1000), Amount(0))
    assert entry_count(engine) == 3


def test_a_payment_without_issued_quota_is_refused_and_leaves_no_row(engine: Engine) -> None:
    with pytest.raises(QuotaExceeded):
        hold(engine, yuan(1), "8202/2024/P1/v1")
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(quota_balances)).scalar_one()
    assert (rows, entry_count(engine)) == (0, 0)


def test_a_rolled_back_payment_leaves_its_quota_available(engine: Engine) -> None:
    issue(engine, yuan(1000))
    with UnitOfWork(engine) as uow:
        quota.hold(uow.conn, KEY, yuan(1000), "8202/2024/P1/v1", AT)
    assert balance_of(engine).available == yuan(1000)
    hold(engine, yuan(1000), "8202/2024/P1/v1")


def test_settlement_and_refund_refusals(engine: Engine) -> None:
    issue(engine, yuan(1000))
    hold(engine, yuan(300), "8202/2024/P1/v1")
    hold(engine, yuan(200), "8202/2024/P2/v1")
    with pytest.raises(RefundExceedsSpent):
        booked(engine, lambda u: quota.refund(u.conn, "8202/2024/P1/v1", yuan(1), "2204/R0", AT))
    settle(engine, "8202/2024/P1/v1")
    settle(engine, "8202/2024/P2/v1")
    before = (balance_of(engine), entry_count(engine))
    with pytest.raises(HoldNotOpen):
        booked(engine, lambda u: quota.release(u.conn, "8202/2024/P1/v1", AT))
    with pytest.raises(RefundExceedsSpent):
        booked(engine, lambda u: quota.refund(u.conn, "8202/2024/P1/v1", yuan(301), "2204/R1", AT))
    with pytest.raises(NotFound):
        settle(engine, "8202/2024/P9/v1")
    with pytest.raises(NotFound):
        booked(engine, lambda u: quota.refund(u.conn, "8202/2024/P9/v1", yuan(1), "2204/R2", AT))
    assert (balance_of(engine), entry_count(engine)) == before


def test_an_altered_entry_is_found_by_verify(engine: Engine) -> None:
    issue(engine, yuan(1000))
    hold(engine, yuan(300), "8202/2024/P1/v1")
    with engine.begin() as conn:
        conn.execute(
            update(quota_entries)
            .where(quota_entries.c.op == "hold")
            .values(amount_fen=yuan(30).fen)
        )
    with pytest.raises(LedgerMismatch, match="entry 2"), engine.connect() as conn:
        quota.verify(conn, KEY)


# --- concurrency -----------------------------------------------------------------------------


def _race(url: str, workers: int, attempt: Callable[[UnitOfWork, int], object]) -> Counter[str]:
    """``workers`` threads, each with its own connection, start ``attempt`` at the same moment."""
    engine = make_engine(url, pool_size=workers + 2, max_overflow=0)
    start = threading.Barrier(workers)
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        start.wait(timeout=60)
        with UnitOfWork(engine) as uow:
            try:
                outcome = attempt(uow, n)
                uow.commit()
            except Exception as exc:
                name = type(exc).__name__
            else:
                name = "replayed" if getattr(outcome, "replayed", False) else "ok"
        with lock:
            results[name] += 1

    warm = [engine.connect() for _ in range(workers)]  # every worker finds its connection open
    for conn in warm:
        conn.exec_driver_sql("SELECT 1")
        conn.close()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    finally:
        engine.dispose()
    return results


class Watcher:
    """Reads the balance in a loop while a race runs; QuotaBalance refuses a negative part."""

    def __init__(self, engine: Engine, key: QuotaKey) -> None:
        self.engine, self.key, self.reads = engine, key, 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.engine.connect() as conn:
                    assert quota.balance(conn, self.key).available.fen >= 0
                self.reads += 1
            except BaseException as exc:
                self.errors.append(exc)
                return

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        assert self.errors == []


@pytest.mark.slow
def test_parallel_payments_at_one_quota_never_overdraw_it(engine: Engine, db_url: str) -> None:
    """1,000.00 of quota, 40 payments of 100.00 at once: exactly 10 win, 30 are refused."""
    for n in range(ROUNDS):
        key = QuotaKey("533103", 2024, "103001", "1", "2010101", n + 1)
        issue(engine, yuan(1000), f"5105/2024/Q{n}/v1", key)

        def pay(u: UnitOfWork, i: int, key: QuotaKey = key, n: int = n) -> quota.Posted:
            return quota.hold(u.conn, key, yuan(100), f"8202/2024/R{n}P{i}/v1", AT)

        with Watcher(engine, key) as watcher:
            results = _race(db_url, WORKERS, pay)
        assert results == {"ok": 10, "QuotaExceeded": WORKERS - 10}, f"round {n}"
        assert balance_of(engine, key) == QuotaBalance(yuan(1000), yuan(1000), Amount(0))
        assert watcher.reads > 0
    assert entry_count(engine) == ROUNDS * (1 + 10)


@pytest.mark.slow
def test_a_payment_delivered_many_times_at_once_holds_once(engine: Engine, db_url: str) -> None:
    issue(engine, yuan(1000))
    results = _race(
        db_url, 20, lambda u, _: quota.hold(u.conn, KEY, yuan(100), "8202/2024/P1/v1", AT)
    )
    assert results == {"ok": 1, "replayed": 19}
    assert balance_of(engine).held == yuan(100)


@pytest.mark.slow
def test_first_quota_notices_of_a_new_key_arriving_together_all_count(
    engine: Engine, db_url: str
) -> None:
    results = _race(
        db_url, 20, lambda u, i: quota.issue(u.conn, KEY, yuan(10), f"5105/2024/Q{i}/v1", AT)
    )
    assert results == {"ok": 20}
    assert balance_of(engine) == QuotaBalance(yuan(200), Amount(0), Amount(0))


@pytest.mark.slow
def test_payments_settling_releasing_and_refunding_together_keep_the_ledger_exact(
    engine: Engine, db_url: str
) -> None:
    """While 10 new payments compete for quota, 5 held payments are paid, 5 returned, 10 paid
    ones see a late indeterminate status and 10 refunds come in: the ledger stays exact."""
    issue(engine, yuan(1000))
    for i in range(20):
        hold(engine, yuan(40), f"8202/2024/P{i}/v1")
    for i in range(0, 20, 2):
        settle(engine, f"8202/2024/P{i}/v1")
    # now: issued 1000, held 400 (odd payments), spent 400 (even payments), available 200

    def attempt(u: UnitOfWork, i: int) -> object:
        if i < 20:
            outcome = (
                Outcome.INDETERMINATE,
                Outcome.PAID,
                Outcome.INDETERMINATE,
                Outcome.RETURNED,
            )[i % 4]
            return quota.record_outcome(u.conn, f"8202/2024/P{i}/v1", outcome, AT)
        if i < 30:
            return quota.refund(
                u.conn, f"8202/2024/P{(i - 20) * 2}/v1", yuan(10), f"2204/2024/R{i}/v1", AT
            )
        return quota.hold(u.conn, KEY, yuan(60), f"8202/2024/N{i}/v1", AT)

    with Watcher(engine, KEY):
        results = _race(db_url, 40, attempt)
    won = results["ok"] - 30
    # available grows from 200 to 200 + 5 * 40 released + 10 * 10 refunded = 500 as the race goes
    assert 200 // 60 <= won <= 500 // 60
    assert results == {"ok": 30 + won, "QuotaExceeded": 10 - won}
    spent = 400 + 5 * 40 - 10 * 10
    assert balance_of(engine) == QuotaBalance(yuan(1000), yuan(60 * won), yuan(spent))
    with engine.connect() as conn:
        states = Counter(quota.payment(conn, f"8202/2024/P{i}/v1").state for i in range(20))
    assert states == {HoldState.PAID: 15, HoldState.RELEASED: 5}
