"""Layer 3 for refunds (退款): finance's refund notices (2203 direct, 2204 authorized) against
the banks' refund applications (2302), those against the treasury's receipt of the money, and
the treasury's allocation refunds (3208) against finance's — refund by refund, then in total.

The world's day (``reconcile_world.World.populate``) holds an authorized refund (A0003), a
direct refund (D0002) and an allocation refund (S0002), all consistent; each test breaks one
ledger the way a fault would and checks what every layer then names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reconcile_world import BANK, FIN, PBOC, UNIT, World, make_world
from sqlalchemy import select

from guoku.reconcile import Break, BreakKind, layer3
from guoku.store.tables import ledger_entries

K = BreakKind
Found = set[tuple[int, BreakKind, str | None]]

A_APPLICATION, A_NOTICE = "2302/2024/2302-A0003/v1", "2204/2024/2204-A0003/v1"
D_APPLICATION, D_NOTICE = "2302/2024/2302-D0002/v1", "2203/2024/2203-D0002/v1"
ALLOCATION_REFUND = "3208/2024/3208-S0002/v1"


def pairs(breaks: list[Break]) -> list[tuple[BreakKind, str, str, str | None]]:
    return [(b.kind, b.left, b.right, b.voucher_no) for b in breaks]


def found(breaks: list[Break]) -> Found:
    return {(int(b.layer), b.kind, b.voucher_no) for b in breaks}


def test_the_clean_day_has_refunds_of_each_flow_and_layer_3_reports_nothing(
    world: World,
) -> None:
    world.populate()
    for node, account in ((world.bank, "refund_returned"), (world.pboc, "refund_received"),
                          (world.finance, "authorized_refunded"),
                          (world.finance, "direct_refunded"),
                          (world.finance, "allocation_refunded")):
        with node.engine.connect() as conn:
            assert conn.execute(select(ledger_entries.c.id).where(
                ledger_entries.c.account == account)).first() is not None, account
    assert world.layer3() == []
    assert world.everything() == []


# --- one fault at a time: every layer's view --------------------------------------------------


def refund_amount_changed_at_the_bank(w: World) -> Found:
    w.bank.set_posting(A_APPLICATION, amount_fen=9_800)
    return {(2, K.AMOUNT_MISMATCH, "2302-A0003"),
            (3, K.AMOUNT_MISMATCH, "2204-A0003"), (3, K.AMOUNT_MISMATCH, "2302-A0003"),
            (3, K.TOTAL_MISMATCH, None)}


def refund_amount_changed_at_finance(w: World) -> Found:
    w.finance.set_posting(D_NOTICE, amount_fen=4_000)
    return {(2, K.AMOUNT_MISMATCH, "2203-D0002"), (3, K.AMOUNT_MISMATCH, "2203-D0002"),
            (3, K.TOTAL_MISMATCH, None)}


def refund_booked_at_the_bank_never_received_by_the_treasury(w: World) -> Found:
    """The bank booked a refund of payment A0001 whose application never left it: its copy
    stays sent (in flight past the grace period), the treasury has neither copy nor posting,
    and finance, never notified, booked nothing."""
    ref = w.bank.voucher("2302", "2302-A0001", "out", "sent", 12_800, BANK, PBOC)
    w.bank.post(BANK, "refund_returned", ref, 12_800, agency="")
    return {(1, K.MISSING, "2302-A0001"), (2, K.STATUS_MISMATCH, "2302-A0001"),
            (3, K.EXTRA, "2302-A0001"), (3, K.MISSING, "2302-A0001"),
            (3, K.TOTAL_MISMATCH, None)}


def refund_booked_twice_by_finance(w: World) -> Found:
    """Finance books the authorized refund of A0003 a second time, under a version of the
    notice that does not exist: the same payment, refunded twice in its books."""
    w.finance.post(FIN, "authorized_refunded", "2204/2024/2204-A0003/v2", 9_900)
    return {(2, K.DUPLICATE_BOOKING, "2204-A0003"), (3, K.DUPLICATE_BOOKING, "2204-A0003"),
            (3, K.TOTAL_MISMATCH, None)}


def refund_booked_twice_by_the_bank(w: World) -> Found:
    w.bank.post(BANK, "refund_returned", "2302/2024/2302-D0002/v2", 4_400, agency="")
    return {(2, K.DUPLICATE_BOOKING, "2302-D0002"), (3, K.DUPLICATE_BOOKING, "2302-D0002"),
            (3, K.MISSING, "2302-D0002"), (3, K.TOTAL_MISMATCH, None)}


def allocation_refund_never_booked_by_finance(w: World) -> Found:
    w.finance.drop_posting(ALLOCATION_REFUND)
    return {(2, K.UNBOOKED, "3208-S0002"), (3, K.MISSING, "3208-S0002"),
            (3, K.TOTAL_MISMATCH, None)}


FAULTS: list[Callable[[World], Found]] = [
    refund_amount_changed_at_the_bank, refund_amount_changed_at_finance,
    refund_booked_at_the_bank_never_received_by_the_treasury, refund_booked_twice_by_finance,
    refund_booked_twice_by_the_bank, allocation_refund_never_booked_by_finance,
]


@pytest.mark.parametrize("inject", FAULTS, ids=[f.__name__ for f in FAULTS])
def test_each_refund_fault_is_found_and_named_and_nothing_else(
    world: World, inject: Callable[[World], Found],
) -> None:
    world.populate()
    expected = inject(world)
    breaks = world.everything()
    assert found(breaks) == expected, [str(b) for b in breaks]
    assert all(b.label == b.kind.label and b.label for b in breaks)


# --- what layer 3 says, exactly ----------------------------------------------------------------


def test_a_refund_changed_in_the_banks_books_breaks_against_finance_treasury_and_totals(
    world: World,
) -> None:
    world.populate()
    world.bank.set_posting(A_APPLICATION, amount_fen=9_800)
    breaks = world.layer3()
    assert pairs(breaks) == [
        (K.AMOUNT_MISMATCH, "finance refunded", "bank refund returned", "2204-A0003"),
        (K.AMOUNT_MISMATCH, "bank refund returned", "treasury refund received", "2302-A0003"),
        (K.TOTAL_MISMATCH, "finance refunded", "bank refund returned", None),
        (K.TOTAL_MISMATCH, "bank refund returned", "treasury refund received", None),
    ]
    to_finance, to_treasury, total, _ = breaks
    assert (to_finance.party, to_finance.counterparty, to_finance.left_amount_fen,
            to_finance.right_amount_fen, to_finance.vt_code) == (FIN, BANK, 9_900, 9_800, "2204")
    assert (to_treasury.party, to_treasury.counterparty, to_treasury.account) == (
        BANK, PBOC, "refund_returned")
    assert (total.agency_code, total.fund_type, total.day) == (None, "1", "20240615")
    assert (total.left_amount_fen, total.right_amount_fen) == (9_900 + 4_400, 9_800 + 4_400)


def test_a_refund_at_the_bank_with_no_treasury_counterpart_is_extra_and_missing(
    world: World,
) -> None:
    world.populate()
    world.bank.post(BANK, "refund_returned", "2302/2024/2302-A0001/v1", 12_800, agency="")
    assert pairs(world.layer3()) == [
        (K.EXTRA, "finance refunded", "bank refund returned", "2302-A0001"),
        (K.MISSING, "bank refund returned", "treasury refund received", "2302-A0001"),
        (K.TOTAL_MISMATCH, "finance refunded", "bank refund returned", None),
        (K.TOTAL_MISMATCH, "bank refund returned", "treasury refund received", None),
    ]
    extra, missing = world.layer3()[:2]
    assert (extra.party, extra.counterparty, extra.right_amount_fen) == ("finance", BANK, 12_800)
    assert (missing.party, missing.counterparty) == (BANK, "treasury")


def test_a_duplicated_refund_booking_is_named_on_the_side_that_booked_it_twice(
    world: World,
) -> None:
    world.populate()
    world.finance.post(FIN, "authorized_refunded", "2204/2024/2204-A0003/v2", 9_900)
    dup, total = world.layer3()
    assert (dup.kind, dup.left, dup.right, dup.vt_code, dup.voucher_no, dup.version) == (
        K.DUPLICATE_BOOKING, "finance refunded", "bank refund returned", "2204", "2204-A0003",
        2)
    assert (dup.party, dup.counterparty, dup.left_amount_fen, dup.right_amount_fen) == (
        FIN, "bank", 9_900, None)
    assert "payment 2024/A0003" in dup.detail
    assert (total.kind, total.left_amount_fen, total.right_amount_fen) == (
        K.TOTAL_MISMATCH, 9_900 * 2 + 4_400, 9_900 + 4_400)


def test_a_refund_twice_at_the_bank_with_another_amount_pairs_the_one_that_agrees(
    world: World,
) -> None:
    """Two bank postings for one payment's refund, one agreeing with finance: the other is
    the duplicate, whatever the order of their refs."""
    world.populate()
    world.bank.set_posting(D_APPLICATION, amount_fen=4_000)
    world.bank.post(BANK, "refund_returned", "2302/2024/2302-D0002/v2", 4_400, agency="")
    per_refund = [b for b in world.layer3() if b.kind is not K.TOTAL_MISMATCH]
    assert [(b.kind, b.left, b.version, b.right_amount_fen) for b in per_refund] == [
        (K.DUPLICATE_BOOKING, "finance refunded", 1, 4_000),
        (K.AMOUNT_MISMATCH, "bank refund returned", 1, 4_400),
        (K.MISSING, "bank refund returned", 2, None),
    ]


def test_a_refund_notice_numbered_for_no_payment_says_so(world: World) -> None:
    world.populate()
    world.finance.post(FIN, "direct_refunded", "2203/2024/TK-0001/v1", 500)
    [missing, _] = world.layer3()
    assert (missing.kind, missing.voucher_no) == (K.MISSING, "TK-0001")
    world.bank.post(BANK, "refund_returned", "2302/2024/TK-0002/v1", 600, agency="")
    extra = next(b for b in world.layer3() if b.voucher_no == "TK-0002")
    assert "does not name a payment as 2302-<no>" in extra.detail


def test_an_allocation_refund_the_treasury_booked_differently_breaks_by_unit(
    world: World,
) -> None:
    world.populate()
    world.pboc.set_posting(ALLOCATION_REFUND, amount_fen=29_000)
    by_voucher, by_unit = world.layer3()
    assert (by_voucher.kind, by_voucher.left, by_voucher.right, by_voucher.voucher_no) == (
        K.AMOUNT_MISMATCH, "treasury allocation refunded", "finance allocation refunded",
        "3208-S0002")
    assert (by_unit.kind, by_unit.agency_code, by_unit.party, by_unit.counterparty) == (
        K.TOTAL_MISMATCH, UNIT, PBOC, FIN)


def test_a_refund_of_another_day_is_not_read(world: World) -> None:
    world.populate()
    world.bank.set_posting(A_APPLICATION, amount_fen=9_800)
    assert world.layer3(day="20240616") == []
    assert len(world.layer3(day="20240615")) == 4


def test_refunds_through_two_banks_each_matched_and_a_refund_booked_by_both_is_named(
    world: World,
) -> None:
    """Finance pays through two banks; each refunds what it paid. A refund application both
    banks booked is a duplicate across the banks' books (the SQL join counts a ref that
    repeats across ledgers)."""
    world.populate()
    abc = world.databases.node("bank-abc", ("B-ABC",))
    f, p = world.finance, world.pboc
    f.post(UNIT, "authorized_paid", "8202/2024/C0001/v1", 2_000)
    abc.post("B-ABC", "advanced", "8202/2024/C0001/v1", 2_000)
    p.post(PBOC, "cleared", "2301/2024/2301-C0001/v1", 2_000, agency="")
    abc.post("B-ABC", "refund_returned", "2302/2024/2302-C0001/v1", 2_000, agency="")
    p.post(PBOC, "refund_received", "2302/2024/2302-C0001/v1", 2_000, agency="")
    f.post(FIN, "authorized_refunded", "2204/2024/2204-C0001/v1", 2_000)
    banks = [world.bank.engine, abc.engine]
    method = world.method
    assert list(layer3(f.engine, banks, p.engine, method=method)) == []  # type: ignore[arg-type]
    abc.post("B-ABC", "refund_returned", A_APPLICATION, 9_900, agency="")
    breaks = list(layer3(f.engine, banks, p.engine, method=method))  # type: ignore[arg-type]
    assert pairs([b for b in breaks if b.kind is not K.TOTAL_MISMATCH]) == [
        (K.DUPLICATE_BOOKING, "finance refunded", "bank refund returned", "2302-A0003"),
        (K.DUPLICATE_BOOKING, "bank refund returned", "treasury refund received",
         "2302-A0003"),
    ]
    # the postings of one ref are taken in row order: B-ABC's agrees, B-ICBC's is left over
    assert (breaks[0].party, breaks[0].counterparty) == ("finance", BANK)
    assert (breaks[1].party, breaks[1].counterparty) == (BANK, "treasury")


# --- both ways of reading ----------------------------------------------------------------------


def test_sql_and_merge_name_the_same_refund_breaks_in_the_same_order(
    tmp_path: Path, pg_url: str,
) -> None:
    with make_world(tmp_path, pg_url, "sql") as w:
        w.populate()
        for inject in FAULTS:
            inject(w)
        f, b, p = w.finance.engine, w.bank.engine, w.pboc.engine
        joined = list(layer3(f, b, p, method="sql"))
        merged = list(layer3(f, b, p, method="merge"))
        assert joined == merged
        assert {x.kind for x in joined} == {K.AMOUNT_MISMATCH, K.EXTRA, K.MISSING,
                                            K.DUPLICATE_BOOKING, K.TOTAL_MISMATCH}
