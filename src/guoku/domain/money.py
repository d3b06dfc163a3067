"""Money: integer fen (分) everywhere; the wire carries the specification's decimal string.

A float never becomes an amount: :func:`parse_amount` accepts ``str``, ``int`` fen via
:class:`Amount`, or ``Decimal``, and refuses ``float`` outright.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Final

from guoku.domain.errors import AmountInvalid

MAX_FEN: Final = 10**17 - 1
"""Largest amount a voucher may carry: 15 integer digits of yuan and 2 of fen (NUMERIC(17,2))."""

_WIRE = re.compile(r"-?(0|[1-9][0-9]{0,14})\.[0-9]{2}")
"""Wire form: always two decimals, no exponent, no plus sign, no leading zeros."""

_EXACT = Context(prec=60, traps=[InvalidOperation])
"""Enough digits that no amount within MAX_FEN is ever rounded silently."""

WIRE_PATTERN: Final = r"-?(0|[1-9][0-9]{0,14})\.[0-9]{2}"


@dataclass(frozen=True, slots=True, order=True)
class Amount:
    """An amount of renminbi in integer fen (1 yuan = 100 fen)."""

    fen: int

    def __post_init__(self) -> None:
        if isinstance(self.fen, bool) or not isinstance(self.fen, int):
            raise AmountInvalid(f"amount must be integer fen, got {type(self.fen).__name__}")
        if abs(self.fen) > MAX_FEN:
            raise AmountInvalid(f"amount {self.fen} fen exceeds the limit of {MAX_FEN} fen")

    @classmethod
    def parse(cls, text: str) -> Amount:
        """Parse the wire form ``"1234.50"``; anything else is refused."""
        if not isinstance(text, str) or not _WIRE.fullmatch(text):
            raise AmountInvalid(f"amount {text!r} is not of the form 1234.50")
        return cls.from_decimal(Decimal(text))

    @classmethod
    def from_decimal(cls, value: Decimal) -> Amount:
        if not isinstance(value, Decimal):
            raise AmountInvalid(f"amount must be Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise AmountInvalid(f"amount {value} is not a finite number")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent < -2 and value != value.quantize(Decimal("0.01"), context=_EXACT):
            raise AmountInvalid(f"amount {value} has fractions of a fen")
        try:
            return cls(int(value.scaleb(2, context=_EXACT)))
        except InvalidOperation as exc:
            raise AmountInvalid(f"amount {value} is not a number") from exc

    @classmethod
    def zero(cls) -> Amount:
        return cls(0)

    def to_decimal(self) -> Decimal:
        return (Decimal(self.fen) / 100).quantize(Decimal("0.01"))

    def wire(self) -> str:
        """The specification's decimal string, e.g. ``"1234.50"``."""
        sign = "-" if self.fen < 0 else ""
        yuan, fen = divmod(abs(self.fen), 100)
        return f"{sign}{yuan}.{fen:02d}"

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.fen + other.fen)

    def __sub__(self, other: Amount) -> Amount:
        return Amount(self.fen - other.fen)

    def __neg__(self) -> Amount:
        return Amount(-self.fen)

    def is_positive(self) -> bool:
        return self.fen > 0

    def __str__(self) -> str:
        return self.wire()


def parse_amount(value: object) -> Amount:
    """Turn a user-supplied amount into :class:`Amount`; floats are refused, never rounded."""
    if isinstance(value, Amount):
        return value
    if isinstance(value, float):
        raise AmountInvalid("a float is never an amount: pass a string like '1234.50'")
    if isinstance(value, Decimal):
        return Amount.from_decimal(value)
    if isinstance(value, str):
        return Amount.parse(value)
    raise AmountInvalid(f"cannot read an amount from {type(value).__name__}")
