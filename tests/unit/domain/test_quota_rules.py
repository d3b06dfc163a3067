"""The quota ledger's rules: no payment exceeds the remaining quota, refunds restore, every change
names its voucher, and the balance is always the sum of its entries."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from guoku.domain.errors import AmountInvalid, Conflict, GuokuError, ValidationError
from guoku.domain.money import MAX_FEN, Amount
from guoku.domain.quota import (
    EFFECTS,
    MAX_REF,
    OUTCOME_OPS,
    HoldNotOpen,
    HoldState,
    LedgerMismatch,
    Outcome,
    PaymentHold,
    QuotaBalance,
    QuotaEntry,
    QuotaExceeded,
    QuotaKey,
    QuotaOp,
    QuotaReplayMismatch,
    RefundExceedsSpent,
    apply,
    hold_of,
    replay,
)

KEY = QuotaKey("533103", 2024, "103001", "1", "2010101", 3)
YUAN = 100
REFUSALS = (QuotaExceeded, RefundExceedsSpent, HoldNotOpen)


def fen(n: int) -> Amount:
    return Amount(n)


def issued(amount_fen: int) -> QuotaBalance:
    return apply(KEY, QuotaBalance.empty(), QuotaOp.ISSUE, fen(amount_fen), "5105/Q1").after


# --- the key ---------------------------------------------------------------------------------


def test_a_key_reads_as_division_year_unit_fund_classification_month() -> None:
    assert str(KEY) == "533103/2024/103001/1/2010101/03"


@pytest.mark.parametrize(
    "changes",
    [
        {"admdiv": "53310"},
        {"admdiv": "033103"},
        {"year": 1999},
        {"year": "2024"},
        {"year": True},
        {"month": 0},
        {"month": 13},
        {"month": "03"},
        {"agency_code": ""},
        {"agency_code": "a b"},
        {"fund_type": "x" * 43},
        {"exp_func": "201 01"},
    ],
)
def test_a_malformed_key_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        dataclasses.replace(KEY, **changes)


# --- issue, hold, refuse ---------------------------------------------------------------------


def test_issued_quota_is_available() -> None:
    balance = issued(1000 * YUAN)
    assert balance == QuotaBalance.of_fen(1000 * YUAN, 0, 0)
    assert balance.available == fen(1000 * YUAN)


def test_a_payment_holds_its_amount_at_once() -> None:
    entry = apply(KEY, issued(1000 * YUAN), QuotaOp.HOLD, fen(300 * YUAN), "8202/P1")
    assert entry.after == QuotaBalance.of_fen(1000 * YUAN, 300 * YUAN, 0)
    assert entry.after.available == fen(700 * YUAN)
    assert (entry.key, entry.op, entry.voucher_ref) == (KEY, QuotaOp.HOLD, "8202/P1")


def test_payment_over_remaining_quota_is_refused() -> None:
    balance = apply(KEY, issued(1000 * YUAN), QuotaOp.HOLD, fen(900 * YUAN), "8202/P1").after
    with pytest.raises(QuotaExceeded) as refused:
        apply(KEY, balance, QuotaOp.HOLD, fen(100 * YUAN + 1), "8202/P2")
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert refused.value.details["available"] == "100.00"
    assert refused.value.details["amount"] == "100.01"
    assert refused.value.details["voucher_ref"] == "8202/P2"
    assert refused.value.details["key"] == str(KEY)


def test_payment_of_exactly_the_remaining_quota_is_allowed() -> None:
    entry = apply(KEY, issued(1000 * YUAN), QuotaOp.HOLD, fen(1000 * YUAN), "8202/P1")
    assert entry.after.available == fen(0)


def test_a_key_without_issued_quota_refuses_every_payment() -> None:
    with pytest.raises(QuotaExceeded):
        apply(KEY, QuotaBalance.empty(), QuotaOp.HOLD, fen(1), "8202/P1")


@pytest.mark.parametrize("amount", [Amount(0), Amount(-100), 100, Decimal("1.00"), 1.0])
def test_an_amount_must_be_positive_fen(amount: object) -> None:
    with pytest.raises(AmountInvalid):
        apply(KEY, issued(1000), QuotaOp.HOLD, amount, "8202/P1")  # type: ignore[arg-type]


@pytest.mark.parametrize("ref", ["", "   ", "x" * (MAX_REF + 1)])
def test_every_operation_names_its_voucher(ref: str) -> None:
    with pytest.raises(ValidationError):
        apply(KEY, issued(1000), QuotaOp.HOLD, fen(1), ref)


def test_only_a_refund_names_the_payment_it_gives_back_for() -> None:
    with pytest.raises(ValidationError):
        apply(KEY, issued(1000), QuotaOp.HOLD, fen(1), "8202/P1", payment_ref="8202/P0")
    spent = QuotaBalance.of_fen(1000, 0, 500)
    with pytest.raises(ValidationError):
        apply(KEY, spent, QuotaOp.REFUND, fen(1), "2204/R1")


def test_issuing_beyond_the_largest_amount_is_refused() -> None:
    with pytest.raises(AmountInvalid):
        apply(KEY, issued(MAX_FEN), QuotaOp.ISSUE, fen(1), "5105/Q2")


# --- settle, release, refund, reduce ---------------------------------------------------------


def test_a_paid_hold_becomes_spent() -> None:
    held = QuotaBalance.of_fen(1000, 300, 0)
    assert apply(KEY, held, QuotaOp.SETTLE, fen(300), "8202/P1").after == QuotaBalance.of_fen(
        1000, 0, 300
    )


def test_a_released_hold_is_available_again() -> None:
    held = QuotaBalance.of_fen(1000, 300, 0)
    after = apply(KEY, held, QuotaOp.RELEASE, fen(300), "8202/P1").after
    assert after == QuotaBalance.of_fen(1000, 0, 0)
    assert after.available == fen(1000)


@pytest.mark.parametrize("op", [QuotaOp.SETTLE, QuotaOp.RELEASE])
def test_nothing_is_settled_or_released_beyond_what_is_held(op: QuotaOp) -> None:
    with pytest.raises(HoldNotOpen):
        apply(KEY, QuotaBalance.of_fen(1000, 300, 0), op, fen(301), "8202/P1")


def test_refund_restores_quota() -> None:
    spent = QuotaBalance.of_fen(1000, 0, 600)
    after = apply(KEY, spent, QuotaOp.REFUND, fen(200), "2204/R1", payment_ref="8202/P1").after
    assert after == QuotaBalance.of_fen(1000, 0, 400)
    assert after.available == fen(600)


def test_a_refund_never_exceeds_what_was_spent() -> None:
    with pytest.raises(RefundExceedsSpent) as refused:
        apply(
            KEY,
            QuotaBalance.of_fen(1000, 300, 600),
            QuotaOp.REFUND,
            fen(601),
            "2204/R1",
            payment_ref="8202/P1",
        )
    assert refused.value.details["spent"] == "6.00"


def test_reduce_takes_back_only_unused_quota() -> None:
    balance = QuotaBalance.of_fen(1000, 300, 200)
    assert apply(KEY, balance, QuotaOp.REDUCE, fen(500), "5105/Q2").after == (
        QuotaBalance.of_fen(500, 300, 200)
    )
    with pytest.raises(QuotaExceeded):
        apply(KEY, balance, QuotaOp.REDUCE, fen(501), "5105/Q2")


def test_a_balance_that_is_overdrawn_cannot_even_be_built() -> None:
    with pytest.raises(AssertionError):
        QuotaBalance.of_fen(100, 60, 41)
    with pytest.raises(AssertionError):
        QuotaBalance.of_fen(100, -1, 0)


@pytest.mark.parametrize("op", list(QuotaOp))
def test_every_operation_may_move_up_to_its_limit_and_not_one_fen_more(op: QuotaOp) -> None:
    assert set(EFFECTS) == set(QuotaOp)
    balance = QuotaBalance.of_fen(1000, 300, 200)
    limit = balance.limit(op)
    if limit is None:
        assert op is QuotaOp.ISSUE
        return
    ref, payment = ("R", "P") if op is QuotaOp.REFUND else ("V", None)
    apply(KEY, balance, op, limit, ref, payment_ref=payment)
    with pytest.raises(REFUSALS):
        apply(KEY, balance, op, limit + fen(1), ref, payment_ref=payment)


def test_quota_refusals_are_guoku_errors_with_stable_codes() -> None:
    codes = {
        cls.code
        for cls in (
            QuotaExceeded,
            RefundExceedsSpent,
            HoldNotOpen,
            QuotaReplayMismatch,
            LedgerMismatch,
        )
    }
    assert codes == {
        "QUOTA_EXCEEDED",
        "REFUND_EXCEEDS_SPENT",
        "QUOTA_HOLD_NOT_OPEN",
        "QUOTA_REPLAY_MISMATCH",
        "QUOTA_LEDGER_MISMATCH",
    }
    assert issubclass(QuotaExceeded, GuokuError)
    assert issubclass(HoldNotOpen, Conflict)
    assert issubclass(QuotaReplayMismatch, Conflict)


# --- one payment's hold and its outcome ------------------------------------------------------


def open_hold(amount_fen: int = 300) -> PaymentHold:
    return PaymentHold(KEY, "8202/P1", fen(amount_fen))


def test_every_outcome_has_one_row_in_the_outcome_table() -> None:
    assert set(OUTCOME_OPS) == set(Outcome)
    assert OUTCOME_OPS[Outcome.INDETERMINATE] is None


def test_an_indeterminate_outcome_keeps_the_hold() -> None:
    hold = open_hold()
    assert hold.close(Outcome.INDETERMINATE) == (hold, None)


@pytest.mark.parametrize("outcome", [Outcome.RETURNED, Outcome.FAILED, Outcome.VOIDED])
def test_a_returned_failed_or_voided_payment_releases_its_hold(outcome: Outcome) -> None:
    after, op = open_hold().close(outcome)
    assert (after.state, op) == (HoldState.RELEASED, QuotaOp.RELEASE)


def test_a_paid_payment_settles_its_hold() -> None:
    after, op = open_hold().close(Outcome.PAID)
    assert (after.state, op) == (HoldState.PAID, QuotaOp.SETTLE)


@pytest.mark.parametrize("definite", [Outcome.PAID, Outcome.RETURNED])
def test_only_a_definite_outcome_ends_an_indeterminate_hold(definite: Outcome) -> None:
    hold, op = open_hold().close(Outcome.INDETERMINATE)
    hold, op = hold.close(Outcome.INDETERMINATE)
    assert (hold.state, op) == (HoldState.HELD, None)
    hold, op = hold.close(definite)
    assert op is OUTCOME_OPS[definite]


def test_the_same_outcome_twice_books_once() -> None:
    paid, _ = open_hold().close(Outcome.PAID)
    assert paid.close(Outcome.PAID) == (paid, None)
    assert paid.close(Outcome.INDETERMINATE) == (paid, None)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (Outcome.PAID, Outcome.RETURNED),
        (Outcome.RETURNED, Outcome.PAID),
        (Outcome.VOIDED, Outcome.PAID),
    ],
)
def test_a_closed_hold_does_not_close_the_other_way(first: Outcome, then: Outcome) -> None:
    closed, _ = open_hold().close(first)
    with pytest.raises(HoldNotOpen):
        closed.close(then)


def test_partial_refunds_of_one_payment_add_up_to_at_most_what_it_paid() -> None:
    paid, _ = open_hold(300).close(Outcome.PAID)
    paid = paid.refund(fen(100), "2204/R1").refund(fen(200), "2204/R2")
    assert (paid.refunded, paid.refundable) == (fen(300), fen(0))
    with pytest.raises(RefundExceedsSpent):
        paid.refund(fen(1), "2204/R3")


@pytest.mark.parametrize("outcome", [Outcome.INDETERMINATE, Outcome.RETURNED])
def test_a_payment_that_was_not_paid_cannot_be_refunded(outcome: Outcome) -> None:
    hold, _ = open_hold().close(outcome)
    with pytest.raises(RefundExceedsSpent):
        hold.refund(fen(1), "2204/R1")


def test_the_hold_of_a_payment_is_read_back_from_its_entries() -> None:
    e1 = apply(KEY, issued(1000), QuotaOp.HOLD, fen(300), "8202/P1")
    e2 = apply(KEY, e1.after, QuotaOp.SETTLE, fen(300), "8202/P1")
    e3 = apply(KEY, e2.after, QuotaOp.REFUND, fen(120), "2204/R1", payment_ref="8202/P1")
    hold = hold_of([e1, e2, e3], "8202/P1")
    assert hold == PaymentHold(KEY, "8202/P1", fen(300), HoldState.PAID, fen(120))
    assert hold_of([e1, e2, e3], "8202/P9") is None
    with pytest.raises(LedgerMismatch):
        hold_of([e1, e1], "8202/P1")


# --- the ledger adds up ----------------------------------------------------------------------


def test_replay_finds_an_entry_whose_recorded_balance_was_altered() -> None:
    e1 = apply(KEY, QuotaBalance.empty(), QuotaOp.ISSUE, fen(1000), "5105/Q1")
    e2 = apply(KEY, e1.after, QuotaOp.HOLD, fen(300), "8202/P1")
    assert replay([e1, e2]) == e2.after
    forged = dataclasses.replace(e2, amount=fen(30))
    with pytest.raises(LedgerMismatch, match="entry 2"):
        replay([e1, forged])
    with pytest.raises(LedgerMismatch, match="entry 1"):
        replay([e2])


def test_a_redelivery_is_recognised_only_when_it_asks_for_the_same_thing() -> None:
    entry = apply(KEY, issued(1000), QuotaOp.HOLD, fen(300), "8202/P1")
    assert entry.same_operation(KEY, fen(300), None)
    assert not entry.same_operation(KEY, fen(301), None)
    assert not entry.same_operation(dataclasses.replace(KEY, month=4), fen(300), None)


# --- properties ------------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=10**6)
ops = st.sampled_from(list(QuotaOp))


def _run(steps: list[tuple[QuotaOp, int]]) -> tuple[QuotaBalance, list[QuotaEntry]]:
    balance, entries = QuotaBalance.empty(), []
    for n, (op, amount) in enumerate(steps):
        ref = f"V{n}"
        try:
            entry = apply(
                KEY,
                balance,
                op,
                fen(amount),
                ref,
                payment_ref="P" if op is QuotaOp.REFUND else None,
            )
        except REFUSALS:
            continue
        entries.append(entry)
        balance = entry.after
    return balance, entries


@given(st.lists(st.tuples(ops, amounts), max_size=60))
def test_no_sequence_of_operations_makes_any_part_negative(
    steps: list[tuple[QuotaOp, int]],
) -> None:
    balance, entries = _run(steps)
    for entry in entries:
        after = entry.after
        assert min(after.available.fen, after.held.fen, after.spent.fen, after.issued.fen) >= 0
    assert balance.available.fen >= 0


@given(st.lists(st.tuples(ops, amounts), max_size=60))
def test_the_entries_always_add_up_to_the_balance(steps: list[tuple[QuotaOp, int]]) -> None:
    balance, entries = _run(steps)
    assert replay(entries) == balance
    signed = [0, 0, 0]
    for entry in entries:
        for i, factor in enumerate(EFFECTS[entry.op]):
            signed[i] += factor * entry.amount.fen
    assert QuotaBalance.of_fen(*signed) == balance


balances = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)).map(
    lambda t: QuotaBalance.of_fen(t[0] + t[1] + t[2], t[1], t[2])
)


@given(balances, amounts)
def test_a_refund_is_accepted_exactly_when_it_does_not_exceed_spent(
    balance: QuotaBalance, amount: int
) -> None:
    try:
        after = apply(KEY, balance, QuotaOp.REFUND, fen(amount), "R", payment_ref="P").after
    except RefundExceedsSpent:
        assert amount > balance.spent.fen
    else:
        assert amount <= balance.spent.fen
        assert after.available == balance.available + fen(amount)


@given(balances, amounts)
def test_a_hold_is_accepted_exactly_when_it_fits_the_available_quota(
    balance: QuotaBalance, amount: int
) -> None:
    try:
        after = apply(KEY, balance, QuotaOp.HOLD, fen(amount), "P").after
    except QuotaExceeded:
        assert amount > balance.available.fen
    else:
        assert after.available == balance.available - fen(amount)


@given(
    st.lists(amounts, min_size=1, max_size=20).flatmap(
        lambda xs: st.tuples(st.just(xs), st.permutations(xs))
    )
)
def test_the_order_of_independent_holds_does_not_matter(
    pair: tuple[list[int], list[int]],
) -> None:
    original, shuffled = pair
    start = issued(sum(original))

    def hold_all(xs: list[int]) -> QuotaBalance:
        balance = start
        for n, amount in enumerate(xs):
            balance = apply(KEY, balance, QuotaOp.HOLD, fen(amount), f"P{n}").after
        return balance

    assert (
        hold_all(original)
        == hold_all(shuffled)
        == QuotaBalance.of_fen(sum(original), sum(original), 0)
    )


@given(st.integers(1, 10**5), st.lists(amounts, max_size=30))
def test_competing_holds_never_take_more_than_was_issued(quota: int, requests: list[int]) -> None:
    balance = issued(quota)
    accepted = 0
    for n, amount in enumerate(requests):
        try:
            balance = apply(KEY, balance, QuotaOp.HOLD, fen(amount), f"P{n}").after
        except QuotaExceeded:
            continue
        accepted += amount
    assert balance.held.fen == accepted <= quota


class PaymentsAgainstOneQuota(RuleBasedStateMachine):
    """Unit payments, outcomes (indeterminate included) and refunds against one key, compared
    with a plain model: held is the sum of open holds, spent what paid payments kept."""

    def __init__(self) -> None:
        super().__init__()
        self.balance = QuotaBalance.empty()
        self.entries: list[QuotaEntry] = []
        self.holds: dict[str, PaymentHold] = {}
        self.issued = 0
        self.n = 0

    def _book(self, op: QuotaOp, amount: Amount, ref: str, payment_ref: str | None = None) -> None:
        entry = apply(KEY, self.balance, op, amount, ref, payment_ref=payment_ref)
        self.entries.append(entry)
        self.balance = entry.after

    def _ref(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    @rule(amount=amounts)
    def issue(self, amount: int) -> None:
        self._book(QuotaOp.ISSUE, fen(amount), self._ref("Q"))
        self.issued += amount

    @rule(amount=amounts)
    def reduce(self, amount: int) -> None:
        try:
            self._book(QuotaOp.REDUCE, fen(amount), self._ref("D"))
        except QuotaExceeded:
            assert amount > self.balance.available.fen
            return
        self.issued -= amount

    @rule(amount=amounts)
    def pay(self, amount: int) -> None:
        ref = self._ref("P")
        try:
            self._book(QuotaOp.HOLD, fen(amount), ref)
        except QuotaExceeded:
            assert amount > self.balance.available.fen
            return
        self.holds[ref] = PaymentHold(KEY, ref, fen(amount))

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)))
    def outcome(self, data: st.DataObject, outcome: Outcome) -> None:
        ref = data.draw(st.sampled_from(sorted(self.holds)))
        try:
            after, op = self.holds[ref].close(outcome)
        except HoldNotOpen:
            assert self.holds[ref].state is not HoldState.HELD
            return
        if op is not None:
            self._book(op, after.amount, ref)
        self.holds[ref] = after

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), amount=amounts)
    def refund(self, data: st.DataObject, amount: int) -> None:
        ref = data.draw(st.sampled_from(sorted(self.holds)))
        refund_ref = self._ref("R")
        try:
            after = self.holds[ref].refund(fen(amount), refund_ref)
        except RefundExceedsSpent:
            return
        self._book(QuotaOp.REFUND, fen(amount), refund_ref, payment_ref=ref)
        self.holds[ref] = after

    @invariant()
    def balance_matches_the_payments(self) -> None:
        held = sum(h.amount.fen for h in self.holds.values() if h.state is HoldState.HELD)
        spent = sum(h.refundable.fen for h in self.holds.values())
        assert self.balance == QuotaBalance.of_fen(self.issued, held, spent)

    @invariant()
    def entries_add_up_and_each_names_a_voucher(self) -> None:
        assert replay(self.entries) == self.balance
        assert all(e.voucher_ref for e in self.entries)

    @invariant()
    def each_payment_reads_back_from_the_entries(self) -> None:
        for ref, hold in list(self.holds.items())[-3:]:
            assert hold_of(self.entries, ref) == hold


PaymentsAgainstOneQuota.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_payments_against_one_quota = PaymentsAgainstOneQuota.TestCase
