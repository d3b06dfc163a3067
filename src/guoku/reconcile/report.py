"""Reconciliation output: JSON items, CSV (every break, streamed) and a PDF report (对账报告)."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final

from guoku.domain.money import Amount
from guoku.reconcile.breaks import Break, BreakKind

COLUMNS: Final = ("layer", "kind", "label", "admdiv", "party", "counterparty", "vt_code",
                  "voucher_no", "version", "day", "left", "right", "left_amount",
                  "right_amount", "left_state", "right_state", "account", "detail")
PDF_ROWS: Final = 200


def _amount(fen: int | None) -> str:
    return "" if fen is None else Amount(fen).wire()


def as_dict(brk: Break) -> dict[str, Any]:
    return {
        "layer": int(brk.layer), "kind": brk.kind.value, "label": BreakKind(brk.kind).label,
        "admdiv": brk.admdiv, "party": brk.party, "counterparty": brk.counterparty,
        "vt_code": brk.vt_code, "voucher_no": brk.voucher_no, "version": brk.version,
        "day": brk.day, "left": brk.left, "right": brk.right,
        "left_amount": _amount(brk.left_amount_fen),
        "right_amount": _amount(brk.right_amount_fen), "left_state": brk.left_state,
        "right_state": brk.right_state, "account": brk.account, "detail": brk.detail,
    }


@dataclass
class Collector:
    """Counts every break; keeps the first ``keep`` for screens and the PDF; writes all to
    an optional CSV as they stream by (flat memory)."""

    keep: int = 1000
    kept: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_layer: dict[int, int] = field(default_factory=dict)
    _csv: Any = None
    _spool: Any = None

    def open_spool(self) -> None:
        """Keep every break in a temporary file, to record them once the reading is done (a
        SQLite node cannot be written while the same run still streams from it)."""
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed in close)

    def spooled(self) -> Iterator[SimpleNamespace]:
        if self._spool is None:
            return
        self._spool.seek(0)
        for line in self._spool:
            yield SimpleNamespace(**json.loads(line))

    def open_csv(self, path: Path) -> None:
        handle = path.open("w", newline="", encoding="utf-8-sig")
        self._csv = (handle, csv.DictWriter(handle, fieldnames=COLUMNS))
        self._csv[1].writeheader()

    def add(self, breaks: Iterable[Break]) -> Iterable[Break]:
        for brk in breaks:
            row = as_dict(brk)
            self.total += 1
            self.by_kind[row["kind"]] = self.by_kind.get(row["kind"], 0) + 1
            self.by_layer[row["layer"]] = self.by_layer.get(row["layer"], 0) + 1
            if len(self.kept) < self.keep:
                self.kept.append(row)
            if self._csv is not None:
                self._csv[1].writerow(row)
            if self._spool is not None:
                self._spool.write(json.dumps(_raw(brk), ensure_ascii=False) + "\n")
            yield brk

    def close(self) -> None:
        if self._csv is not None:
            self._csv[0].close()
            self._csv = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _raw(brk: Break) -> dict[str, Any]:
    return {"layer": int(brk.layer), "kind": brk.kind.value, "admdiv": brk.admdiv,
            "counterparty": brk.counterparty, "vt_code": brk.vt_code,
            "voucher_no": brk.voucher_no, "version": brk.version,
            "left_amount_fen": brk.left_amount_fen, "right_amount_fen": brk.right_amount_fen,
            "left_state": brk.left_state, "right_state": brk.right_state, "detail": brk.detail}


def write_pdf(path: Path, title: str, scope: str, collector: Collector,
              layers: list[int]) -> None:
    """A printable report: summary by layer and kind, then the breaks (first PDF_ROWS)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    body = ParagraphStyle("body", fontName="STSong-Light", fontSize=9, leading=12)
    head = ParagraphStyle("head", parent=body, fontSize=15, leading=20)
    story: list[Any] = [Paragraph(title, head),
                        Paragraph(f"对账期间 {scope}；层次 {layers}；差异 {collector.total} 笔",
                                  body), Spacer(1, 8)]
    summary = [["层次", "差异类型", "笔数"]] + [
        [str(layer), "", str(n)] for layer, n in sorted(collector.by_layer.items())
    ] + [["", f"{BreakKind(k).label} ({k})", str(n)] for k, n in sorted(collector.by_kind.items())]
    story.append(_table(summary, body, colors, Table, TableStyle))
    story.append(Spacer(1, 10))
    if collector.kept:
        rows = [["层", "类型", "凭证", "我方金额", "对方金额", "我方状态", "对方状态", "说明"]]
        for r in collector.kept[:PDF_ROWS]:
            voucher = f"{r['vt_code'] or ''} {r['voucher_no'] or ''} v{r['version'] or ''}"
            rows.append([str(r["layer"]), r["label"], voucher, r["left_amount"],
                         r["right_amount"], r["left_state"] or "", r["right_state"] or "",
                         Paragraph(str(r["detail"])[:160], body)])
        story.append(_table(rows, body, colors, Table, TableStyle))
    else:
        story.append(Paragraph("三层对账一致，无差异。", body))
    SimpleDocTemplate(str(path), pagesize=landscape(A4), title=title).build(story)


def _table(rows: list[list[Any]], body: Any, colors: Any, table: Any, style: Any) -> Any:
    t = table(rows, repeatRows=1)
    t.setStyle(style([("FONT", (0, 0), (-1, -1), "STSong-Light", 8),
                      ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                      ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]))
    return t
