"""Layer 1, library to library: each voucher the sender sent against the receiver's copy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from reconcile_world import BANK, DAY, NOW, OLD, RECENT, UNIT, World, make_world

from guoku.domain.errors import ValidationError
from guoku.domain.lifecycle import State
from guoku.reconcile import Break, BreakKind, Layer, NotColocated, layer1
from guoku.reconcile.layer1 import PAIRS, Verdict, verdict


def only(breaks: list[Break]) -> Break:
    assert len(breaks) == 1, breaks
    return breaks[0]


def test_a_dropped_message_is_missing_with_both_sides_named(world: World) -> None:
    world.populate()
    world.finance.voucher("8202", "A0005", "out", "indeterminate", 900, UNIT, BANK)
    brk = only(world.layer1())
    assert (brk.layer, brk.kind, brk.kind.label) == (Layer.LIBRARIES, BreakKind.MISSING,
                                                      "我方有、对方无")
    assert (brk.admdiv, brk.vt_code, brk.st_year, brk.voucher_no, brk.version, brk.day) == (
        "533103", "8202", 2024, "A0005", 1, DAY)
    assert (brk.party, brk.counterparty, brk.left, brk.right) == (
        UNIT, BANK, "sender copy", "receiver copy")
    assert (brk.left_amount_fen, brk.right_amount_fen) == (900, None)
    assert (brk.left_state, brk.right_state) == ("indeterminate", None)
    assert brk.ref == "8202/2024/A0005/v1"


def test_a_voucher_in_flight_is_a_break_only_once_the_grace_period_is_over(
    world: World,
) -> None:
    world.finance.voucher("8202", "A0005", "out", "sent", 900, UNIT, BANK, updated=RECENT)
    assert world.layer1() == []
    assert [b.kind for b in world.layer1(now=NOW + timedelta(minutes=30))] == [
        BreakKind.MISSING]
    assert world.layer1(now=NOW + timedelta(minutes=30), grace=timedelta(hours=1)) == []


def test_a_receipt_on_its_way_becomes_a_status_mismatch_when_it_never_comes(
    world: World,
) -> None:
    world.finance.voucher("8202", "A0005", "out", "delivered", 900, UNIT, BANK,
                          updated=RECENT)
    world.bank.voucher("8202", "A0005", "in", "accepted", 900, UNIT, BANK, updated=RECENT)
    assert world.layer1() == []
    brk = only(world.layer1(now=NOW + timedelta(hours=1)))
    assert (brk.kind, brk.left_state, brk.right_state) == (
        BreakKind.STATUS_MISMATCH, "delivered", "accepted")


def test_copies_that_settled_differently_are_a_status_mismatch_at_once(world: World) -> None:
    world.finance.voucher("8202", "A0005", "out", "accepted", 900, UNIT, BANK, updated=RECENT)
    world.bank.voucher("8202", "A0005", "in", "returned", 900, UNIT, BANK, updated=RECENT)
    brk = only(world.layer1())
    assert (brk.kind, brk.left_state, brk.right_state) == (
        BreakKind.STATUS_MISMATCH, "accepted", "returned")


def test_a_copy_the_sender_never_sent_is_extra(world: World) -> None:
    world.bank.voucher("8202", "A0005", "in", "received", 900, UNIT, BANK)
    brk = only(world.layer1())
    assert (brk.kind, brk.kind.label) == (BreakKind.EXTRA, "对方有、我方无")
    assert (brk.party, brk.counterparty, brk.left_amount_fen, brk.right_amount_fen) == (
        UNIT, BANK, None, 900)


def test_copies_with_different_amounts_name_both_amounts(world: World) -> None:
    world.finance.voucher("8202", "A0005", "out", "accepted", 900, UNIT, BANK)
    world.bank.voucher("8202", "A0005", "in", "received", 901, UNIT, BANK)
    found = {b.kind: b for b in world.layer1()}
    assert set(found) == {BreakKind.AMOUNT_MISMATCH, BreakKind.STATUS_MISMATCH}
    amount = found[BreakKind.AMOUNT_MISMATCH]
    assert (amount.left_amount_fen, amount.right_amount_fen) == (900, 901)


def test_the_other_way_round_is_reconciled_in_the_same_run(world: World) -> None:
    """The bank's vouchers to finance (a daily report) against finance's copies."""
    world.bank.voucher("2205", "R0001", "out", "accepted", 5_000, BANK, "F533103")
    brk = only(world.layer1())
    assert (brk.kind, brk.party, brk.counterparty) == (BreakKind.MISSING, BANK, "F533103")


def test_only_the_period_and_the_parties_asked_for_are_read(world: World) -> None:
    world.finance.voucher("8202", "A0005", "out", "accepted", 900, UNIT, BANK, day="20240616")
    world.finance.voucher("8202", "A0006", "out", "accepted", 900, "U999", BANK)
    assert [b.voucher_no for b in world.layer1()] == ["A0005"]
    assert world.layer1(day=DAY) == []
    assert [b.voucher_no for b in world.layer1(day="20240616")] == ["A0005"]
    assert [b.voucher_no for b in world.layer1(month="202406")] == ["A0005"]
    assert world.layer1(month="202405") == []


def test_breaks_come_in_key_order(world: World) -> None:
    for no in ("A0009", "A0003", "A0007"):
        world.finance.voucher("8202", no, "out", "accepted", 900, UNIT, BANK)
    assert [b.voucher_no for b in world.layer1()] == ["A0003", "A0007", "A0009"]


def test_bad_arguments_are_refused_before_anything_is_read(world: World) -> None:
    f, b = world.finance, world.bank
    for kwargs in ({"day": "2024-06-15"}, {"month": "202413"}, {"day": DAY, "month": "202406"},
                   {"grace": timedelta(minutes=-1)}):
        with pytest.raises(ValidationError):
            list(layer1(f.engine, f.parties, b.engine, b.parties, **kwargs))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        list(layer1(f.engine, "F533103", b.engine, b.parties))
    with pytest.raises(ValidationError):
        list(layer1(f.engine, f.parties, b.engine, b.parties, method="fast"))  # type: ignore[arg-type]


def test_joining_in_sql_needs_one_database(tmp_path: Path) -> None:
    with make_world(tmp_path, None, "sql") as world:
        f, b = world.finance, world.bank
        with pytest.raises(NotColocated):
            list(layer1(f.engine, f.parties, b.engine, b.parties, method="sql"))


# --- the table of verdicts -------------------------------------------------------------------


def test_every_sender_state_has_a_verdict_when_the_receiver_has_no_copy() -> None:
    """``received`` is a receiver's state only; every other state a sender's copy can be in
    says what the receiver should hold."""
    assert {s for s, r in PAIRS if r is None} == {s.value for s in State} - {"received"}


@pytest.mark.parametrize(("sender", "receiver", "expected"), [
    ("accepted", "accepted", Verdict.AGREE),
    ("returned", "returned", Verdict.AGREE),
    ("superseded", "returned", Verdict.AGREE),
    ("void", "returned", Verdict.AGREE),
    ("delivered", "received", Verdict.AGREE),
    ("draft", None, Verdict.AGREE),
    ("failed", None, Verdict.AGREE),
    ("sent", None, Verdict.LATE_MISSING),
    ("indeterminate", None, Verdict.LATE_MISSING),
    ("paper", None, Verdict.LATE_MISSING),
    ("paper", "received", Verdict.LATE_STATUS),
    ("paper", "accepted", Verdict.LATE_STATUS),
    ("delivered", None, Verdict.MISSING),
    ("accepted", None, Verdict.MISSING),
    ("sent", "received", Verdict.LATE_STATUS),
    ("delivered", "accepted", Verdict.LATE_STATUS),
    ("accepted", "received", Verdict.STATUS),
    ("failed", "received", Verdict.STATUS),
    ("draft", "received", Verdict.STATUS),
    (None, "received", Verdict.EXTRA),
])
def test_the_verdict_of_each_pair_of_states(
    sender: str | None, receiver: str | None, expected: Verdict,
) -> None:
    assert verdict(sender, receiver) is expected


def test_old_copies_count_as_old() -> None:
    assert OLD < RECENT
