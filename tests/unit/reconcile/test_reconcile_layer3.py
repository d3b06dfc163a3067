"""Layer 3, business to business: finance paid, the banks advanced, the treasury cleared —
payment by payment, then in total by unit, fund type and day."""

from __future__ import annotations

from pathlib import Path

import pytest
from reconcile_world import ADMDIV, BANK, FIN, PBOC, UNIT, World, make_world

from guoku.reconcile import Break, BreakKind, Layer, layer1, layer2, layer3

K = BreakKind


def pairs(breaks: list[Break]) -> list[tuple[BreakKind, str, str, str | None]]:
    return [(b.kind, b.left, b.right, b.voucher_no) for b in breaks]


def test_an_advance_changed_in_the_banks_books_breaks_both_ways_and_in_total(
    world: World,
) -> None:
    world.populate()
    world.bank.set_posting("8202/2024/A0002/v1", amount_fen=50_100)
    assert pairs(world.layer3()) == [
        (K.AMOUNT_MISMATCH, "finance paid", "bank advanced", "A0002"),
        (K.AMOUNT_MISMATCH, "bank advanced", "treasury cleared", "A0002"),
        (K.TOTAL_MISMATCH, "finance paid", "bank advanced", None),
        (K.TOTAL_MISMATCH, "bank advanced", "treasury cleared", None),
    ]
    by_unit, by_fund = world.layer3()[2:]
    assert (by_unit.layer, by_unit.admdiv, by_unit.agency_code, by_unit.fund_type,
            by_unit.day) == (Layer.BUSINESS, ADMDIV, UNIT, "1", "20240615")
    assert by_unit.right_amount_fen - by_unit.left_amount_fen == 100  # type: ignore[operator]
    assert (by_fund.agency_code, by_fund.fund_type, by_fund.party, by_fund.counterparty) == (
        None, "1", BANK, PBOC)


def test_a_payment_the_bank_advanced_but_the_treasury_never_cleared_is_missing(
    world: World,
) -> None:
    world.populate()
    world.pboc.drop_posting("2301/2024/2301-A0001/v1")
    per_voucher = [b for b in world.layer3() if b.kind is not K.TOTAL_MISMATCH]
    [brk] = per_voucher
    assert (brk.kind, brk.left, brk.right, brk.party, brk.counterparty) == (
        K.MISSING, "bank advanced", "treasury cleared", BANK, "treasury")
    assert (brk.vt_code, brk.voucher_no, brk.left_amount_fen, brk.agency_code) == (
        "8202", "A0001", 12_800, UNIT)


def test_a_clearing_with_no_advance_is_extra_and_says_when_its_number_names_no_payment(
    world: World,
) -> None:
    world.pboc.post(PBOC, "cleared", "2301/2024/2301-A0777/v1", 70, agency="")
    world.pboc.post(PBOC, "cleared", "2301/2024/BATCH-0001/v1", 90, agency="")
    per_voucher = [b for b in world.layer3() if b.kind is not K.TOTAL_MISMATCH]
    assert [(b.kind, b.voucher_no) for b in per_voucher] == [
        (K.EXTRA, "2301-A0777"), (K.EXTRA, "BATCH-0001")]
    assert "does not name a payment" in per_voucher[1].detail
    assert "does not name" not in per_voucher[0].detail


def test_a_clearing_booked_twice_under_another_version_shows_in_the_totals(
    world: World,
) -> None:
    """Both clearings name payment A0001 and agree with its advance in amount. The payment
    checks do not count each side's postings per key (``Check.counted``: 1.2-1.4 s at 10^6),
    so the agreeing duplicate is named by the total of its division, fund type and day; a
    refund's duplicate is named voucher by voucher (test_reconcile_refunds)."""
    world.populate()
    world.pboc.post(PBOC, "cleared", "2301/2024/2301-A0001/v2", 12_800, agency="")
    [total] = world.layer3()
    assert (total.kind, total.left, total.right, total.fund_type, total.day) == (
        K.TOTAL_MISMATCH, "bank advanced", "treasury cleared", "1", "20240615")
    assert total.right_amount_fen - total.left_amount_fen == 12_800  # type: ignore[operator]
    world.pboc.set_posting("2301/2024/2301-A0001/v2", amount_fen=12_000)
    per_voucher = [b for b in world.layer3() if b.kind is not K.TOTAL_MISMATCH]
    assert [(b.kind, b.voucher_no, b.left_amount_fen, b.right_amount_fen)
            for b in per_voucher] == [(K.AMOUNT_MISMATCH, "A0001", 12_800, 12_000)]


def test_a_payment_finance_booked_that_no_bank_advanced_is_missing(world: World) -> None:
    world.populate()
    world.finance.post(FIN, "direct_paid", "5201/2024/D0404/v1", 4_000)
    assert pairs(world.layer3()) == [
        (K.MISSING, "finance paid", "bank advanced", "D0404"),
        (K.TOTAL_MISMATCH, "finance paid", "bank advanced", None),
    ]


