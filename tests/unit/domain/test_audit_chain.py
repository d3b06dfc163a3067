"""The audit chain: every entry holds the SM3 hash of the one before, so tampering shows."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.domain.audit import (
    EMPTY_HEAD,
    GENESIS_HASH,
    AuditEntry,
    ChainBreak,
    StoredEntry,
    entry_hash,
    verify_chain,
)
from guoku.security.crypto import sm3

ACTIONS = ("create", "check", "seal", "send", "accept")
STATES = (None, "draft", "checked", "sealed", "sent", "accepted")


def entry(seq: int, **changes: object) -> AuditEntry:
    """The seq-th step of one direct payment's life, as the library would audit it."""
    step = (seq - 1) % len(ACTIONS)
    base = AuditEntry(
        seq=seq,
        admdiv="530000",
        at=f"2024-03-15T09:{seq % 60:02d}:00+08:00",
        actor=("张三", "李四", "王五", "赵六", "钱七")[step],
        post=("entry", "review", "seal", "send", "receive")[step],
        action=ACTIONS[step],
        voucher_ref=f"5201/ZJ2024{seq // len(ACTIONS):06d}/1",
        state_before=STATES[step],
        state_after=STATES[step + 1],
        outcome="ok",
        detail=json.dumps({"n": seq}, separators=(",", ":")),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def build(entries: list[AuditEntry]) -> tuple[list[StoredEntry], tuple[int, str]]:
    rows, prev = [], GENESIS_HASH
    for e in entries:
        h = entry_hash(e, prev, sm3)
        rows.append(StoredEntry(e, prev, h))
        prev = h
    head = (rows[-1].entry.seq, rows[-1].hash) if rows else EMPTY_HEAD
    return rows, head


def chain(n: int) -> tuple[list[StoredEntry], tuple[int, str]]:
    return build([entry(seq) for seq in range(1, n + 1)])


sizes = st.integers(min_value=1, max_value=12)


# --- the hash ----------------------------------------------------------------------------------


def test_the_hash_function_passed_in_is_sm3() -> None:
    expected = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abc").hex() == expected  # GB/T 32905-2016 example 1


def test_an_entry_hash_is_sm3_over_the_previous_hash_and_the_canonical_json() -> None:
    e = entry(1)
    body = json.dumps(
        dataclasses.asdict(e), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    raw = GENESIS_HASH.encode() + b"\n" + body.encode("utf-8")
    assert "张三" in body  # Chinese stays Chinese, hashed as UTF-8, not \u escapes
    assert entry_hash(e, GENESIS_HASH, sm3) == sm3(raw).hex()


def test_an_entry_hash_is_64_hex_digits_and_the_same_every_time() -> None:
    h = entry_hash(entry(1), GENESIS_HASH, sm3)
    assert len(h) == 64 and int(h, 16) >= 0
    assert entry_hash(entry(1), GENESIS_HASH, sm3) == h


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seq", 2),
        ("admdiv", "533100"),
        ("at", "2024-03-15T09:01:01+08:00"),
        ("actor", "张四"),
        ("post", None),
        ("action", "void"),
        ("voucher_ref", None),
        ("state_before", "sealed"),
        ("state_after", None),
        ("outcome", "refused"),
        ("detail", '{"n":2}'),
    ],
)
def test_changing_any_fact_of_an_entry_changes_its_hash(name: str, value: object) -> None:
    changed = dataclasses.replace(entry(1), **{name: value})
    assert entry_hash(changed, GENESIS_HASH, sm3) != entry_hash(entry(1), GENESIS_HASH, sm3)


def test_the_same_entry_after_a_different_predecessor_has_a_different_hash() -> None:
    assert entry_hash(entry(2), "1" * 64, sm3) != entry_hash(entry(2), "2" * 64, sm3)


# --- an intact chain -------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=12))
def test_an_intact_chain_verifies(n: int) -> None:
    rows, head = chain(n)
    assert verify_chain(rows, head, sm3) is None


def test_an_empty_chain_with_an_empty_head_verifies() -> None:
    assert verify_chain([], EMPTY_HEAD, sm3) is None


def test_the_first_entry_follows_the_genesis_hash() -> None:
    rows, _ = chain(3)
    assert rows[0].prev_hash == GENESIS_HASH == "0" * 64
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]


def test_refusals_are_chained_like_everything_else() -> None:
    rows, head = build([entry(1), entry(2, outcome="refused", state_after="draft")])
    assert verify_chain(rows, head, sm3) is None


# --- tampering -------------------------------------------------------------------------------


def test_an_edited_entry_is_reported_at_its_position() -> None:
    rows, head = chain(5)
    rows[2] = dataclasses.replace(rows[2], entry=entry(3, actor="李四"))
    found = verify_chain(rows, head, sm3)
    assert found == ChainBreak(3, 3, "entry content does not match its hash")


