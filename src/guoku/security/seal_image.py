"""Seal pictures (印模) drawn with Pillow: the red round official seal and the square name seal.

* :func:`round_seal_png` — 公章 style: red ring, the unit's name clockwise along the upper arc,
  a five-pointed star in the centre and the seal kind (e.g. 财务专用章) under it.
* :func:`square_seal_png` — 私章/法人章 style: a red square border and the person's name in a
  2×2 grid read right column first (张三 → 张三之印, 李小龙 → 李小龙印).
* :func:`seal_png` picks the shape for a :class:`~guoku.domain.seals.SealKind`.

Everything is drawn as an alpha mask at 4× and scaled down once, so edges are smooth and the
output is byte-for-byte the same for the same inputs, font and Pillow version. The background
is transparent. A CJK font is needed (:func:`find_cjk_font`); a character the font lacks is
refused rather than drawn as a box.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from guoku.domain.errors import GuokuError, ValidationError
from guoku.domain.seals import SealKind

SEAL_RED: Final = (218, 37, 29)
FONT_ENV: Final = "GUOKU_SEAL_FONT"
"""Environment variable naming a font file (path, or ``path#index`` for a collection)."""
SUPERSAMPLE: Final = 4
MAX_SIZE_PX: Final = 2048
MAX_UNIT_NAME_CHARS: Final = 24
MAX_KIND_TEXT_CHARS: Final = 8

# (package, file in it) from PyPI, then Debian packages: (path, face index in a collection).
_PACKAGED_FONTS: Final = (
    ("pylopdf_fonts_zh_cn", "NotoSerifSC-Regular.otf"),  # PyPI pylopdf-fonts-zh-cn (OFL)
    ("manimgx_fonts_cjk", "NotoSansCJK-VF.otf.ttc"),  # PyPI manimgx-fonts-cjk (OFL)
)
_SYSTEM_FONTS: Final = (
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc", 2),  # fonts-noto-cjk; 2 = SC
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # fonts-wqy-microhei
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),  # fonts-arphic-uming
)


class SealImageInvalid(ValidationError):
    """The text cannot be drawn as a seal (length, characters the font lacks, size)."""

    code = "SEAL_IMAGE_INVALID"


class SealFontMissing(GuokuError):
    """No CJK font found: install pylopdf-fonts-zh-cn, or set GUOKU_SEAL_FONT."""

    code = "SEAL_FONT_MISSING"


FontSpec = tuple[Path, int]


def _candidates() -> Iterator[FontSpec]:
    configured = os.environ.get(FONT_ENV)
    if configured:
        name, _, number = configured.partition("#")
        if number and not number.isdigit():
            raise SealFontMissing(f"{FONT_ENV}={configured!r}: the face index must be a number")
        yield Path(name), int(number or 0)
    for package, filename in _PACKAGED_FONTS:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            yield Path(spec.origin).parent / filename, 0
    for path, index in _SYSTEM_FONTS:
        yield Path(path), index


def find_cjk_font() -> FontSpec:
    """The first available CJK font: $GUOKU_SEAL_FONT, a PyPI font package, a Debian font."""
    for path, index in _candidates():
        if path.is_file():
            return path, index
    raise SealFontMissing(
        "no CJK font for seal pictures: pip install pylopdf-fonts-zh-cn, apt-get install "
        f"fonts-noto-cjk, or set {FONT_ENV}=/path/to/font.ttf"
    )


@lru_cache(maxsize=64)
def _font(spec: FontSpec, size: int) -> ImageFont.FreeTypeFont:
    path, index = spec
    try:
        return ImageFont.truetype(str(path), size=size, index=index)
    except OSError as exc:
        raise SealFontMissing(f"cannot load font {path}: {exc}") from exc


