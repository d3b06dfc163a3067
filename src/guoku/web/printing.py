"""Controlled printing (受控打印): one voucher as a PDF in a fixed layout, seals where they go.

The library counts the print first (``VoucherLibrary.print_``: PRINT post, audited, the count
kept with the voucher), then this module draws that print: number 1 is the original, every
later one carries the copy mark 副本 and its number, so a paper copy can never pass for a
second original (002 §13.5: printed copies serve as an index while paper and electronic run
side by side). Each seal image is taken from the stamp itself (the SES_Signature embeds the
seal with its picture and size in millimetres) and drawn at its position's fixed place.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from guoku.domain.document import VoucherDocument
from guoku.domain.errors import GuokuError
from guoku.domain.money import Amount
from guoku.library.ports import iso
from guoku.security.seals import parse_seal_signature
from guoku.store.repository import VoucherRow
from guoku.web.labels import state_label
from guoku.xml.codec import from_xml

FONT: Final = "STSong-Light"
HIDDEN: Final = frozenset({"VtCode", "StYear", "Hold1", "Hold2", "AdmDivCode", "VoucherNo",
                           "VouDate"})
"""Printed in the title block, or never printed."""
MM: Final = 72 / 25.4
PAGE_W, PAGE_H = 297 * MM, 210 * MM
"""A4 landscape, as voucher printers take it."""
SEAL_SLOTS: Final = ((215, 22), (255, 22), (175, 22))
"""Lower-left corners (mm) of seal positions 1, 2, 3: the seal row at the foot of the form."""

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")


def _group(value: int) -> str:
    text, zero = "", False
    for pos in (3, 2, 1, 0):
        digit = value // 10**pos % 10
        if digit == 0:
            zero = bool(text)
            continue
        text += ("零" if zero else "") + _DIGITS[digit] + _UNITS[pos]
        zero = False
    return text


def _integer(value: int) -> str:
    groups: list[int] = []
    while value:
        value, rest = divmod(value, 10_000)
        groups.append(rest)
    text, gap = "", False
    for index in reversed(range(len(groups))):
        group = groups[index]
        if group == 0:
            gap = bool(text)
            continue
        text += ("零" if text and (gap or group < 1000) else "") + _group(group) + _GROUPS[index]
        gap = False
    return text


def capital(amount: Amount) -> str:
    """人民币大写, as printed on payment vouchers: 12800.05 -> 壹万贰仟捌佰元零伍分."""
    yuan, rest = divmod(abs(amount.fen), 100)
    jiao, fen = divmod(rest, 10)
    text = ("负" if amount.fen < 0 else "") + (_integer(yuan) + "元" if yuan else "")
    if jiao == 0 and fen == 0:
        return (text or "零元") + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif yuan:
        text += "零"
    return text + (_DIGITS[fen] + "分" if fen else "")


def _fields(doc: VoucherDocument) -> list[tuple[str, str]]:
    return [(f.label, doc.header[f.name]) for f in doc.vtype.fields
            if f.name not in HIDDEN and doc.header.get(f.name)]


def _stamp_picture(stamp: str) -> tuple[bytes, float, float, str] | None:
    """PNG, width and height (mm) and holder of a stamp, or None if it cannot be read."""
    try:
        signature = parse_seal_signature(base64.b64decode(stamp))
    except (GuokuError, ValueError):
        return None
    seal = signature.seal
    return (seal.picture, float(seal.picture_width_mm or 40), float(seal.picture_height_mm or 40),
            signature.signer_cert.common_name or "")


def voucher_pdf(row: VoucherRow, print_no: int, printed_by: str, printed_at: datetime,
                parties: Mapping[str, str]) -> bytes:
    """The voucher's print number ``print_no`` (1 = original, later = 副本)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    doc = from_xml(row.xml)
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=(PAGE_W, PAGE_H), pageCompression=1)
    c.setTitle(f"{doc.vtype.name} {doc.voucher_no}")
    _title(c, doc, row, print_no)
    bottom = _grid(c, _fields(doc), top=PAGE_H - 42 * MM)
    _amount(c, doc, bottom - 4 * MM)
    _details(c, doc, bottom - 18 * MM)
    _seals(c, doc)
    _footer(c, row, print_no, printed_by, printed_at, parties)
    c.showPage()
    c.save()
    return out.getvalue()