@given(sizes, st.data())
def test_any_edited_entry_is_reported_at_its_position(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=n))
    rows, head = chain(n)
    rows[k - 1] = dataclasses.replace(rows[k - 1], entry=entry(k, outcome="forged"))
    found = verify_chain(rows, head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (k, k)


def test_an_edited_entry_whose_hash_was_recomputed_breaks_the_next_link() -> None:
    rows, head = chain(5)
    forged = entry(3, actor="李四")
    rows[2] = StoredEntry(forged, rows[2].prev_hash, entry_hash(forged, rows[2].prev_hash, sm3))
    found = verify_chain(rows, head, sm3)
    assert found == ChainBreak(4, 4, "prev_hash does not match the previous entry")


def test_an_edited_last_entry_with_a_recomputed_hash_disagrees_with_the_head() -> None:
    rows, head = chain(5)
    forged = entry(5, outcome="refused")
    rows[4] = StoredEntry(forged, rows[4].prev_hash, entry_hash(forged, rows[4].prev_hash, sm3))
    found = verify_chain(rows, head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (6, None)


def test_a_deleted_middle_entry_is_reported_where_it_is_missing() -> None:
    rows, head = chain(5)
    del rows[2]
    assert verify_chain(rows, head, sm3) == ChainBreak(3, 4, "expected seq 3, found 4")


@given(sizes, st.data())
def test_any_deleted_entry_is_reported_at_its_position(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=n))
    rows, head = chain(n)
    del rows[k - 1]
    found = verify_chain(rows, head, sm3)
    assert found is not None
    assert found.position == k
    assert found.seq == (None if k == n else k + 1)


def test_a_deleted_first_entry_is_reported_at_position_one() -> None:
    rows, head = chain(3)
    assert verify_chain(rows[1:], head, sm3) == ChainBreak(1, 2, "expected seq 1, found 2")


def test_a_deleted_tail_disagrees_with_the_head() -> None:
    rows, head = chain(5)
    found = verify_chain(rows[:3], head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (4, None)
    assert "head says" in found.reason


def test_a_chain_emptied_entirely_disagrees_with_the_head() -> None:
    _, head = chain(3)
    found = verify_chain([], head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (1, None)


def test_a_deleted_entry_with_the_rest_renumbered_breaks_the_link_where_it_was() -> None:
    rows, head = chain(5)
    renumbered = [rows[0], rows[1]] + [
        dataclasses.replace(r, entry=dataclasses.replace(r.entry, seq=r.entry.seq - 1))
        for r in rows[3:]
    ]
    found = verify_chain(renumbered, head, sm3)
    assert found == ChainBreak(3, 3, "prev_hash does not match the previous entry")


def test_a_chain_rewritten_from_an_entry_onwards_disagrees_with_the_stored_head() -> None:
    rows, head = chain(5)
    rewritten, _ = build([r.entry for r in rows[:2]] + [entry(3, actor="李四"), entry(4)])
    found = verify_chain(rewritten, head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (5, None)


def test_an_entry_appended_behind_the_heads_back_is_reported_after_the_head() -> None:
    _, head = chain(3)
    longer, _ = chain(4)
    found = verify_chain(longer, head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (5, None)


def test_two_swapped_entries_are_reported_at_the_first_of_them() -> None:
    rows, head = chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    assert verify_chain(rows, head, sm3) == ChainBreak(2, 3, "expected seq 2, found 3")


@given(st.integers(min_value=2, max_value=12), st.data())
def test_any_two_swapped_entries_are_reported_at_the_first_of_them(
    n: int, data: st.DataObject
) -> None:
    i = data.draw(st.integers(min_value=1, max_value=n - 1))
    j = data.draw(st.integers(min_value=i + 1, max_value=n))
    rows, head = chain(n)
    rows[i - 1], rows[j - 1] = rows[j - 1], rows[i - 1]
    found = verify_chain(rows, head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (i, j)


def test_a_wrong_prev_hash_is_reported_at_its_entry() -> None:
    rows, head = chain(5)
    rows[3] = dataclasses.replace(rows[3], prev_hash="f" * 64)
    found = verify_chain(rows, head, sm3)
    assert found == ChainBreak(4, 4, "prev_hash does not match the previous entry")


def test_a_first_entry_that_does_not_follow_genesis_is_reported_at_position_one() -> None:
    rows, head = chain(3)
    rows[0] = dataclasses.replace(rows[0], prev_hash="1" * 64)
    found = verify_chain(rows, head, sm3)
    assert found == ChainBreak(1, 1, "prev_hash does not match the previous entry")


@given(sizes, st.data())
def test_any_wrong_prev_hash_is_reported_at_its_entry(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=n))
    bad = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    rows, head = chain(n)
    if bad == rows[k - 1].prev_hash:
        return
    rows[k - 1] = dataclasses.replace(rows[k - 1], prev_hash=bad)
    found = verify_chain(rows, head, sm3)
    assert found is not None
    assert (found.position, found.seq) == (k, k)
    assert "prev_hash" in found.reason


def test_only_the_first_break_is_reported() -> None:
    rows, head = chain(6)
    rows[4] = dataclasses.replace(rows[4], prev_hash="f" * 64)
    rows[1] = dataclasses.replace(rows[1], entry=entry(2, actor="某人"))
    found = verify_chain(rows, head, sm3)
    assert found is not None
    assert found.position == 2


def test_verifying_reads_the_rows_once_so_a_database_cursor_will_do() -> None:
    rows, head = chain(4)
    assert verify_chain(iter(rows), head, sm3) is None
