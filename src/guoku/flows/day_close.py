"""Day close (日终): the agent bank's daily reports to finance, and finance's check of them.

* 授权支付日报表 (2205): the unit payment vouchers (8202) the bank paid that day;
* 财政直接支付日报表 (2206): the direct payment vouchers (5201) it paid that day;
* 授权支付退款日报表 (2207): the refund applications (2302) of authorized payments that day.

One report per division, fund type and report type, built from the bank's own vouchers. Finance
checks every detail line against its records (the voucher exists, was paid, same amount) and
accepts the report — or returns it naming the differences.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from guoku.domain.errors import Conflict
from guoku.domain.money import Amount
from guoku.flows.desk import Desk, Province, issue, received
from guoku.flows.model import AUTHORIZED, DIRECT
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.store.tables import vouchers
from guoku.xml.codec import from_xml

PAID = ("accepted",)


@dataclass(frozen=True, slots=True)
class ReportKind:
    vt_code: str
    source_type: str
    direction: str
    pay_type: str
    original_type: str | None = None
    """For refunds: only applications refunding this voucher type."""


REPORTS = (
    ReportKind("2205", "8202", "in", AUTHORIZED),
    ReportKind("2206", "5201", "in", DIRECT),
    ReportKind("2207", "2302", "out", AUTHORIZED, original_type="8202"),
)


@dataclass
class DayCloseResult:
    day: str
    reports: list[VoucherRow] = field(default_factory=list)
    accepted: int = 0
    returned: dict[str, str] = field(default_factory=dict)


class DayAlreadyClosed(Conflict):
    code = "DAY_ALREADY_CLOSED"


def close_day(province: Province, bank: Desk, finance: Desk, day: str) -> DayCloseResult:
    """Build, seal and send the bank's daily reports of ``day`` for the desk's division;
    finance checks each and accepts or returns it. A day closes once."""
    result = DayCloseResult(day)
    lib = province.library(bank.party)
    done = [r for kind in REPORTS for r in lib.query(
        bank.entry, VoucherQuery(vt_code=kind.vt_code, direction="out", date_from=day,
                                 date_to=day)).items]
    if done:
        raise DayAlreadyClosed(f"{day} is closed for {bank.party} in {bank.admdiv} already "
                               f"({len(done)} daily reports sent)", day=day)
    for kind in REPORTS:
        rows = _paid_on(lib.query(bank.entry, VoucherQuery(vt_code=kind.source_type,
                                                           direction=kind.direction,
                                                           date_from=day, date_to=day),
                                  page_size=500).items, kind)
        for fund_type, group in _by_fund_type(rows).items():
            result.reports.append(issue(province, bank, kind.vt_code,
                                        _header(kind, group, fund_type, bank, day),
                                        _details(group), receiver=finance.party))
    province.settle()
    for report in result.reports:
        problems = check_report(province, finance, report)
        copy = received(province, finance, report)
        fin = province.library(finance.party)
        if problems:
            reason = "; ".join(problems)[:200]
            fin.return_(finance.receiver, copy.id, reason)
            result.returned[report.ref] = reason
        else:
            fin.accept(finance.receiver, copy.id)
            result.accepted += 1
    province.settle()
    return result


def _paid_on(rows: Iterable[VoucherRow], kind: ReportKind) -> list[VoucherRow]:
    chosen = [r for r in rows if r.state in PAID]
    if kind.original_type is not None:  # a refund application names what it refunds
        chosen = [r for r in chosen if {d["OriVtCode"] for d in from_xml(r.xml).details}
                  == {kind.original_type}]
    return chosen


def _by_fund_type(rows: Iterable[VoucherRow]) -> dict[str, list[VoucherRow]]:
    groups: dict[str, list[VoucherRow]] = defaultdict(list)
    for row in rows:
        groups[from_xml(row.xml).header["FundTypeCode"]].append(row)
    return dict(groups)


def _header(kind: ReportKind, rows: list[VoucherRow], fund_type: str, bank: Desk,
            day: str) -> dict[str, str]:
    first = from_xml(rows[0].xml).header
    total = sum((Amount(r.amount_fen) for r in rows), Amount.zero())
    header = {"AdmDivCode": bank.admdiv, "StYear": day[:4], "VtCode": kind.vt_code,
              "VouDate": day, "VoucherNo": f"{kind.vt_code}-{bank.party}-{bank.admdiv}-{day}-"
              f"{fund_type}"[:42], "FundTypeCode": fund_type, "PayTypeCode": kind.pay_type,
              "PayAmt": total.wire(),
              "PayBankCode": bank.party}
    for name in ("FinOrgCode", "TreCode", "FundTypeName", "PayBankName", "ClearBankCode",
                 "ClearBankName"):
        if first.get(name):
            header[name] = first[name]
    return header


def _details(rows: list[VoucherRow]) -> list[dict[str, str]]:
    """One line per paid voucher; a refund application contributes the lines it refunds."""
    lines: list[dict[str, str]] = []
    for row in rows:
        doc = from_xml(row.xml)
        if row.vt_code == "2302":
            lines += [{k: d[k] for k in ("OriVtCode", "OriVoucherNo", "AgencyCode", "PayAmt")}
                      for d in doc.details]
        else:
            lines.append({"OriVtCode": row.vt_code, "OriVoucherNo": row.voucher_no,
                          "AgencyCode": doc.header.get("AgencyCode", ""),
                          "PayAmt": Amount(row.amount_fen).wire()})
    return [{"Id": str(i), **line} for i, line in enumerate(lines, start=1)]


def check_report(province: Province, finance: Desk, report: VoucherRow) -> list[str]:
    """Finance's business system checks every line against its own records: the voucher was
    sent from its platform (finance or a unit it hosts), paid, for the same amount."""
    engine = province.library(finance.party).engine
    problems = []
    with engine.connect() as conn:
        for line in from_xml(report.xml).details:
            own = conn.execute(select(vouchers.c.amount_fen).where(
                vouchers.c.admdiv == finance.admdiv, vouchers.c.direction == "out",
                vouchers.c.vt_code == line["OriVtCode"],
                vouchers.c.voucher_no == line["OriVoucherNo"],
                vouchers.c.state == "accepted")).first()
            if own is None:
                problems.append(f"{line['OriVoucherNo']}: no paid voucher in finance's records")
            elif Amount(int(own.amount_fen)).wire() != line["PayAmt"]:
                problems.append(f"{line['OriVoucherNo']}: amount {line['PayAmt']} differs from "
                                f"{Amount(int(own.amount_fen)).wire()}")
    return problems