def _title(c: Any, doc: VoucherDocument, row: VoucherRow, print_no: int) -> None:
    c.setFont(FONT, 20)
    c.drawCentredString(PAGE_W / 2, PAGE_H - 20 * MM, doc.vtype.name)
    c.setFont(FONT, 10)
    h = doc.header
    c.drawString(15 * MM, PAGE_H - 30 * MM, f"凭证号：{doc.voucher_no}    版本：{row.version}")
    c.drawCentredString(PAGE_W / 2, PAGE_H - 30 * MM, f"凭证日期：{h['VouDate']}")
    c.drawRightString(PAGE_W - 15 * MM, PAGE_H - 30 * MM,
                      f"行政区划：{h['AdmDivCode']}    类型：{doc.vt_code}")
    if print_no > 1:
        c.saveState()
        c.setFillColorRGB(0.85, 0.1, 0.1)
        c.setStrokeColorRGB(0.85, 0.1, 0.1)
        c.rect(PAGE_W - 52 * MM, PAGE_H - 24 * MM, 37 * MM, 14 * MM)
        c.setFont(FONT, 22)
        c.drawCentredString(PAGE_W - 33.5 * MM, PAGE_H - 20 * MM, "副本")
        c.restoreState()


def _grid(c: Any, fields: list[tuple[str, str]], top: float) -> float:
    """Label/value pairs in two columns of ruled rows; returns the y under the grid."""
    c.setFont(FONT, 9)
    c.setLineWidth(0.5)
    row_h, left, half = 7 * MM, 15 * MM, (PAGE_W - 30 * MM) / 2
    rows = (len(fields) + 1) // 2
    for i, (label, value) in enumerate(fields):
        x, y = left + (i % 2) * half, top - (i // 2 + 1) * row_h
        c.rect(x, y, 32 * MM, row_h)
        c.rect(x + 32 * MM, y, half - 32 * MM, row_h)
        c.drawString(x + 2 * MM, y + 2.3 * MM, label)
        c.drawString(x + 34 * MM, y + 2.3 * MM, value[:60])
    return top - rows * row_h


def _amount(c: Any, doc: VoucherDocument, y: float) -> None:
    c.setFont(FONT, 12)
    c.drawString(15 * MM, y, f"金额（大写）：人民币{capital(doc.amount)}")
    c.drawRightString(PAGE_W - 15 * MM, y, f"（小写）¥{doc.amount.wire()}")


def _details(c: Any, doc: VoucherDocument, y: float) -> None:
    if not doc.details:
        return
    names = [f.name for f in doc.vtype.detail_fields if any(d.get(f.name) for d in doc.details)]
    labels = {f.name: f.label for f in doc.vtype.detail_fields}
    width = (PAGE_W - 30 * MM) / max(len(names), 1)
    c.setFont(FONT, 8)
    for row_no, line in enumerate([{n: labels[n] for n in names}, *doc.details][:8]):
        for col, name in enumerate(names):
            x, row_y = 15 * MM + col * width, y - row_no * 6 * MM
            c.rect(x, row_y, width, 6 * MM)
            c.drawString(x + 1.5 * MM, row_y + 2 * MM, str(line.get(name, ""))[:24])


def _seals(c: Any, doc: VoucherDocument) -> None:
    from reportlab.lib.utils import ImageReader

    c.setFont(FONT, 8)
    for index, position in enumerate(doc.vtype.seal_positions[: len(SEAL_SLOTS)]):
        x, y = (v * MM for v in SEAL_SLOTS[index])
        c.drawString(x, y - 5 * MM, f"{position.kind.chinese}（{position.no}）")
        stamp = doc.stamps.get(position.no)
        picture = _stamp_picture(stamp) if stamp else None
        if picture is None:
            c.drawString(x, y + 12 * MM, "（未盖章）")
            continue
        png, w, h, holder = picture
        size = min(w, h, 38.0)
        c.drawImage(ImageReader(io.BytesIO(png)), x, y, size * MM, size * MM * h / w,
                    mask="auto")
        c.drawString(x, y - 9 * MM, holder[:16])


def _footer(c: Any, row: VoucherRow, print_no: int, printed_by: str, printed_at: datetime,
            parties: Mapping[str, str]) -> None:
    c.setFont(FONT, 8)
    sender = parties.get(row.sender_party, row.sender_party)
    receiver = parties.get(row.receiver_party, row.receiver_party)
    c.drawString(15 * MM, 14 * MM,
                 f"发送方：{sender}    接收方：{receiver}    状态：{state_label(row.state)}")
    mark = "正本" if print_no == 1 else f"副本（第{print_no}次打印）"
    c.drawString(15 * MM, 9 * MM, f"打印：{mark}    打印人：{printed_by}    打印时间："
                                  f"{iso(printed_at)}    凭证标识：{row.ref}")
    c.drawString(15 * MM, 4 * MM, "本件为电子凭证的打印件；电子凭证及其电子签章为记账依据。")
