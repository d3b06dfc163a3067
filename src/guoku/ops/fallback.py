"""Emergency procedure (应急预案, 002 §10, §13.4): the paper fallback around the library.

* **Queue and resume.** Nothing to do: a voucher sent while its counterparty or the link is down
  stays in the sender's outbox (or the broker's queue) and goes by itself when the link is back;
  the inbox applies it exactly once.
* **Policy.** How long a voucher must have waited on the wire before it may go to paper — per
  voucher type, default two hours (:class:`FallbackPolicy`, a ``[fallback]`` TOML table).
* **Switch** (:func:`overdue`, ``VoucherLibrary.fallback``): the sending post moves a voucher
  that is sent or indeterminate and past its time to ``paper``; audited like any event.
* **Print** (:func:`print_emergency`): through the library's controlled printing (counted,
  audited), a PDF marked 应急 / 纸质凭证 on every page, with what the receiver registers.
* **Register** (``VoucherLibrary.register_paper``, :mod:`guoku.library.paper`): the receiver
  records the paper it processed; the electronic copy is matched when it arrives.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import select

from guoku.domain.errors import GuokuError, ValidationError
from guoku.domain.lifecycle import State
from guoku.domain.money import Amount
from guoku.domain.vouchers import voucher_type
from guoku.library.paper import DEFAULT_WAIT, sent_at
from guoku.library.ports import iso
from guoku.library.service import VoucherLibrary
from guoku.security.crypto import sm3_hex
from guoku.store.repository import VoucherRow, get_voucher
from guoku.store.tables import vouchers
from guoku.store.uow import UnitOfWork
from guoku.xml.codec import from_xml

WATERMARK: Final = "应急 纸质凭证"
MARK_ASCII: Final = "EMERGENCY PAPER VOUCHER"
"""Also drawn in a base font, so a machine can find the mark in the PDF."""
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class NotOnPaper(GuokuError):
    code = "NOT_ON_PAPER"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d`` (or a combination, ``1h30m``)."""
    parts = re.fullmatch(r"(?:\d+[smhd])+", text.strip())
    if parts is None:
        raise ValidationError(f"a duration looks like 2h, 30m or 1h30m, not {text!r}")
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhd])", text))
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class FallbackPolicy:
    """How long each voucher type waits on the wire before the paper fallback opens."""

    default: timedelta = DEFAULT_WAIT
    by_type: Mapping[str, timedelta] = field(default_factory=lambda: MappingProxyType({}))

    def wait(self, vt_code: str) -> timedelta:
        return self.by_type.get(vt_code, self.default)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FallbackPolicy:
        """``{"default": "2h", "types": {"5201": "30m"}}`` (the ``[fallback]`` table)."""
        default = parse_duration(str(data.get("default", "2h")))
        types = data.get("types", {})
        if not isinstance(types, Mapping):
            raise ValidationError("[fallback.types] maps voucher types to durations")
        by_type = {voucher_type(str(code)).code: parse_duration(str(value))
                   for code, value in types.items()}
        return cls(default, MappingProxyType(by_type))

    @classmethod
    def load(cls, path: Path | None) -> FallbackPolicy:
        """The ``[fallback]`` table of a TOML file; the defaults when ``path`` is None."""
        if path is None:
            return cls()
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        table = data.get("fallback", {})
        if not isinstance(table, Mapping):
            raise ValidationError(f"{path}: [fallback] must be a table")
        return cls.from_mapping(table)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A voucher on the wire: since when, and whether the paper fallback is open for it."""

    row: VoucherRow
    sent_at: str
    opens_at: str
    due: bool


def overdue(lib: VoucherLibrary, policy: FallbackPolicy, now: datetime,
            only_due: bool = True) -> list[Waiting]:
    """The node's sent or indeterminate vouchers, with when their paper fallback opens."""
    found: list[Waiting] = []
    with UnitOfWork(lib.engine) as uow:
        ids = uow.conn.execute(select(vouchers.c.id).where(
            vouchers.c.direction == "out",
            vouchers.c.state.in_([State.SENT.value, State.INDETERMINATE.value]))
            .order_by(vouchers.c.id)).scalars().all()
        for voucher_id in ids:
            row = get_voucher(uow.conn, int(voucher_id), None)
            at = sent_at(uow.conn, row.id)
            if at is None:
                continue
            opens = datetime.fromisoformat(at.replace("Z", "+00:00")) + policy.wait(row.vt_code)
            if now >= opens or not only_due:
                found.append(Waiting(row, at, iso(opens), now >= opens))
    return found


