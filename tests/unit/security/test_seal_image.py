"""Seal pictures: transparent red PNGs with real Chinese glyphs, the same bytes every time."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from guoku.domain.seals import SealKind
from guoku.security import seal_image
from guoku.security.crypto import SM2PrivateKey
from guoku.security.seal_image import (
    SEAL_RED,
    SealFontMissing,
    SealImageInvalid,
    find_cjk_font,
    name_seal_text,
    round_seal_png,
    seal_png,
    square_seal_png,
)
from guoku.security.seals import make_seal
from guoku.security.x509 import KeyUsage, build_certificate, subject_name


@pytest.fixture(scope="module", autouse=True)
def font() -> tuple[Path, int]:
    try:
        return find_cjk_font()
    except SealFontMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set)", pytrace=False)
        pytest.skip(str(exc))


def load(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGBA")


def opaque(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """How many pixels inside ``box`` are inked (alpha over half)."""
    return sum(1 for a in image.crop(box).getchannel("A").tobytes() if a > 128)


def test_a_round_seal_is_a_red_ring_star_and_text_on_transparency() -> None:
    image = load(round_seal_png("云南省财政厅", "财务专用章", size_px=400))
    assert image.size == (400, 400)
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((399, 399))[3] == 0  # corners clear
    assert image.getpixel((200, 385))[3] == 255  # the ring, bottom
    assert image.getpixel((200, 15))[3] == 255  # the ring, top
    assert image.getpixel((200, 30))[3] == 0  # a gap inside the ring
    assert image.getpixel((200, 200))[:3] == SEAL_RED  # the star's centre
    assert image.getpixel((200, 200))[3] == 255
    assert opaque(image, (120, 40, 280, 100)) > 500  # the name on the upper arc
    assert opaque(image, (110, 265, 290, 310)) > 500  # the kind under the star
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert {rgba[:3] for _, rgba in colours if rgba[3]} == {SEAL_RED}  # one colour; alpha varies


def test_a_square_seal_is_a_red_frame_and_a_two_by_two_grid() -> None:
    image = load(square_seal_png("张三", size_px=200))
    assert image.size == (200, 200)
    assert image.getpixel((10, 100))[3] == 255 and image.getpixel((190, 100))[3] == 255
    for quadrant in (
        (30, 30, 95, 95),
        (105, 30, 170, 95),
        (30, 105, 95, 170),
        (105, 105, 170, 170),
    ):
        assert opaque(image, quadrant) > 300, quadrant  # one character in each cell


def test_pictures_are_byte_for_byte_deterministic() -> None:
    assert round_seal_png("某某单位", "业务专用章") == round_seal_png("某某单位", "业务专用章")
    assert square_seal_png("李四") == square_seal_png("李四")


def test_different_names_draw_different_glyphs() -> None:
    """Real glyphs, not a row of identical 'missing' boxes."""
    assert square_seal_png("张三") != square_seal_png("李四")
    assert round_seal_png("甲乙丙", "") != round_seal_png("丁戊己", "")


def test_a_character_the_font_lacks_is_refused_not_boxed() -> None:
    with pytest.raises(SealImageInvalid, match="no glyph"):
        round_seal_png("财政\U000f0001厅", "财务专用章")


@pytest.mark.parametrize(
    ("name", "text"),
    [("张三", "张三之印"), ("李小龙", "李小龙印"), ("欧阳修文", "欧阳修文"), ("王 五", "王五之印")],
)
def test_a_name_seal_reads_as_four_characters(name: str, text: str) -> None:
    assert name_seal_text(name) == text


@pytest.mark.parametrize("name", ["张", "司马相如文", ""])
def test_a_name_seal_needs_two_to_four_characters(name: str) -> None:
    with pytest.raises(SealImageInvalid):
        square_seal_png(name)


def test_text_and_size_limits_are_enforced() -> None:
    with pytest.raises(SealImageInvalid):
        round_seal_png("长" * 25, "财务专用章")
    with pytest.raises(SealImageInvalid):
        round_seal_png("单位", "财务专用章", size_px=10_000)


def test_the_kind_picks_the_shape() -> None:
    assert load(seal_png(SealKind.UNIT_FINANCE, "某某单位")).size == (480, 480)
    assert load(seal_png(SealKind.TREASURY, "国家金库某某支库")).size == (480, 480)
    assert load(seal_png(SealKind.PERSONAL, "张三")).size == (240, 240)
    assert load(seal_png(SealKind.LEGAL_REP, "王五")).size == (240, 240)


def test_the_font_can_be_named_and_its_absence_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, font: tuple[Path, int]
) -> None:
    monkeypatch.setenv(seal_image.FONT_ENV, f"{font[0]}#{font[1]}")
    assert find_cjk_font() == font
    monkeypatch.setenv(seal_image.FONT_ENV, "/nonexistent/font.ttf")
    monkeypatch.setattr(seal_image, "_PACKAGED_FONTS", ())
    monkeypatch.setattr(seal_image, "_SYSTEM_FONTS", ())
    with pytest.raises(SealFontMissing, match="pylopdf-fonts-zh-cn"):
        find_cjk_font()


def test_a_drawn_picture_goes_into_a_seal() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    key = SM2PrivateKey.generate()
    cert = build_certificate(
        subject=subject_name("财务处", "Guoku Test"), public_key=key.public_key(), serial=1,
        not_before=now, not_after=now + timedelta(days=30),
        key_usage=frozenset({KeyUsage.DIGITAL_SIGNATURE}), signer=key,
    )  # fmt: skip
    picture = seal_png(SealKind.UNIT_FINANCE, "某某单位")
    seal = make_seal(
        "E1", "某某单位财务专用章", SealKind.UNIT_FINANCE, cert.der, picture, now,
        now + timedelta(days=10), key, cert.der, now,
    )  # fmt: skip
    assert seal.picture == picture and load(seal.picture).size == (480, 480)
