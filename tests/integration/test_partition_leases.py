"""Partition leases on PostgreSQL advisory locks: a lone worker holds every partition, a second
one gets its share when the first gives back what is beyond it, and takes all when the first
leaves; partition_of is stable."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine

from guoku.node.partitions import PgLeases, lock_key, partition_of, split

pytestmark = pytest.mark.postgres


def test_partition_of_is_stable_and_spreads() -> None:
    # the same on every machine and Python (SHA-256): a change would re-route every queue
    assert [partition_of(c, 4) for c in ("533103", "533102", "530102", "530103")] == [1, 2, 3, 3]
    assert (partition_of("533103", 8), partition_of("530102", 8)) == (5, 7)
    assert partition_of("530000", 1) == 0
    counties = [f"5301{i:02d}" for i in range(1, 17)]
    assert sorted(len(v) for v in split(counties, 4).values()) == [2, 4, 5, 5]


def test_share_give_back_take_over(pg_url: str) -> None:
    engine = create_engine(pg_url)
    key = lock_key(f"t-{uuid.uuid4().hex}", "pboc")
    a, b = PgLeases(engine, key, 4), PgLeases(engine, key, 4)
    released: list[tuple[str, int]] = []
    try:
        held_a, keeper_a = a.balance(lambda k: released.append(("a", k)))
        assert held_a == frozenset(range(4)) and keeper_a and a.live_workers() == 1
        held_b, keeper_b = b.balance(lambda k: released.append(("b", k)))
        assert held_b == frozenset() and not keeper_b and b.live_workers() == 2
        held_a, _ = a.balance(lambda k: released.append(("a", k)))
        assert len(held_a) == 2 and sorted(k for _, k in released) == sorted(
            set(range(4)) - held_a)
        held_b, _ = b.balance(lambda k: released.append(("b", k)))
        assert held_b == frozenset(range(4)) - held_a
        a.close(lambda k: released.append(("a", k)))
        held_b, keeper_b = b.balance(lambda k: released.append(("b", k)))
        assert held_b == frozenset(range(4)) and keeper_b and b.live_workers() == 1
    finally:
        a.close(lambda k: None)
        b.close(lambda k: None)
        engine.dispose()