def test_an_allocation_the_treasury_booked_differently_breaks(world: World) -> None:
    world.populate()
    world.pboc.set_posting("5207/2024/S0001/v1", amount_fen=79_000)
    assert pairs(world.layer3()) == [
        (K.AMOUNT_MISMATCH, "finance allocated", "treasury allocated", "S0001"),
        (K.TOTAL_MISMATCH, "finance allocated", "treasury allocated", None),
    ]


def test_finance_pays_through_several_banks(world: World) -> None:
    world.populate()
    abc = world.databases.node("bank-abc", ("B-ABC",))
    world.finance.voucher("8202", "C0001", "out", "accepted", 2_000, UNIT, "B-ABC")
    world.finance.post(UNIT, "authorized_paid", "8202/2024/C0001/v1", 2_000)
    abc.voucher("8202", "C0001", "in", "accepted", 2_000, UNIT, "B-ABC")
    abc.post("B-ABC", "advanced", "8202/2024/C0001/v1", 2_000)
    world.pboc.post(PBOC, "cleared", "2301/2024/2301-C0001/v1", 2_000, agency="")
    banks = [world.bank.engine, abc.engine]
    f, p = world.finance.engine, world.pboc.engine
    assert list(layer3(f, banks, p, method=world.method)) == []  # type: ignore[arg-type]
    only_icbc = list(layer3(f, world.bank.engine, p, method=world.method))  # type: ignore[arg-type]
    assert [(b.kind, b.voucher_no) for b in only_icbc if b.voucher_no] == [
        (K.MISSING, "C0001"), (K.EXTRA, "2301-C0001")]


def test_only_the_period_asked_for_is_read(world: World) -> None:
    world.populate()
    world.bank.set_posting("8202/2024/A0002/v1", amount_fen=50_100)
    assert world.layer3(day="20240616") == []
    assert len(world.layer3(month="202406")) == 4


# --- both ways of reading --------------------------------------------------------------------


def _break_everything(w: World) -> None:
    """One of every kind of fault, in every layer."""
    w.populate()
    w.finance.voucher("8202", "A0005", "out", "indeterminate", 900, UNIT, BANK)
    w.bank.voucher("8202", "X0001", "in", "received", 900, UNIT, BANK)
    w.bank.set_posting("8202/2024/A0002/v1", amount_fen=50_100)
    w.finance.post(UNIT, "authorized_paid", "8202/2024/A0001/v2", 12_800)
    w.finance.set_voucher("D0001", state="delivered")
    w.finance.post(UNIT, "authorized_paid", "8202/2024/A0404/v1", 5_000)
    w.pboc.drop_posting("2301/2024/2301-A0010/v1")
    w.pboc.post(PBOC, "cleared", "2301/2024/BATCH-0001/v1", 90, agency="")
    w.pboc.set_posting("5207/2024/S0001/v1", amount_fen=1)
    w.bank.post(BANK, "advanced", "5102/2024/E0001/v1", 1_000_000)


def test_joining_in_sql_and_merging_streams_find_the_same_breaks_in_the_same_order(
    tmp_path: Path, pg_url: str,
) -> None:
    with make_world(tmp_path, pg_url, "sql") as w:
        _break_everything(w)
        f, b, p = w.finance, w.bank, w.pboc
        for x, y in ((f, b), (b, p), (f, p)):
            joined = list(layer1(x.engine, x.parties, y.engine, y.parties, method="sql"))
            merged = list(layer1(x.engine, x.parties, y.engine, y.parties, method="merge"))
            assert joined == merged
        joined = list(layer3(f.engine, b.engine, p.engine, method="sql"))
        merged = list(layer3(f.engine, b.engine, p.engine, method="merge"))
        assert joined == merged
        assert len({(x.kind, x.left) for x in joined}) >= 7  # most kinds, both ways


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_layer_finds_what_was_broken(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str,
) -> None:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    with make_world(tmp_path, pg_url, "auto") as w:
        _break_everything(w)
        found = {(int(x.layer), x.kind) for x in w.everything()}
        assert {(1, K.MISSING), (1, K.EXTRA), (1, K.STATUS_MISMATCH)} <= found
        assert {(2, K.AMOUNT_MISMATCH), (2, K.DUPLICATE_BOOKING), (2, K.STATUS_MISMATCH),
                (2, K.BOOKING_WITHOUT_VOUCHER), (2, K.MISBOOKED)} <= found
        assert {(3, K.AMOUNT_MISMATCH), (3, K.MISSING), (3, K.EXTRA),
                (3, K.TOTAL_MISMATCH)} <= found
        assert list(layer2(w.finance.engine, day="20240101")) == []
