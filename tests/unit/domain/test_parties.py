"""Administrative divisions: province, prefecture, county, and which contains which."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.domain.errors import ValidationError
from guoku.domain.parties import AdmDiv, AdmDivLevel, Party, PartyKind

YUNNAN, DEHONG, MANGSHI = AdmDiv("530000"), AdmDiv("533100"), AdmDiv("533103")
KUNMING, WUHUA = AdmDiv("530100"), AdmDiv("530102")
BEIJING = AdmDiv("110000")

# A small alphabet per segment so that generated codes share provinces and prefectures often.
admdivs = st.builds(
    lambda p, c, d: AdmDiv(p + c + d),
    st.sampled_from(["11", "53", "62"]),
    st.sampled_from(["00", "01", "31", "90"]),
    st.sampled_from(["00", "01", "03", "22"]),
)


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("530000", AdmDivLevel.PROVINCE),
        ("110000", AdmDivLevel.PROVINCE),
        ("533100", AdmDivLevel.PREFECTURE),
        ("530100", AdmDivLevel.PREFECTURE),
        ("533103", AdmDivLevel.COUNTY),
        ("110101", AdmDivLevel.COUNTY),
        ("530001", AdmDivLevel.COUNTY),
    ],
)
def test_the_level_is_read_from_the_trailing_zeros(code: str, level: AdmDivLevel) -> None:
    assert AdmDiv(code).level is level


def test_a_county_has_its_prefecture_then_its_province_above_it() -> None:
    assert MANGSHI.parent == DEHONG
    assert DEHONG.parent == YUNNAN
    assert YUNNAN.parent is None


def test_a_county_directly_under_a_province_has_the_province_as_parent() -> None:
    assert AdmDiv("530001").parent == YUNNAN


@given(admdivs)
def test_every_parent_chain_climbs_a_level_each_step_and_ends_at_a_province(div: AdmDiv) -> None:
    rank = {AdmDivLevel.COUNTY: 0, AdmDivLevel.PREFECTURE: 1, AdmDivLevel.PROVINCE: 2}
    chain = [div]
    while (up := chain[-1].parent) is not None:
        assert rank[up.level] > rank[chain[-1].level]
        chain.append(up)
    assert len(chain) <= 3
    assert chain[-1].level is AdmDivLevel.PROVINCE
    assert chain[-1].code[:2] == div.code[:2]


def test_a_province_contains_its_prefectures_and_their_counties() -> None:
    for below in (DEHONG, MANGSHI, KUNMING, WUHUA, AdmDiv("530001")):
        assert YUNNAN.contains(below)


def test_a_prefecture_contains_its_own_counties_only() -> None:
    assert DEHONG.contains(MANGSHI)
    assert not DEHONG.contains(WUHUA)
    assert not KUNMING.contains(MANGSHI)


def test_a_division_contains_itself() -> None:
    for div in (YUNNAN, DEHONG, MANGSHI):
        assert div.contains(div)


def test_nothing_below_contains_what_is_above_it() -> None:
    assert not MANGSHI.contains(DEHONG)
    assert not MANGSHI.contains(YUNNAN)
    assert not DEHONG.contains(YUNNAN)


def test_one_province_does_not_contain_another_or_its_divisions() -> None:
    assert not BEIJING.contains(YUNNAN)
    assert not BEIJING.contains(MANGSHI)
    assert not YUNNAN.contains(AdmDiv("110101"))


def test_sibling_divisions_do_not_contain_each_other() -> None:
    assert not DEHONG.contains(KUNMING)
    assert not MANGSHI.contains(AdmDiv("533102"))


@given(admdivs, admdivs)
def test_containment_is_a_matter_of_the_significant_prefix(a: AdmDiv, b: AdmDiv) -> None:
    significant = {AdmDivLevel.PROVINCE: 2, AdmDivLevel.PREFECTURE: 4, AdmDivLevel.COUNTY: 6}
    n = significant[a.level]
    assert a.contains(b) == (b.code[:n] == a.code[:n])


@given(admdivs, admdivs)
def test_two_different_divisions_never_contain_each_other(a: AdmDiv, b: AdmDiv) -> None:
    if a != b:
        assert not (a.contains(b) and b.contains(a))


@pytest.mark.parametrize(
    "code",
    [
        "",
        "53000",
        "5300000",
        "053000",
        "000000",
        "53000A",
        "５３００００",
        " 530000",
        "530000 ",
        "53-000",
    ],
)
def test_a_code_that_is_not_six_digits_is_refused(code: str) -> None:
    with pytest.raises(ValidationError):
        AdmDiv(code)


@pytest.mark.parametrize("code", [530000, None, b"530000"])
def test_a_code_that_is_not_text_is_refused(code: object) -> None:
    with pytest.raises(ValidationError):
        AdmDiv(code)  # type: ignore[arg-type]


def test_a_code_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError):
        AdmDiv("530000\n")


def test_a_division_prints_as_its_code_and_is_a_value() -> None:
    assert str(MANGSHI) == "533103"
    assert AdmDiv("533103") == MANGSHI
    assert len({AdmDiv("533103"), MANGSHI}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        MANGSHI.code = "533100"  # type: ignore[misc]


def test_there_are_exactly_four_kinds_of_party() -> None:
    assert {k.value for k in PartyKind} == {"finance", "pboc", "bank", "unit"}


def test_a_party_sits_in_one_administrative_division() -> None:
    party = Party("F530000", PartyKind.FINANCE, "云南省财政厅", YUNNAN)
    assert party.admdiv.level is AdmDivLevel.PROVINCE
    assert party.admdiv.contains(MANGSHI)
