"""The audit chain: every operation appended as an entry that holds the SM3 hash of the previous.

Pure: the hash function is passed in (``guoku.security.crypto.sm3``), so this module does no I/O
and needs no crypto backend. An edited entry changes its own hash; a deleted or reordered entry
breaks the ``prev_hash`` link or the sequence; a deleted tail disagrees with the stored head.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Final

GENESIS_HASH: Final = "0" * 64

HashFn = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which voucher, from which state to which, and whether it was allowed."""

    seq: int
    admdiv: str
    at: str
    actor: str
    post: str | None
    action: str
    voucher_ref: str | None
    state_before: str | None
    state_after: str | None
    outcome: str
    """``ok`` or ``refused`` — refusals are audited too."""
    detail: str
    """Canonical JSON of extra facts (reason, error code)."""


_ENTRY_FIELDS: Final = tuple(f.name for f in fields(AuditEntry))


def entry_hash(entry: AuditEntry, prev_hash: str, hash_fn: HashFn) -> str:
    """SM3 over the previous hash and the canonical JSON of the entry (sorted keys, no spaces)."""
    facts = {name: getattr(entry, name) for name in _ENTRY_FIELDS}  # asdict() deep-copies
    body = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hash_fn(prev_hash.encode("ascii") + b"\n" + body.encode("utf-8")).hex()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    position: int
    """1-based position in seq order where the chain first fails."""
    seq: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: AuditEntry
    prev_hash: str
    hash: str


EMPTY_HEAD: Final = (0, GENESIS_HASH)


def verify_chain(
    rows: Iterable[StoredEntry], head: tuple[int, str], hash_fn: HashFn
) -> ChainBreak | None:
    """Walk the chain in seq order; return the first break, or None when intact.

    ``head`` is the stored (last seq, last hash); :data:`EMPTY_HEAD` for an empty chain.
    """
    prev = GENESIS_HASH
    expected_seq = 1
    position = 0
    last: tuple[int, str] = EMPTY_HEAD
    for position, row in enumerate(rows, start=1):
        seq = row.entry.seq
        if seq != expected_seq:
            return ChainBreak(position, seq, f"expected seq {expected_seq}, found {seq}")
        if row.prev_hash != prev:
            return ChainBreak(position, seq, "prev_hash does not match the previous entry")
        if entry_hash(row.entry, prev, hash_fn) != row.hash:
            return ChainBreak(position, seq, "entry content does not match its hash")
        prev = row.hash
        expected_seq += 1
        last = (seq, row.hash)
    if last != head:
        return ChainBreak(position + 1, None, f"chain ends at {last} but the head says {head}")
    return None
