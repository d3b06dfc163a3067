"""The bank's ledger of advances (垫付) and reimbursements (清算回款)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.bank.ledger import (
    BankLedger,
    EntryKind,
    LedgerEntry,
    LedgerEntryConflict,
    LedgerKey,
    ReimbursementExceedsOutstanding,
)
from guoku.domain.errors import AmountInvalid, ValidationError
from guoku.domain.money import Amount

DAY = date(2026, 3, 2)
KEY = LedgerKey("533103", "533103001", "1", DAY)


def test_an_advance_is_outstanding_until_the_treasury_reimburses_it() -> None:
    ledger = BankLedger()
    ledger.advance("P1", KEY, Amount(150_000))
    ledger.advance("P2", KEY, Amount(50_000))
    assert ledger.balance(KEY).outstanding == Amount(200_000)
    ledger.reimburse("C1#1", KEY, Amount(200_000), DAY + timedelta(days=1))
    bal = ledger.balance(KEY)
    assert (bal.advanced, bal.reimbursed, bal.outstanding) == (
        Amount(200_000), Amount(200_000), Amount(0))
    assert ledger.outstanding() == Amount(0)


def test_the_treasury_never_repays_more_than_was_advanced_for_a_key() -> None:
    ledger = BankLedger()
    ledger.advance("P1", KEY, Amount(100))
    other = LedgerKey("533103", "533103001", "2", DAY)
    ledger.advance("P2", other, Amount(1000))
    with pytest.raises(ReimbursementExceedsOutstanding):
        ledger.reimburse("C1#1", KEY, Amount(101))
    assert ledger.balance(KEY).reimbursed == Amount(0)
    assert len(ledger.entries) == 2


def test_the_same_entry_twice_is_booked_once() -> None:
    ledger = BankLedger()
    entry = ledger.advance("P1", KEY, Amount(100))
    assert ledger.record(entry) is False
    ledger.advance("P1", KEY, Amount(100))
    assert ledger.balance(KEY).advanced == Amount(100)


def test_an_entry_id_with_other_values_is_a_conflict() -> None:
    ledger = BankLedger()
    ledger.advance("P1", KEY, Amount(100))
    with pytest.raises(LedgerEntryConflict):
        ledger.advance("P1", KEY, Amount(200))


@pytest.mark.parametrize(
    ("kind", "booked_on", "amount", "error"),
    [
        (EntryKind.ADVANCE, DAY + timedelta(days=1), 100, ValidationError),
        (EntryKind.REIMBURSEMENT, DAY - timedelta(days=1), 100, ValidationError),
        (EntryKind.ADVANCE, DAY, 0, AmountInvalid),
        (EntryKind.REIMBURSEMENT, DAY, -5, AmountInvalid),
    ],
)
def test_entries_on_the_wrong_day_or_without_a_positive_amount_are_refused(
    kind: EntryKind, booked_on: date, amount: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        LedgerEntry("E1", kind, KEY, Amount(amount), booked_on)


@pytest.mark.parametrize(
    "fields",
    [("53310", "533103001", "1"), ("533103", "", "1"), ("533103", "a b", "1"),
     ("533103", "533103001", "x" * 43)],
)
def test_a_key_needs_a_division_a_unit_and_a_fund_type(fields: tuple[str, str, str]) -> None:
    with pytest.raises(ValidationError):
        LedgerKey(*fields, DAY)


def test_the_daily_statement_chains_opening_and_closing() -> None:
    ledger = BankLedger()
    ledger.advance("P1", KEY, Amount(300))
    next_day = DAY + timedelta(days=1)
    ledger.advance("P2", LedgerKey("533103", "533103001", "1", next_day), Amount(200))
    ledger.reimburse("C1#1", KEY, Amount(300), next_day)
    first, second = ledger.statement(DAY), ledger.statement(next_day)
    assert (first.opening, first.advanced, first.reimbursed, first.closing) == (
        Amount(0), Amount(300), Amount(0), Amount(300))
    assert (second.opening, second.advanced, second.reimbursed, second.closing) == (
        Amount(300), Amount(200), Amount(300), Amount(200))


def test_balances_filter_by_day_division_and_what_is_still_open() -> None:
    ledger = BankLedger()
    ruili = LedgerKey("533102", "533102001", "1", DAY)
    ledger.advance("P1", KEY, Amount(300))
    ledger.advance("P2", ruili, Amount(100))
    ledger.reimburse("C1#1", ruili, Amount(100))
    assert list(ledger.balances()) == sorted([KEY, ruili])
    assert list(ledger.balances(admdiv="533103")) == [KEY]
    assert list(ledger.balances(open_only=True)) == [KEY]
    assert ledger.balances(day=DAY + timedelta(days=1)) == {}


# --- the arithmetic, for any sequence of advances and reimbursements --------------------------

KEYS = [LedgerKey(a, f"{a}00{u}", f, DAY + timedelta(days=d))
        for a in ("533103", "533102") for u in (1, 2) for f in ("1", "2") for d in (0, 1)]

operations = st.lists(
    st.tuples(st.booleans(), st.sampled_from(KEYS), st.integers(1, 10**9), st.integers(0, 3)),
    max_size=60,
)


def _play(ops: list[tuple[bool, LedgerKey, int, int]]) -> BankLedger:
    """Advances as given; a reimbursement repays up to what is outstanding (never more)."""
    ledger = BankLedger()
    for i, (is_advance, key, fen, delay) in enumerate(ops):
        if is_advance:
            ledger.advance(f"A{i}", key, Amount(fen))
            continue
        open_fen = ledger.balance(key).outstanding.fen
        if open_fen:
            ledger.reimburse(f"R{i}", key, Amount(min(fen, open_fen)),
                             key.day + timedelta(days=delay))
    return ledger


@given(operations)
def test_advances_minus_reimbursements_is_what_is_outstanding(
    ops: list[tuple[bool, LedgerKey, int, int]],
) -> None:
    ledger = _play(ops)
    advanced = sum(e.amount.fen for e in ledger.entries if e.kind is EntryKind.ADVANCE)
    reimbursed = sum(e.amount.fen for e in ledger.entries if e.kind is EntryKind.REIMBURSEMENT)
    balances = ledger.balances()
    assert ledger.outstanding() == Amount(advanced - reimbursed)
    assert sum(b.outstanding.fen for b in balances.values()) == advanced - reimbursed
    for bal in balances.values():
        assert 0 <= bal.reimbursed.fen <= bal.advanced.fen


@given(operations)
def test_each_day_closes_where_the_next_opens_and_never_below_zero(
    ops: list[tuple[bool, LedgerKey, int, int]],
) -> None:
    ledger = _play(ops)
    day, last = DAY - timedelta(days=1), DAY + timedelta(days=6)
    previous = ledger.statement(day)
    while day < last:
        day += timedelta(days=1)
        today = ledger.statement(day)
        assert today.opening == previous.closing
        assert today.closing.fen >= 0
        previous = today
    assert previous.closing == ledger.outstanding()


@given(operations)
def test_replaying_the_entries_gives_the_same_balances(
    ops: list[tuple[bool, LedgerKey, int, int]],
) -> None:
    ledger = _play(ops)
    again = BankLedger(ledger.entries)
    assert again.balances() == ledger.balances()
    for entry in ledger.entries:
        assert again.record(entry) is False
