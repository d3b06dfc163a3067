"""The faults the engine must find (issue, section 6): a dropped message, an amount changed in one
ledger, a duplicated booking, a voucher stuck in one state and a booking with no voucher. Each
is injected into an otherwise consistent day; the engine names it — and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reconcile_world import BANK, OLD, UNIT, World

from guoku.reconcile import Break, BreakKind

K = BreakKind
Found = set[tuple[int, BreakKind, str | None]]


def found(breaks: list[Break]) -> Found:
    return {(int(b.layer), b.kind, b.voucher_no) for b in breaks}


def dropped_message(w: World) -> Found:
    """The unit's payment never reached the bank; no receipt came, so it went indeterminate."""
    w.finance.voucher("8202", "A0005", "out", "indeterminate", 900, UNIT, BANK, updated=OLD)
    return {(1, K.MISSING, "A0005")}


def amount_changed_in_one_ledger(w: World) -> Found:
    w.bank.set_posting("8202/2024/A0001/v1", amount_fen=12_900)
    return {(2, K.AMOUNT_MISMATCH, "A0001"), (3, K.AMOUNT_MISMATCH, "A0001"),
            (3, K.TOTAL_MISMATCH, None)}


def duplicated_booking(w: World) -> Found:
    """Finance books payment A0001 a second time, under a version that does not exist."""
    w.finance.post(UNIT, "authorized_paid", "8202/2024/A0001/v2", 12_800)
    return {(2, K.DUPLICATE_BOOKING, "A0001"), (3, K.MISSING, "A0001"),
            (3, K.TOTAL_MISMATCH, None)}


def voucher_stuck_in_one_state(w: World) -> Found:
    """The bank accepted and paid A0002; its accept receipt never reached the unit, whose copy
    stays delivered — so finance never booked the payment."""
    w.finance.set_voucher("A0002", state="delivered")
    w.finance.drop_posting("8202/2024/A0002/v1")
    return {(1, K.STATUS_MISMATCH, "A0002"), (3, K.EXTRA, "A0002"), (3, K.TOTAL_MISMATCH, None)}


def booking_with_no_voucher(w: World) -> Found:
    w.finance.post(UNIT, "authorized_paid", "8202/2024/A0404/v1", 5_000)
    return {(2, K.BOOKING_WITHOUT_VOUCHER, "A0404"), (3, K.MISSING, "A0404"),
            (3, K.TOTAL_MISMATCH, None)}


FAULTS: list[Callable[[World], Found]] = [
    dropped_message, amount_changed_in_one_ledger, duplicated_booking,
    voucher_stuck_in_one_state, booking_with_no_voucher,
]


@pytest.mark.parametrize("inject", FAULTS, ids=[f.__name__ for f in FAULTS])
def test_each_injected_fault_is_found_and_named_and_nothing_else(
    world: World, inject: Callable[[World], Found],
) -> None:
    world.populate()
    expected = inject(world)
    breaks = world.everything()
    assert found(breaks) == expected
    assert all(b.label == b.kind.label and b.label for b in breaks)


def test_all_five_faults_at_once_are_each_found(world: World) -> None:
    world.populate()
    expected: Found = set()
    for inject in FAULTS:
        expected |= inject(world)
    assert found(world.everything()) == expected


def test_a_clean_day_reports_nothing_in_any_layer(world: World) -> None:
    world.populate()
    assert world.everything() == []


def test_an_empty_province_reports_nothing(world: World) -> None:
    assert world.everything() == []
