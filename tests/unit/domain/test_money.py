"""Money: integer fen, the wire's "1234.50", and never a float."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.domain.errors import AmountInvalid, ValidationError
from guoku.domain.money import MAX_FEN, WIRE_PATTERN, Amount, parse_amount

fen_in_range = st.integers(min_value=-MAX_FEN, max_value=MAX_FEN)
any_float = st.floats(allow_nan=True, allow_infinity=True)


# --- wire form -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "wire"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (50, "0.50"),
        (100, "1.00"),
        (123450, "1234.50"),
        (-1, "-0.01"),
        (-123456, "-1234.56"),
        (MAX_FEN, "999999999999999.99"),
        (-MAX_FEN, "-999999999999999.99"),
    ],
)
def test_the_wire_form_always_carries_exactly_two_decimals(fen: int, wire: str) -> None:
    assert Amount(fen).wire() == wire
    assert str(Amount(fen)) == wire
    assert Amount.parse(wire) == Amount(fen)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1234",
        "1234.5",
        "1234.500",
        ".50",
        "1.",
        "1e3",
        "1E+3",
        "+1.00",
        "01.00",
        "00.00",
        "-01.00",
        "--1.00",
        " 1.00",
        "1.00 ",
        "1,234.50",
        "1 234.50",
        "1234,50",
        "１.００",
        "NaN",
        "Infinity",
        "-",
        "1000000000000000.00",
    ],
)
def test_text_that_is_not_the_wire_form_is_refused(text: str) -> None:
    with pytest.raises(AmountInvalid):
        Amount.parse(text)


def test_a_trailing_newline_is_not_part_of_the_wire_form() -> None:
    with pytest.raises(AmountInvalid):
        Amount.parse("1234.50\n")


@given(fen_in_range)
def test_parsing_the_wire_form_gives_back_the_same_amount(fen: int) -> None:
    amount = Amount(fen)
    assert Amount.parse(amount.wire()) == amount
    assert parse_amount(amount.wire()) == amount


@given(fen_in_range)
def test_the_wire_form_matches_the_published_pattern(fen: int) -> None:
    assert re.fullmatch(WIRE_PATTERN, Amount(fen).wire())


@given(fen_in_range)
def test_decimal_conversion_is_exact_both_ways(fen: int) -> None:
    amount = Amount(fen)
    as_decimal = amount.to_decimal()
    assert as_decimal == Decimal(fen).scaleb(-2)
    assert as_decimal.as_tuple().exponent == -2
    assert Amount.from_decimal(as_decimal) == amount
    assert parse_amount(as_decimal) == amount


# --- limits ----------------------------------------------------------------------------------


def test_the_largest_amount_is_fifteen_digits_of_yuan_and_two_of_fen() -> None:
    assert Amount(MAX_FEN).wire() == "9" * 15 + ".99"
    assert Amount(-MAX_FEN).fen == -MAX_FEN


@pytest.mark.parametrize("fen", [MAX_FEN + 1, -MAX_FEN - 1, 10**30, -(10**30)])
def test_an_amount_beyond_the_limit_is_refused(fen: int) -> None:
    with pytest.raises(AmountInvalid):
        Amount(fen)


def test_a_decimal_beyond_the_limit_is_refused() -> None:
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(Decimal("1000000000000000.00"))
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(Decimal("1E+30"))


@given(fen_in_range, fen_in_range)
def test_a_sum_beyond_the_limit_is_refused_not_wrapped(a: int, b: int) -> None:
    total = a + b
    if abs(total) <= MAX_FEN:
        assert (Amount(a) + Amount(b)).fen == total
    else:
        with pytest.raises(AmountInvalid):
            Amount(a) + Amount(b)


# --- arithmetic ------------------------------------------------------------------------------


@given(fen_in_range, fen_in_range)
def test_addition_and_subtraction_are_exact_to_the_fen(a: int, b: int) -> None:
    x, y = Amount(a), Amount(b)
    if abs(a + b) <= MAX_FEN:
        assert (x + y).fen == a + b
        assert x + y == y + x
        assert (x + y) - y == x
    if abs(a - b) <= MAX_FEN:
        assert (x - y).fen == a - b
        assert (x - y) + y == x
        assert x - y == -(y - x)


@given(st.lists(st.integers(min_value=0, max_value=MAX_FEN // 1000), max_size=50))
def test_a_sum_of_many_amounts_equals_the_sum_of_their_fen(fens: list[int]) -> None:
    total = sum((Amount(f) for f in fens), Amount.zero())
    assert total.fen == sum(fens)
    assert Amount.parse(total.wire()) == total


@given(fen_in_range)
def test_an_amount_minus_itself_is_zero_and_negation_is_its_own_inverse(fen: int) -> None:
    x = Amount(fen)
    assert x - x == Amount.zero()
    assert -x + x == Amount.zero()
    assert (-x).fen == -fen
    assert x + Amount.zero() == x


def test_one_fen_plus_two_fen_is_three_fen_where_floats_would_drift() -> None:
    assert Amount.parse("0.10") + Amount.parse("0.20") == Amount.parse("0.30")


@given(fen_in_range, fen_in_range)
def test_amounts_order_as_their_fen_do(a: int, b: int) -> None:
    assert (Amount(a) < Amount(b)) == (a < b)
    assert (Amount(a) == Amount(b)) == (a == b)


@pytest.mark.parametrize(("fen", "positive"), [(1, True), (MAX_FEN, True), (0, False), (-1, False)])
def test_only_amounts_above_zero_are_positive(fen: int, positive: bool) -> None:
    assert Amount(fen).is_positive() is positive


# --- floats are never amounts ----------------------------------------------------------------


@given(any_float)
def test_no_float_is_ever_accepted_as_an_amount(value: float) -> None:
    with pytest.raises(AmountInvalid):
        parse_amount(value)
    with pytest.raises(AmountInvalid):
        Amount(value)  # type: ignore[arg-type]
    with pytest.raises(AmountInvalid):
        Amount.parse(value)  # type: ignore[arg-type]
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(value)  # type: ignore[arg-type]


def test_a_float_is_refused_with_a_message_that_says_what_to_pass() -> None:
    with pytest.raises(AmountInvalid, match="float is never an amount"):
        parse_amount(1234.5)


@given(fen_in_range, any_float)
def test_a_float_cannot_be_added_to_or_subtracted_from_an_amount(fen: int, value: float) -> None:
    with pytest.raises((AttributeError, TypeError)):
        Amount(fen) + value  # type: ignore[operator]
    with pytest.raises((AttributeError, TypeError)):
        Amount(fen) - value  # type: ignore[operator]


@pytest.mark.parametrize("value", [True, False, "100", Decimal("1"), None, 1 + 0j])
def test_an_amount_is_built_only_from_a_plain_int(value: object) -> None:
    with pytest.raises(AmountInvalid):
        Amount(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 100, b"1.00", [], {"fen": 1}])
def test_parse_amount_refuses_anything_but_text_decimal_or_amount(value: object) -> None:
    with pytest.raises(AmountInvalid):
        parse_amount(value)


def test_parse_amount_passes_an_amount_through_unchanged() -> None:
    amount = Amount(123450)
    assert parse_amount(amount) is amount


def test_an_invalid_amount_is_a_validation_error_with_a_stable_code() -> None:
    with pytest.raises(ValidationError) as caught:
        Amount.parse("12.3")
    assert caught.value.code == "AMOUNT_INVALID"


# --- decimals --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0.001", "1.005", "-0.009", "1234.567"])
def test_a_decimal_with_fractions_of_a_fen_is_refused_not_rounded(text: str) -> None:
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(Decimal(text))


@pytest.mark.parametrize(("text", "fen"), [("1", 100), ("1.5", 150), ("1E+2", 10000), ("-0", 0)])
def test_a_decimal_with_at_most_two_fraction_digits_is_exact(text: str, fen: int) -> None:
    assert Amount.from_decimal(Decimal(text)) == Amount(fen)


@pytest.mark.parametrize("text", ["NaN", "sNaN", "-NaN"])
def test_a_decimal_that_is_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(Decimal(text))


@pytest.mark.parametrize("text", ["Infinity", "-Infinity"])
def test_an_infinite_decimal_is_refused_as_an_invalid_amount(text: str) -> None:
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(Decimal(text))


def test_a_fraction_of_a_fen_far_behind_the_point_is_still_refused() -> None:
    with pytest.raises(AmountInvalid):
        Amount.from_decimal(Decimal("1.0000000000000000000000000001"))
