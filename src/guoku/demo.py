"""``guoku demo``: a province on the embedded default, every party exercised end to end.

What it runs grows with the project. Today: the key ceremony (CA, signing servers, seals, USB
keys); in each county, a direct-payment voucher entered, reviewed, sealed and sent by three
different finance clerks, verified and accepted by the agent bank, the receipt back at finance;
a voucher returned by the bank, revised as version 2 and accepted; a void and restore; and the
refusals the controls promise (one person sealing what they entered, a clerk of one county
reading another's vouchers). Then every node's audit chain is verified.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guoku.domain.errors import GuokuError, NotFound, PermissionDenied
from guoku.library.service import VoucherLibrary
from guoku.store import audit
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.workspace import Workspace, create
from guoku.xml.samples import sample_document

COUNTIES = ("533103", "533102")


@dataclass
class DemoReport:
    workdir: Path
    flows: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    vouchers: int = 0
    audit_chain: str = "ok"
    audit_entries: int = 0
    exported: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "vouchers": self.vouchers, "flows": self.flows, "audit_chain": self.audit_chain,
            "audit_entries": self.audit_entries, "exported": self.exported,
            "workdir": str(self.workdir), "trust": str(self.workdir / "trust"),
            "seconds": round(self.seconds, 2),
        }


def run(workdir: Path, log: Callable[[str], None] = print) -> DemoReport:
    started = time.perf_counter()
    report = DemoReport(workdir)
    log(f"key ceremony and four nodes in {workdir} ...")
    ws = create(workdir, datetime.now(UTC))
    for name, step in (("voucher_lifecycle", _lifecycle), ("return_and_revise", _revise),
                       ("void_and_restore", _void_restore), ("internal_control", _controls)):
        try:
            step(ws, report)
            report.flows[name] = "ok"
        except GuokuError as exc:
            report.flows[name] = "failed"
            report.notes.append(f"{name}: {exc}")
        log(f"  {name}: {report.flows[name]}")
    from guoku.demo_flows import run as run_flows

    run_flows(ws, report.flows, report.notes)
    report.exported = export(ws)
    report.vouchers = sum(_count(n.library.engine) for n in ws.nodes.values())
    _verify_audit(ws, report)
    report.seconds = time.perf_counter() - started
    return report


def _lib(ws: Workspace, party: str) -> VoucherLibrary:
    return ws.node_for(party).library


def _direct_payment(ws: Workspace, county: str, no: str, amount: str) -> VoucherRow:
    """Finance of ``county`` enters, reviews, seals and sends a 5201 to ICBC: three clerks."""
    fin = _lib(ws, f"F{county}")
    doc = sample_document("5201", voucher_no=no, amount=amount, admdiv=county,
                          vou_date=datetime.now(UTC).strftime("%Y%m%d"))
    header = {**doc.header, "PayBankCode": "B-ICBC", "PayBankName": "中国工商银行云南省分行"}
    row = fin.create(f"fin-{county}-entry", "5201", header, doc.details, receiver="B-ICBC")
    fin.check(f"fin-{county}-review", row.id)
    fin.seal(f"fin-{county}-seal", row.id)
    return fin.send(f"fin-{county}-seal", row.id)


def _bank_copy(ws: Workspace, county: str, sent: VoucherRow) -> VoucherRow:
    bank = _lib(ws, "B-ICBC")
    page = bank.query(f"icbc-{county}-recv", VoucherQuery(vt_code=sent.vt_code, state="received"),
                      page_size=500)
    for row in page.items:
        if row.voucher_no == sent.voucher_no and row.version == sent.version:
            return row
    raise NotFound(f"ICBC did not receive {sent.ref}")


def _expect(row: VoucherRow, state: str) -> None:
    if row.state != state:
        raise GuokuError(f"{row.ref} is {row.state}, expected {state}")


def _lifecycle(ws: Workspace, report: DemoReport) -> None:
    for i, county in enumerate(COUNTIES, start=1):
        sent = _direct_payment(ws, county, f"ZF{county}{i:04d}", f"{12000 + i * 345}.60")
        ws.network.pump()
        received = _bank_copy(ws, county, sent)
        _lib(ws, "B-ICBC").accept(f"icbc-{county}-recv", received.id)
        ws.network.pump()
        _expect(_lib(ws, f"F{county}").get(f"fin-{county}-entry", sent.id), "accepted")
        report.notes.append(f"{sent.ref} sealed, sent, verified and accepted by ICBC")


def _revise(ws: Workspace, report: DemoReport) -> None:
    county = COUNTIES[0]
    fin = _lib(ws, f"F{county}")
    sent = _direct_payment(ws, county, f"ZF{county}9001", "880.00")
    ws.network.pump()
    received = _bank_copy(ws, county, sent)
    _lib(ws, "B-ICBC").return_(f"icbc-{county}-recv", received.id, "收款人账号与户名不符")
    ws.network.pump()
    _expect(fin.get(f"fin-{county}-entry", sent.id), "returned")
    v2 = fin.revise(f"fin-{county}-entry", sent.id, {"PayeeAcctName": "芒市第一中学"})
    fin.check(f"fin-{county}-review", v2.id)
    fin.seal(f"fin-{county}-seal", v2.id)
    fin.send(f"fin-{county}-seal", v2.id)
    ws.network.pump()
    _lib(ws, "B-ICBC").accept(f"icbc-{county}-recv", _bank_copy(ws, county, v2).id)
    ws.network.pump()
    _expect(fin.get(f"fin-{county}-entry", v2.id), "accepted")
    report.notes.append(f"{sent.ref} returned (收款人账号与户名不符), revised as v2, accepted")


def _void_restore(ws: Workspace, report: DemoReport) -> None:
    county = COUNTIES[1]
    fin = _lib(ws, f"F{county}")
    doc = sample_document("5201", voucher_no=f"ZF{county}9002", amount="66.00", admdiv=county)
    row = fin.create(f"fin-{county}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
    fin.void(f"fin-{county}-entry", row.id, "录入重复")
    restored = fin.restore(f"fin-{county}-entry", row.id)
    _expect(restored, "draft")
    _finish(ws, county, restored)
    report.notes.append(f"{row.ref} voided (录入重复), restored, sealed anew and accepted")


def _finish(ws: Workspace, county: str, row: VoucherRow, checked: bool = False) -> None:
    """Review (unless done), seal, send and have ICBC accept a finance draft."""
    fin = _lib(ws, f"F{county}")
    if not checked:
        fin.check(f"fin-{county}-review", row.id)
    fin.seal(f"fin-{county}-seal", row.id)
    sent = fin.send(f"fin-{county}-seal", row.id)
    ws.network.pump()
    _lib(ws, "B-ICBC").accept(f"icbc-{county}-recv", _bank_copy(ws, county, sent).id)
    ws.network.pump()
    _expect(fin.get(f"fin-{county}-entry", row.id), "accepted")


def _controls(ws: Workspace, report: DemoReport) -> None:
    county, other = COUNTIES
    fin = _lib(ws, f"F{county}")
    doc = sample_document("5201", voucher_no=f"ZF{county}9003", amount="10.00", admdiv=county)
    row = fin.create(f"fin-{county}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
    fin.check(f"fin-{county}-review", row.id)
    try:
        fin.seal(f"fin-{county}-review", row.id)
    except PermissionDenied:  # SeparationOfDuties is one; a missing seal post another
        report.notes.append(f"the reviewer of {row.ref} was refused the seal")
    else:
        raise GuokuError("the reviewer could seal the voucher they reviewed")
    try:
        fin.get(f"fin-{other}-entry", row.id)
    except NotFound:
        report.notes.append(f"a clerk of {other} cannot see {row.ref} of {county}")
    else:
        raise GuokuError("a clerk read another county's voucher")
    _finish(ws, county, row, checked=True)


def export(ws: Workspace) -> int:
    """Every voucher version of every node as XML under WORKDIR/export/<node>/."""
    from sqlalchemy import select

    from guoku.store.tables import vouchers

    count = 0
    for name, node in ws.nodes.items():
        out = ws.workdir / "export" / name
        out.mkdir(parents=True, exist_ok=True)
        with node.engine.connect() as conn:
            for r in conn.execute(select(vouchers)).all():
                path = out / f"{r.vt_code}_{r.voucher_no}_v{r.version}_{r.direction}.xml"
                path.write_bytes(r.xml)
                count += 1
    return count


def _count(engine: Any) -> int:
    from sqlalchemy import func, select

    from guoku.store.tables import vouchers

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(vouchers)).scalar_one())


def _verify_audit(ws: Workspace, report: DemoReport) -> None:
    for node in ws.nodes.values():
        checked, broken = audit.verify(node.engine)
        report.audit_entries += checked
        if broken is not None:
            report.audit_chain = "broken"
            report.notes.append(f"audit chain of {node.spec.name} broken: {broken.reason}")
