"""The reading machinery: sorted merges, order checks, running layers side by side, finding
that sides share one database — and the vocabulary of breaks and periods."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from operator import itemgetter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from guoku.domain.errors import ValidationError
from guoku.reconcile import Break, BreakKind, Layer, Period, StreamOutOfOrder, concurrently
from guoku.reconcile.breaks import LABELS, parse_ref
from guoku.reconcile.merge import (
    ascending,
    colocated_schemas,
    merge_groups,
    merge_join,
    merge_runs,
)

keys = st.lists(st.integers(0, 40), unique=True).map(sorted)


@given(keys, keys)
def test_a_merge_join_pairs_every_key_once_and_drops_what_agrees(
    left: list[int], right: list[int],
) -> None:
    rows_l = [(k, k % 3) for k in left]
    rows_r = [(k, k % 4) for k in right]
    found = list(merge_join(rows_l, rows_r, itemgetter(0), lambda a, b: a[1] == b[1]))
    lmap, rmap = dict(rows_l), dict(rows_r)
    expected = [((k, lmap[k]) if k in lmap else None, (k, rmap[k]) if k in rmap else None)
                for k in sorted(set(left) | set(right))
                if not (k in lmap and k in rmap and lmap[k] == rmap[k])]
    assert found == expected


@given(st.lists(st.integers(0, 9)).map(sorted), st.lists(st.integers(0, 9)).map(sorted))
def test_merge_runs_gives_each_key_with_every_row_of_each_side(
    left: list[int], right: list[int],
) -> None:
    found = list(merge_runs(left, right, lambda k: k))
    assert [(xs or ys)[0] for xs, ys in found] == sorted(set(left) | set(right))
    for xs, ys in found:
        k = (xs or ys)[0]
        assert (xs, ys) == ([x for x in left if x == k], [y for y in right if y == k])


@given(st.lists(st.lists(st.integers(0, 9)).map(sorted), min_size=1, max_size=4))
def test_merge_groups_puts_each_streams_rows_under_their_key(streams: list[list[int]]) -> None:
    found = list(merge_groups(streams, lambda k: k))
    assert [k for k, _ in found] == sorted({k for s in streams for k in s})
    for k, sides in found:
        assert sides == [[x for x in s if x == k] for s in streams]


def test_a_stream_out_of_order_is_refused_not_merged_wrong() -> None:
    assert list(ascending([1, 2, 5], lambda k: k, "x")) == [1, 2, 5]
    for rows in ([1, 3, 2], [1, 1]):
        with pytest.raises(StreamOutOfOrder) as caught:
            list(ascending(rows, lambda k: k, "finance's copies"))
        assert "finance's copies" in str(caught.value)


# --- side by side ----------------------------------------------------------------------------


def _slow(items: list[int], delay: float) -> Iterator[int]:
    time.sleep(delay)
    yield from items


def test_sources_run_side_by_side_and_come_out_one_after_the_other() -> None:
    started = time.perf_counter()
    found = list(concurrently([lambda: _slow([1, 2], 0.3), lambda: _slow(list(range(3, 3000)),
                               0.3), lambda: _slow([], 0.3)], buffer=100))
    assert found == list(range(1, 3000))
    assert time.perf_counter() - started < 0.8  # the three waits overlapped


def test_an_error_in_a_source_is_raised_in_the_reader() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise StreamOutOfOrder("side b: out of order")

    with pytest.raises(StreamOutOfOrder):
        list(concurrently([lambda: iter([0]), broken]))


def test_a_reader_that_stops_early_stops_the_workers() -> None:
    before = threading.active_count()

    def endless() -> Iterator[int]:
        n = 0
        while True:
            n += 1
            yield n

    running = concurrently([endless, endless], buffer=10)
    assert [next(running) for _ in range(5)] == [1, 2, 3, 4, 5]
    running.close()
    assert threading.active_count() == before


# --- one database or several -----------------------------------------------------------------


def test_schemas_of_one_database_are_found_to_be_one_database(pg_url: str) -> None:
    admin = create_engine(pg_url, poolclass=NullPool)
    names = [f"rc_{uuid.uuid4().hex[:8]}_{i}" for i in range(3)]
    with admin.begin() as conn:
        for name in names:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in pg_url else "?"
    engines = [create_engine(f"{pg_url}{sep}options=-csearch_path%3D{n}", poolclass=NullPool)
               for n in names]
    try:
        assert colocated_schemas(engines) == names  # fresh sessions, none pooled
        assert colocated_schemas([engines[0], create_engine("sqlite://")]) is None
    finally:
        with admin.begin() as conn:
            for name in names:
                conn.execute(text(f'DROP SCHEMA "{name}"'))
        admin.dispose()


# --- breaks and periods ----------------------------------------------------------------------


def test_every_kind_has_a_chinese_name() -> None:
    assert set(LABELS) == set(BreakKind)
    assert BreakKind.DUPLICATE_BOOKING.label == "重复记账"


def test_a_break_says_what_it_is_in_one_line_and_as_a_record() -> None:
    brk = Break(Layer.LIBRARIES, BreakKind.MISSING, "533103", "U533103001", "B-ICBC",
                "sender copy", "receiver copy", vt_code="8202", st_year=2024,
                voucher_no="A0005", version=1, day="20240615", left_amount_fen=900,
                left_state="indeterminate", detail="the receiver has no copy")
    record = brk.to_dict()
    assert (record["layer"], record["kind"], record["label"]) == (1, "missing", "我方有、对方无")
    assert record["voucher_no"] == "A0005" and brk.ref == "8202/2024/A0005/v1"
    line = str(brk)
    assert "8202/2024/A0005/v1" in line and "我方有、对方无" in line
    total = Break(Layer.BUSINESS, BreakKind.TOTAL_MISMATCH, "533103", "bank", "treasury",
                  "bank advanced", "treasury cleared", fund_type="1")
    assert total.ref is None and "1" in str(total)


def test_a_ledger_ref_is_read_back_into_its_parts() -> None:
    assert parse_ref("8202/2024/SQ533103001/v2") == ("8202", 2024, "SQ533103001", 2)
    assert parse_ref("9301/2024/9301-B-ICBC-2301-X/v1") == (
        "9301", 2024, "9301-B-ICBC-2301-X", 1)
    assert parse_ref("rubbish") is None


@pytest.mark.parametrize(("day", "month", "bounds"), [
    ("20240615", None, ("20240615", "20240615")),
    (None, "202406", ("20240601", "20240631")),
    (None, None, (None, None)),
])
def test_a_period_is_a_day_a_month_or_everything(
    day: str | None, month: str | None, bounds: tuple[str | None, str | None],
) -> None:
    period = Period.of(day, month)
    assert (period.first, period.last) == bounds
    assert period.everything is (bounds[0] is None)


@pytest.mark.parametrize(("day", "month"), [
    ("2024-06-15", None), ("20241315", None), ("20240632", None), (None, "2024-06"),
    (None, "202400"), ("20240615", "202406"),
])
def test_a_period_that_is_not_one_is_refused(day: str | None, month: str | None) -> None:
    with pytest.raises(ValidationError):
        Period.of(day, month)
