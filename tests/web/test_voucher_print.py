"""The printed amount in words (人民币大写), the one rule of the printed layout worth a table."""

from __future__ import annotations

import pytest

from guoku.domain.money import Amount
from guoku.web.printing import capital


@pytest.mark.parametrize(("wire", "words"), [
    ("0.00", "零元整"),
    ("0.05", "伍分"),
    ("1.50", "壹元伍角"),
    ("1.05", "壹元零伍分"),
    ("10.00", "壹拾元整"),
    ("12800.00", "壹万贰仟捌佰元整"),
    ("12800.05", "壹万贰仟捌佰元零伍分"),
    ("100500.00", "壹拾万零伍佰元整"),
    ("1001.00", "壹仟零壹元整"),
    ("100000005.00", "壹亿零伍元整"),
    ("3000010.20", "叁佰万零壹拾元贰角"),
])
def test_amounts_are_printed_in_words(wire: str, words: str) -> None:
    assert capital(Amount.parse(wire)) == words
