"""Layer 2, a library against its business ledger: every voucher its rules book, every
posting, both ways."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconcile_world import BANK, FIN, PBOC, UNIT, World, make_world

from guoku.reconcile import Break, BreakKind, Layer, layer2

K = BreakKind


def kinds(breaks: list[Break]) -> list[tuple[BreakKind, str | None, int | None]]:
    return [(b.kind, b.voucher_no, b.version) for b in breaks]


def test_a_paid_voucher_with_no_posting_is_unbooked(world: World) -> None:
    world.populate()
    world.finance.drop_posting("8202/2024/A0001/v1")
    [brk] = world.layer2()
    assert (brk.layer, brk.kind, brk.kind.label) == (Layer.LIBRARY_LEDGER, K.UNBOOKED,
                                                      "有凭证未记账")
    assert (brk.party, brk.counterparty, brk.account, brk.left, brk.right) == (
        UNIT, BANK, "authorized_paid", "voucher", "ledger")
    assert (brk.left_amount_fen, brk.right_amount_fen, brk.left_state) == (
        12_800, None, "accepted")


def test_a_posting_naming_no_voucher_is_a_booking_without_voucher(world: World) -> None:
    world.populate()
    world.bank.post(BANK, "advanced", "8202/2024/A0404/v1", 5_000)
    [brk] = world.layer2()
    assert (brk.kind, brk.kind.label, brk.party, brk.voucher_no, brk.right_amount_fen) == (
        K.BOOKING_WITHOUT_VOUCHER, "有记账无凭证", BANK, "A0404", 5_000)
    assert brk.left_amount_fen is None and brk.left_state is None


def test_a_posting_whose_amount_differs_from_its_voucher_is_an_amount_mismatch(
    world: World,
) -> None:
    world.populate()
    world.bank.set_posting("8202/2024/A0002/v1", amount_fen=50_100)
    [brk] = world.layer2()
    assert (brk.kind, brk.party, brk.left_amount_fen, brk.right_amount_fen) == (
        K.AMOUNT_MISMATCH, BANK, 50_000, 50_100)


def test_one_voucher_booked_under_a_second_account_is_a_duplicate_booking(
    world: World,
) -> None:
    world.populate()
    world.finance.post(UNIT, "direct_paid", "8202/2024/A0001/v1", 12_800)
    [brk] = world.layer2()
    assert (brk.kind, brk.kind.label, brk.account, brk.voucher_no) == (
        K.DUPLICATE_BOOKING, "重复记账", "direct_paid", "A0001")
    assert "another account" in brk.detail


def test_one_voucher_booked_again_under_a_version_that_does_not_exist_is_a_duplicate(
    world: World,
) -> None:
    world.populate()
    world.finance.post(UNIT, "authorized_paid", "8202/2024/A0001/v3", 12_800)
    assert kinds(world.layer2()) == [(K.DUPLICATE_BOOKING, "A0001", 3)]


def test_a_returned_version_booked_beside_the_paid_one_is_a_duplicate(world: World) -> None:
    world.populate()
    world.finance.post(UNIT, "authorized_paid", "8202/2024/A0010/v1", 700)  # v1 superseded
    assert kinds(world.layer2()) == [(K.DUPLICATE_BOOKING, "A0010", 1)]


def test_a_returned_payment_that_is_booked_is_a_status_mismatch(world: World) -> None:
    world.populate()
    world.bank.post(BANK, "advanced", "8202/2024/A0009/v1", 300)
    [brk] = world.layer2()
    assert (brk.kind, brk.party, brk.left_state, brk.voucher_no) == (
        K.STATUS_MISMATCH, BANK, "returned", "A0009")


def test_a_voucher_booked_to_an_account_its_rules_never_give_is_misbooked(
    world: World,
) -> None:
    world.populate()
    world.bank.post(BANK, "advanced", "5102/2024/E0001/v1", 1_000_000)  # a quota notice
    [brk] = world.layer2()
    assert (brk.kind, brk.kind.label, brk.account, brk.left_state) == (
        K.MISBOOKED, "记账科目不符", "advanced", "accepted")


def test_a_sent_quota_notice_is_booked_on_sending_and_a_draft_is_not(world: World) -> None:
    world.finance.voucher("5102", "E0002", "out", "sent", 500, FIN, BANK)
    world.finance.voucher("5102", "E0003", "out", "draft", 500, FIN, BANK)
    assert kinds(world.layer2()) == [(K.UNBOOKED, "E0002", 1)]


def test_a_received_voucher_is_booked_on_receipt(world: World) -> None:
    world.pboc.voucher("9301", "9301-X", "out", "accepted", 10, PBOC, BANK)
    world.bank.voucher("9301", "9301-X", "in", "received", 10, PBOC, BANK)
    [brk] = world.layer2()
    assert (brk.kind, brk.party, brk.account) == (K.UNBOOKED, BANK, "reimbursed")


def test_only_the_parties_and_the_period_asked_for_are_read(world: World) -> None:
    world.populate()
    world.finance.drop_posting("8202/2024/A0001/v1")
    world.finance.drop_posting("5201/2024/D0001/v1")
    f = world.finance.engine
    assert [b.party for b in layer2(f)] == [FIN, UNIT]
    assert [b.party for b in layer2(f, party_codes=[UNIT])] == [UNIT]
    assert list(layer2(f, day="20240616")) == []
    assert len(list(layer2(f, month="202406"))) == 2


def test_a_run_on_a_sqlite_node_locks_no_writer_out(tmp_path: Path) -> None:
    """The node's own engine begins IMMEDIATE; the engine reads without taking that lock."""
    with make_world(tmp_path, None, "merge") as world:
        world.populate()
        world.finance.drop_posting("8202/2024/A0001/v1")
        world.finance.drop_posting("8202/2024/A0002/v1")
        running = layer2(world.finance.engine)
        assert next(running).kind is K.UNBOOKED
        writer = sqlite3.connect(tmp_path / "finance.db", timeout=0.5, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM ledger_entries WHERE voucher_ref LIKE '5102/%'")
        writer.execute("COMMIT")
        writer.close()
        assert [b.voucher_no for b in running] == ["A0002"]  # its snapshot: before the delete