def switch(lib: VoucherLibrary, policy: FallbackPolicy, username: str, voucher_id: int,
           reason: str) -> VoucherRow:
    """应急: the voucher goes to paper (refused before its type's time has passed)."""
    with UnitOfWork(lib.engine) as uow:
        vt_code = get_voucher(uow.conn, voucher_id, None).vt_code
    return lib.fallback(username, voucher_id, reason, after=policy.wait(vt_code))


@dataclass(frozen=True, slots=True)
class PaperPrint:
    path: Path
    print_no: int
    ref: str
    sm3: str


def print_emergency(lib: VoucherLibrary, username: str, voucher_id: int,
                    out: Path) -> PaperPrint:
    """Print a paper-fallback voucher: counted and audited by the library's controlled
    printing (PRINT post), rendered as a PDF with the emergency mark on every page."""
    row = lib.get(username, voucher_id)
    if row.state != State.PAPER.value:
        raise NotOnPaper(f"{row.ref} is {row.state}: only a voucher switched to paper is "
                         "printed as an emergency voucher", voucher_id=voucher_id)
    number = lib.print_(username, voucher_id)
    digest = sm3_hex(row.xml)
    render_pdf(out, row, number, digest, printed_by=username, at=iso(lib.clock()))
    return PaperPrint(out, number, row.ref, digest)


def render_pdf(path: Path, row: VoucherRow, print_no: int, digest: str, *, printed_by: str,
               at: str) -> None:
    """The emergency paper voucher (A4): watermark, header fields, detail lines, seals, and a
    registration block (what the receiver types in), SM3 of the electronic voucher."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    doc = from_xml(row.xml)
    vtype = doc.vtype
    body = ParagraphStyle("body", fontName="STSong-Light", fontSize=9, leading=12)
    head = ParagraphStyle("head", parent=body, fontSize=16, leading=22)
    labels = {f.name: f.label for f in (*vtype.fields, *vtype.detail_fields)}
    amount = Amount(row.amount_fen).wire()
    story: list[Any] = [
        Paragraph(f"{vtype.name}（应急纸质凭证）", head),
        Paragraph(f"凭证号 {row.voucher_no}　版本 {row.version}　年度 {row.st_year}　"
                  f"行政区划 {row.admdiv}　凭证日期 {row.vou_date}　金额 {amount} 元", body),
        Paragraph(f"发送方 {row.sender_party} → 接收方 {row.receiver_party}；"
                  f"第 {print_no} 次打印（{printed_by}，{at}）", body),
        Spacer(1, 6),
    ]
    grid = [("FONT", (0, 0), (-1, -1), "STSong-Light", 8),
            ("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]
    fields = [[labels.get(k, k), k, v] for k, v in doc.header.items()]
    story += [Table([["项目", "字段", "内容"], *fields], repeatRows=1, style=TableStyle(grid)),
              Spacer(1, 6)]
    if doc.details:
        names = list(doc.details[0])
        lines = [[labels.get(n, n) for n in names], *[[d.get(n, "") for n in names]
                                                       for d in doc.details]]
        story += [Table(lines, repeatRows=1, style=TableStyle(grid)), Spacer(1, 6)]
    seals = [[p.no, p.kind.chinese, "已盖章（电子）" if doc.stamps.get(p.no) else "未盖章"]
             for p in vtype.seal_positions]
    if seals:
        story += [Table([["位置", "印章", "状态"], *seals], style=TableStyle(grid)),
                  Spacer(1, 6)]
    story += [
        Paragraph("接收方登记（guoku fallback register）：发送方 / 凭证类型 / 年度 / 凭证号 / "
                  "版本 / 金额 / 凭证日期", body),
        Paragraph(f"{row.sender_party} / {row.vt_code} / {row.st_year} / {row.voucher_no} / "
                  f"{row.version} / {amount} / {row.vou_date}", body),
        Paragraph(f"电子凭证 SM3：{digest}", body),
    ]

    def mark(canvas: Any, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.18))
        canvas.setFont("STSong-Light", 54)
        canvas.translate(A4[0] / 2, A4[1] / 2)
        canvas.rotate(35)
        canvas.drawCentredString(0, 40, WATERMARK)
        canvas.drawCentredString(0, -60, "应急")
        canvas.restoreState()
        canvas.setFont("Helvetica-Bold", 9)
        canvas.setFillColor(colors.red)
        canvas.drawString(36, A4[1] - 24, f"{MARK_ASCII} {row.ref} PRINT {print_no}")
        canvas.setFont("STSong-Light", 9)
        canvas.drawRightString(A4[0] - 36, A4[1] - 24, "应急 · 纸质凭证 · 以电子凭证登记为准")

    SimpleDocTemplate(str(path), pagesize=A4, title=f"应急纸质凭证 {row.ref}",
                      subject=MARK_ASCII, pageCompression=0).build(
        story, onFirstPage=mark, onLaterPages=mark)
