"""``guoku demo``: a province on the embedded default, every party exercised end to end.

The key ceremony (CA, signing servers, seals, USB keys); the voucher library's own lifecycle on
clearing quota notices (5108) to the central bank — entered, reviewed, sealed and sent by three
different finance clerks, verified and accepted, a return revised as version 2, a void and
restore, the refusals the controls promise — then every business flow (demo_flows), day close and
reconciliation. Every node's audit chain is verified at the end.
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
    _three_layers(ws, report)
    report.exported = export(ws)
    report.vouchers = sum(_count(n.library.engine) for n in ws.nodes.values())
    _verify_audit(ws, report)
    report.seconds = time.perf_counter() - started
    return report


def _lib(ws: Workspace, party: str) -> VoucherLibrary:
    return ws.node_for(party).library


TODAY = datetime.now(UTC).strftime("%Y%m%d")
NOTICE, TREASURY = "5108", "P530000"
"""The lifecycle scenes use clearing quota notices to the treasury: vouchers that book nothing,
so the payment flows' books stay exactly as those flows made them."""


def _notice(ws: Workspace, county: str, no: str, amount: str) -> VoucherRow:
    """Finance of ``county`` enters, reviews, seals and sends a 5108: three clerks."""
    fin = _lib(ws, f"F{county}")
    row = _draft(ws, county, no, amount)
    fin.check(f"fin-{county}-review", row.id)
    fin.seal(f"fin-{county}-seal", row.id)
    return fin.send(f"fin-{county}-seal", row.id)


def _draft(ws: Workspace, county: str, no: str, amount: str) -> VoucherRow:
    doc = sample_document(NOTICE, voucher_no=no, amount=amount, admdiv=county, vou_date=TODAY)
    return _lib(ws, f"F{county}").create(f"fin-{county}-entry", NOTICE, doc.header,
                                         doc.details, receiver=TREASURY)


def _bank_copy(ws: Workspace, county: str, sent: VoucherRow) -> VoucherRow:
    """The treasury's copy of ``sent``."""
    treasury = _lib(ws, TREASURY)
    page = treasury.query(f"pboc-{county}-recv",
                          VoucherQuery(vt_code=sent.vt_code, state="received"), page_size=500)
    for row in page.items:
        if row.voucher_no == sent.voucher_no and row.version == sent.version:
            return row
    raise NotFound(f"the treasury did not receive {sent.ref}")


def _expect(row: VoucherRow, state: str) -> None:
    if row.state != state:
        raise GuokuError(f"{row.ref} is {row.state}, expected {state}")


def _lifecycle(ws: Workspace, report: DemoReport) -> None:
    for i, county in enumerate(COUNTIES, start=1):
        sent = _notice(ws, county, f"QS{county}{i:04d}", f"{12000 + i * 345}.60")
        ws.network.pump()
        received = _bank_copy(ws, county, sent)
        _lib(ws, TREASURY).accept(f"pboc-{county}-recv", received.id)
        ws.network.pump()
        _expect(_lib(ws, f"F{county}").get(f"fin-{county}-entry", sent.id), "accepted")
        report.notes.append(f"{sent.ref} sealed, sent, verified and accepted by the treasury")


def _revise(ws: Workspace, report: DemoReport) -> None:
    county = COUNTIES[0]
    fin = _lib(ws, f"F{county}")
    sent = _notice(ws, county, f"QS{county}9001", "880.00")
    ws.network.pump()
    received = _bank_copy(ws, county, sent)
    _lib(ws, TREASURY).return_(f"pboc-{county}-recv", received.id, "清算行行号有误")
    ws.network.pump()
    _expect(fin.get(f"fin-{county}-entry", sent.id), "returned")
    v2 = fin.revise(f"fin-{county}-entry", sent.id, {"ClearBankCode": "011731000018"})
    fin.check(f"fin-{county}-review", v2.id)
    fin.seal(f"fin-{county}-seal", v2.id)
    fin.send(f"fin-{county}-seal", v2.id)
    ws.network.pump()
    _lib(ws, TREASURY).accept(f"pboc-{county}-recv", _bank_copy(ws, county, v2).id)
    ws.network.pump()
    _expect(fin.get(f"fin-{county}-entry", v2.id), "accepted")
    report.notes.append(f"{sent.ref} returned (清算行行号有误), revised as v2, accepted")


def _void_restore(ws: Workspace, report: DemoReport) -> None:
    county = COUNTIES[1]
    fin = _lib(ws, f"F{county}")
    row = _draft(ws, county, f"QS{county}9002", "66.00")
    fin.void(f"fin-{county}-entry", row.id, "录入重复")
    restored = fin.restore(f"fin-{county}-entry", row.id)
    _expect(restored, "draft")
    _finish(ws, county, restored)
    report.notes.append(f"{row.ref} voided (录入重复), restored, sealed anew and accepted")


def _finish(ws: Workspace, county: str, row: VoucherRow, checked: bool = False) -> None:
    """Review (unless done), seal, send and have the treasury accept a finance draft."""
    fin = _lib(ws, f"F{county}")
    if not checked:
        fin.check(f"fin-{county}-review", row.id)
    fin.seal(f"fin-{county}-seal", row.id)
    sent = fin.send(f"fin-{county}-seal", row.id)
    ws.network.pump()
    _lib(ws, TREASURY).accept(f"pboc-{county}-recv", _bank_copy(ws, county, sent).id)
    ws.network.pump()
    _expect(fin.get(f"fin-{county}-entry", row.id), "accepted")


def _controls(ws: Workspace, report: DemoReport) -> None:
    county, other = COUNTIES
    fin = _lib(ws, f"F{county}")
    row = _draft(ws, county, f"QS{county}9003", "10.00")
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


def _three_layers(ws: Workspace, report: DemoReport) -> None:
    """All three reconciliation layers over every node, recorded in finance's node."""
    from guoku.reconcile.layer1 import layer1
    from guoku.reconcile.layer2 import layer2
    from guoku.reconcile.layer3 import layer3
    from guoku.reconcile.report import Collector
    from guoku.reconcile.workflow import record_run

    engines = {name: node.engine for name, node in ws.nodes.items()}
    parties = {n.name: n.parties for n in ws.province.nodes}
    banks = [n for n in engines if n.startswith("bank")]
    pairs = [("finance", b) for b in banks] + [("finance", "pboc")] + [(b, "pboc") for b in banks]
    collector = Collector()
    collector.open_spool()
    streams = [layer1(engines[a], parties[a], engines[b], parties[b], day=TODAY)
               for a, b in pairs]
    streams += [layer2(engine, day=TODAY) for engine in engines.values()]
    streams.append(layer3(engines["finance"], [engines[b] for b in banks], engines["pboc"],
                          day=TODAY))
    for stream in streams:
        for _ in collector.add(stream):
            pass
    record_run(engines["finance"], collector.spooled(), mode="daily", layers="123",
               scope=TODAY, user="reconciler")
    collector.close()
    report.flows["three_layer_reconciliation"] = "ok" if collector.total == 0 else "failed"
    report.notes.append(
        f"three-layer reconciliation of {TODAY}: " + (
            "every layer agrees" if collector.total == 0 else
            f"{collector.total} differences {collector.by_kind}"))


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
