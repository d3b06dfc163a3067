"""The reconciliation engine on a real province (SQLite files, PostgreSQL schemas): every flow
of the demo runs through sealed, encrypted envelopes; then all three layers, between every pair
of nodes and on every node, report nothing. Five faults are then made in the nodes' own
databases — a dropped message, an amount changed in one ledger, a duplicated booking, a
voucher stuck in one state, a booking with no voucher — and each is found and named; then, in
a second province, the same for the refunds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from guoku import demo_flows as world
from guoku.reconcile import Break, BreakKind, layer1, layer2, layer3
from guoku.store.tables import ledger_entries, vouchers
from guoku.workspace import Workspace

K = BreakKind
LATER = datetime.now(UTC) + timedelta(hours=1)
"""Past every grace period: what is still in flight then is a break."""


def everything(ws: Workspace) -> list[Break]:
    engines = {name: node.engine for name, node in ws.nodes.items()}
    parties = {spec.name: spec.parties for spec in ws.province.nodes}
    banks = [engines[n] for n in engines if n.startswith("bank-")]
    found: list[Break] = []
    for a, b in combinations(sorted(engines), 2):
        found += layer1(engines[a], parties[a], engines[b], parties[b], now=LATER)
    for engine in engines.values():
        found += layer2(engine)
    found += layer3(engines["finance"], banks, engines["pboc"])
    return found


def _run(engine: Engine, stmt: Any) -> None:
    with engine.begin() as conn:
        conn.execute(stmt)


def _copy(engine: Engine, vt: str, direction: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(vouchers).where(
            vouchers.c.vt_code == vt, vouchers.c.direction == direction,
            vouchers.c.state == "accepted").order_by(vouchers.c.id)).first()


def _posting(engine: Engine, account: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(ledger_entries).where(
            ledger_entries.c.account == account).order_by(ledger_entries.c.id)).first()


def test_a_province_that_ran_every_flow_reconciles_clean_then_each_fault_is_named(
    province: Workspace,
) -> None:
    flows: dict[str, str] = {}
    world.run(province, flows, [])
    assert "failed" not in flows.values(), flows
    assert everything(province) == []

    fin, bank, pboc = (province.nodes[n].engine for n in ("finance", "bank-icbc", "pboc"))
    # 1. a dropped message: finance sent the treasury a clearing quota notice (5108) that
    #    never arrived and was never answered
    notice = _copy(fin, "5108", "out")
    _run(fin, insert(vouchers).values(
        {**{k: v for k, v in notice._mapping.items() if k != "id"},
         "voucher_no": "5108-DROPPED01", "state": "sent", "updated_at": notice.created_at}))
    # 2. an amount changed in one ledger: the bank's advance of the direct payment
    paid = _copy(bank, "5201", "in")
    ref = f"5201/{paid.st_year}/{paid.voucher_no}/v{paid.version}"
    _run(bank, update(ledger_entries).where(ledger_entries.c.voucher_ref == ref,
                                            ledger_entries.c.account == "advanced")
         .values(amount_fen=ledger_entries.c.amount_fen + 1))
    # 3. a duplicated booking: finance books the unit's payment again, as a direct payment
    unit_paid = _posting(fin, "authorized_paid")
    _run(fin, insert(ledger_entries).values(
        {**{k: v for k, v in unit_paid._mapping.items() if k != "id"},
         "account": "direct_paid"}))
    # 4. a voucher stuck in one state: the treasury's copy of finance's allocation stays
    #    received, while finance's copy says the treasury accepted it
    allocation = _copy(pboc, "5207", "in")
    _run(pboc, update(vouchers).where(vouchers.c.id == allocation.id).values(state="received"))
    # 5. a booking with no voucher: the bank books an advance for a payment it never got
    _run(bank, insert(ledger_entries).values(
        admdiv=paid.admdiv, party="B-ICBC", account="advanced", agency_code="U533103001",
        fund_type="1", exp_func="2050202", day=paid.vou_date, amount_fen=777,
        voucher_ref=f"5201/{paid.st_year}/GHOST0001/v1", at="2024-01-01T00:00:00.000000Z"))

    found = {(int(b.layer), b.kind, b.voucher_no) for b in everything(province)}
    assert (1, K.MISSING, "5108-DROPPED01") in found
    assert (2, K.AMOUNT_MISMATCH, paid.voucher_no) in found
    assert (3, K.AMOUNT_MISMATCH, paid.voucher_no) in found
    assert (2, K.DUPLICATE_BOOKING, unit_paid.voucher_ref.split("/")[2]) in found
    assert (1, K.STATUS_MISMATCH, allocation.voucher_no) in found
    assert (2, K.BOOKING_WITHOUT_VOUCHER, "GHOST0001") in found
    assert (3, K.EXTRA, "GHOST0001") in found
    assert {b.kind.label for b in everything(province)} >= {
        "我方有、对方无", "金额不符", "重复记账", "状态不符", "有记账无凭证"}


def test_refund_faults_in_a_province_are_found_and_named(province: Workspace) -> None:
    """The demo's refunds — authorized (2302, 2204), direct (2302, 2203) and of an allocation
    (3208) — reconcile clean; then a refund's amount is changed in the bank's books, the bank
    books a refund the treasury never received, finance books a refund notice twice and
    finance's booking of the allocation refund is lost: each is named in layers 2 and 3."""
    flows: dict[str, str] = {}
    world.run(province, flows, [])
    assert "failed" not in flows.values(), flows
    fin, bank, pboc = (province.nodes[n].engine for n in ("finance", "bank-icbc", "pboc"))
    for engine, account in ((bank, "refund_returned"), (pboc, "refund_received"),
                            (fin, "authorized_refunded"), (fin, "direct_refunded"),
                            (fin, "allocation_refunded"), (pboc, "allocation_refunded")):
        assert _posting(engine, account) is not None, account
    assert [b for b in everything(province) if int(b.layer) == 3] == []

    def number(ref: str) -> str:
        return ref.split("/")[2]

    # 1. an amount changed in one ledger: the bank's refund application, one fen more
    returned = _posting(bank, "refund_returned")
    _run(bank, update(ledger_entries).where(ledger_entries.c.id == returned.id)
         .values(amount_fen=returned.amount_fen + 1))
    paid_no = number(returned.voucher_ref).removeprefix("2302-")
    notices = [_posting(fin, "authorized_refunded"), _posting(fin, "direct_refunded")]
    notice = next(p for p in notices if number(p.voucher_ref).endswith(f"-{paid_no}"))
    # 2. a refund booked at the bank that the treasury never received (nor finance heard of)
    _run(bank, insert(ledger_entries).values(
        {**{k: v for k, v in returned._mapping.items() if k != "id"},
         "voucher_ref": f"2302/{returned.voucher_ref.split('/')[1]}/2302-GHOST0002/v1"}))
    # 3. a duplicated refund booking: finance books the other refund notice again, as v2
    other = next(p for p in notices if p.id != notice.id)
    _run(fin, insert(ledger_entries).values(
        {**{k: v for k, v in other._mapping.items() if k != "id"},
         "voucher_ref": other.voucher_ref.rsplit("/", 1)[0] + "/v2"}))
    # 4. finance's booking of the treasury's allocation refund is lost
    allocation_refund = _posting(fin, "allocation_refunded")
    _run(fin, delete(ledger_entries).where(ledger_entries.c.id == allocation_refund.id))

    found = {(int(b.layer), b.kind, b.voucher_no) for b in everything(province)}
    assert found == {
        (2, K.AMOUNT_MISMATCH, number(returned.voucher_ref)),
        (3, K.AMOUNT_MISMATCH, number(returned.voucher_ref)),
        (3, K.AMOUNT_MISMATCH, number(notice.voucher_ref)),
        (2, K.BOOKING_WITHOUT_VOUCHER, "2302-GHOST0002"),
        (3, K.EXTRA, "2302-GHOST0002"), (3, K.MISSING, "2302-GHOST0002"),
        (2, K.DUPLICATE_BOOKING, number(other.voucher_ref)),
        (3, K.DUPLICATE_BOOKING, number(other.voucher_ref)),
        (2, K.UNBOOKED, number(allocation_refund.voucher_ref)),
        (3, K.MISSING, number(allocation_refund.voucher_ref)),
        (3, K.TOTAL_MISMATCH, None),
    }