def _render(font: ImageFont.FreeTypeFont, ch: str) -> bytes:
    side = round(font.size * 2)
    canvas = Image.new("L", (side, side), 0)
    ImageDraw.Draw(canvas).text((side // 4, side // 4), ch, font=font, fill=255)
    return canvas.tobytes()


def _check_glyphs(font: ImageFont.FreeTypeFont, text: str) -> None:
    """Refuse characters the font would draw as its 'missing glyph' box (.notdef)."""
    missing = _render(font, "\U0010fffd")  # a private-use code point no font maps
    for ch in sorted(set(text)):
        if not ch.isspace() and _render(font, ch) == missing:
            raise SealImageInvalid(f"the seal font has no glyph for {ch!r} (U+{ord(ch):04X})")


def _glyph(
    font: ImageFont.FreeTypeFont, ch: str, width: int, height: int, max_stretch: float = 1.5
) -> Image.Image:
    """One character as an ``L`` mask filling ``width`` × ``height``, as seal engravers do.

    The inked box is scaled to the cell, each axis at most ``max_stretch`` times the uniform
    scale, so 三 or 一 grow taller but do not become blocks.
    """
    stroke = max(1, round(font.size) // 28)
    left, top, right, bottom = (round(v) for v in font.getbbox(ch, stroke_width=stroke))
    canvas = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(canvas).text(
        (1 - left, 1 - top), ch, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    ink = canvas.crop(canvas.getbbox() or (0, 0, canvas.width, canvas.height))
    uniform = min(width / ink.width, height / ink.height)
    size = (
        max(1, round(ink.width * min(width / ink.width, uniform * max_stretch))),
        max(1, round(ink.height * min(height / ink.height, uniform * max_stretch))),
    )
    return ink.resize(size, Image.Resampling.LANCZOS)


def _stamp(mask: Image.Image, glyph: Image.Image, centre: tuple[float, float]) -> None:
    x = round(centre[0] - glyph.width / 2)
    y = round(centre[1] - glyph.height / 2)
    mask.paste(255, (x, y, x + glyph.width, y + glyph.height), glyph)


def _to_png(mask: Image.Image, size: tuple[int, int]) -> bytes:
    """One colour with an alpha mask, as a palette PNG: 256 entries of :data:`SEAL_RED` whose
    tRNS alphas are 0-255, each pixel its alpha's index. Every RGBA pixel is kept exactly, at
    about half the bytes of an RGBA PNG (the picture travels inside every seal signature)."""
    alpha = mask.resize(size, Image.Resampling.LANCZOS)
    image = alpha.convert("L")
    image.putpalette(list(SEAL_RED) * 256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True, transparency=bytes(range(256)))
    return out.getvalue()


def _star_points(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * math.sin(math.radians(18)) / math.sin(math.radians(54))
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = math.radians(-90 + 36 * i)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _check_size(size_px: int) -> None:
    if not 64 <= size_px <= MAX_SIZE_PX:
        raise SealImageInvalid(f"seal picture size must be 64-{MAX_SIZE_PX} px")


def _check_text(text: str, low: int, high: int, what: str) -> str:
    text = "".join(text.split())
    if not low <= len(text) <= high:
        raise SealImageInvalid(f"{what} must be {low}-{high} characters, got {len(text)}")
    return text


def round_seal_png(
    unit_name: str, kind_text: str, *, size_px: int = 480, font: FontSpec | None = None
) -> bytes:
    """A round official seal: ring, ``unit_name`` on the upper arc, star, ``kind_text`` below."""
    _check_size(size_px)
    unit_name = _check_text(unit_name, 1, MAX_UNIT_NAME_CHARS, "unit name")
    kind_text = _check_text(kind_text, 0, MAX_KIND_TEXT_CHARS, "seal kind text")
    spec = font or find_cjk_font()
    s = size_px * SUPERSAMPLE
    mask = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(mask)
    c = s / 2
    radius = s / 2 - s * 0.02
    ring = s * 0.034
    draw.ellipse((c - radius, c - radius, c + radius, c + radius), fill=255)
    inner = radius - ring
    draw.ellipse((c - inner, c - inner, c + inner, c + inner), fill=0)

    # The name: tall, narrow characters, clockwise along the upper arc, tops outward.
    char_h = inner * 0.27
    char_w = char_h * 0.78
    text_radius = inner - inner * 0.07 - char_h / 2
    step = min(math.radians(28), math.radians(250) / max(1, len(unit_name)))
    span = step * (len(unit_name) - 1)
    arc_font = _font(spec, round(char_h))
    _check_glyphs(arc_font, unit_name + kind_text)
    for i, ch in enumerate(unit_name):
        theta = -span / 2 + i * step  # 0 = twelve o'clock, clockwise positive
        glyph = _glyph(arc_font, ch, round(char_w), round(char_h))
        glyph = glyph.rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC, expand=True)
        _stamp(mask, glyph, (c + text_radius * math.sin(theta), c - text_radius * math.cos(theta)))

    draw.polygon(_star_points(c, c - inner * 0.02, inner * 0.30), fill=255)

    if kind_text:
        kind_h = inner * 0.16
        kind_w = min(inner * 1.1 / len(kind_text), kind_h * 0.95)
        kind_font = _font(spec, round(kind_h))
        y = c + inner * 0.52
        gap = kind_w * 0.08
        total = len(kind_text) * kind_w + (len(kind_text) - 1) * gap
        for i, ch in enumerate(kind_text):
            x = c - total / 2 + kind_w / 2 + i * (kind_w + gap)
            _stamp(mask, _glyph(kind_font, ch, round(kind_w), round(kind_h)), (x, y))
    return _to_png(mask, (size_px, size_px))


def name_seal_text(name: str) -> str:
    """The four characters of a square name seal: 张三 → 张三之印, 李小龙 → 李小龙印."""
    name = _check_text(name, 2, 4, "a personal seal name")
    return {2: name + "之印", 3: name + "印", 4: name}[len(name)]


def square_seal_png(name: str, *, size_px: int = 240, font: FontSpec | None = None) -> bytes:
    """A square name seal: red border, four characters in a 2×2 grid, right column first."""
    _check_size(size_px)
    text = name_seal_text(name)
    spec = font or find_cjk_font()
    s = size_px * SUPERSAMPLE
    mask = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(mask)
    margin = s * 0.03
    border = s * 0.07
    draw.rectangle((margin, margin, s - margin, s - margin), fill=255)
    draw.rectangle(
        (margin + border, margin + border, s - margin - border, s - margin - border), fill=0
    )
    inner = s - 2 * (margin + border)
    pad = inner * 0.07
    cell = (inner - 3 * pad) / 2
    glyph_font = _font(spec, round(cell))
    _check_glyphs(glyph_font, text)
    origin = margin + border + pad
    # Read order: right column top, right column bottom, left column top, left column bottom.
    cells = ((1, 0), (1, 1), (0, 0), (0, 1))
    for ch, (col, row) in zip(text, cells, strict=True):
        cx = origin + col * (cell + pad) + cell / 2
        cy = origin + row * (cell + pad) + cell / 2
        _stamp(mask, _glyph(glyph_font, ch, round(cell), round(cell)), (cx, cy))
    return _to_png(mask, (size_px, size_px))


def seal_png(kind: SealKind, name: str, *, font: FontSpec | None = None) -> bytes:
    """The picture for a seal of ``kind``: round for official seals, square for name seals.

    ``name`` is the unit's name for a round seal and the person's name for a square one.
    """
    if kind in (SealKind.PERSONAL, SealKind.LEGAL_REP):
        return square_seal_png(name, font=font)
    return round_seal_png(name, kind.chinese, font=font)
