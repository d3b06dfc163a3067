"""`guoku reconcile` on a demo workspace: clean after the demo; each injected fault found and
named; what it finds handled through investigate, annotate and resolve, each step audited."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from guoku.cli import app
from guoku.demo import run as run_demo
from guoku.store.engine import make_engine, sqlite_url
from guoku.store.tables import (
    account_checks,
    audit_log,
    discrepancies,
    ledger_entries,
    outbox,
    voucher_events,
    vouchers,
)

runner = CliRunner()
TODAY = datetime.now(UTC).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("recon") / "ws"
    report = run_demo(workdir, log=lambda _m: None)
    assert report.flows["three_layer_reconciliation"] == "ok"
    return workdir


@pytest.fixture
def ws(demo_workspace: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "ws"
    shutil.copytree(demo_workspace / "nodes", copy / "nodes")
    yield copy


def _reconcile(ws: Path, *extra: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["reconcile", "--workdir", str(ws), "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


def _db(ws: Path, node: str):  # type: ignore[no-untyped-def]
    return make_engine(sqlite_url(ws / "nodes" / f"{node}.db"))


def test_a_clean_workspace_reports_nothing_and_exits_zero(ws: Path, tmp_path: Path) -> None:
    code, report = _reconcile(ws, "--csv", str(tmp_path / "r.csv"), "--pdf",
                              str(tmp_path / "r.pdf"))
    assert (code, report["breaks"]) == (0, 0)
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "r.csv").read_text(encoding="utf-8-sig").startswith("layer,kind")


def _drop_message(ws: Path) -> None:
    """The bank never got one voucher: its copy, and all that hangs on it, is gone."""
    with _db(ws, "bank-icbc").begin() as conn:
        victim = conn.execute(select(vouchers).where(
            vouchers.c.vt_code == "5201", vouchers.c.direction == "in")).first()
        assert victim is not None
        for table in (account_checks, voucher_events, outbox):
            conn.execute(delete(table).where(table.c.voucher_id == victim.id))
        conn.execute(delete(ledger_entries).where(ledger_entries.c.voucher_ref.like(
            f"5201/%/{victim.voucher_no}/v{victim.version}")))
        conn.execute(delete(vouchers).where(vouchers.c.id == victim.id))


def _change_amount_in_ledger(ws: Path) -> None:
    with _db(ws, "pboc").begin() as conn:
        first = conn.execute(select(ledger_entries.c.id)).scalars().first()
        conn.execute(update(ledger_entries).where(ledger_entries.c.id == first)
                     .values(amount_fen=ledger_entries.c.amount_fen + 1))


def _duplicate_booking(ws: Path) -> None:
    with _db(ws, "finance").begin() as conn:
        row = conn.execute(select(ledger_entries).where(
            ledger_entries.c.account == "direct_paid")).first()
        assert row is not None
        values = {k: v for k, v in row._asdict().items() if k != "id"}
        values["voucher_ref"] = values["voucher_ref"].replace("/v1", "/v2")
        conn.execute(insert(ledger_entries).values(**values))


def _stuck(ws: Path) -> None:
    """The bank's copy of an accepted voucher is stuck in received."""
    with _db(ws, "bank-icbc").begin() as conn:
        victim = conn.execute(select(vouchers.c.id).where(
            vouchers.c.vt_code == "5201", vouchers.c.direction == "in",
            vouchers.c.state == "accepted")).scalars().first()
        conn.execute(update(vouchers).where(vouchers.c.id == victim).values(state="received"))


def _booking_without_voucher(ws: Path) -> None:
    with _db(ws, "finance").begin() as conn:
        conn.execute(insert(ledger_entries).values(
            admdiv="533103", party="F533103", account="direct_paid", agency_code="U533103001",
            fund_type="1", exp_func="2050202", day=TODAY, amount_fen=12345,
            voucher_ref=f"5201/{TODAY[:4]}/NOSUCH/v1", at="2026-01-01T00:00:00.000000Z"))


@pytest.mark.parametrize(("fault", "kinds"), [
    (_drop_message, {"missing"}),
    (_change_amount_in_ledger, {"amount_mismatch", "total_mismatch"}),
    (_duplicate_booking, {"duplicate_booking"}),
    (_stuck, {"status_mismatch"}),
    (_booking_without_voucher, {"booking_without_voucher"}),
], ids=["dropped-message", "amount-changed", "duplicate-booking", "stuck-state",
        "booking-without-voucher"])
def test_each_injected_fault_is_found_and_named(ws: Path, fault, kinds: set[str]) -> None:  # type: ignore[no-untyped-def]
    fault(ws)
    code, report = _reconcile(ws)
    found = set(report["by_kind"])  # type: ignore[arg-type]
    assert code == 1 and found & kinds, report["by_kind"]


def test_a_discrepancy_is_investigated_annotated_and_resolved_with_an_audit_trail(
    ws: Path,
) -> None:
    _booking_without_voucher(ws)
    _reconcile(ws)
    listed = json.loads(runner.invoke(app, ["reconcile", "discrepancies", "list", "--workdir",
                                            str(ws), "--json"]).stdout)
    target = listed[0]["id"]
    base = ["--workdir", str(ws), "--user", "reconciler"]
    refused = runner.invoke(app, ["reconcile", "discrepancies", "resolve", str(target), *base,
                                  "--note", "too early"])
    assert refused.exit_code != 0
    for step, note in (("investigate", None), ("annotate", "录入测试数据所致"),
                       ("resolve", "已冲销该笔记账")):
        args = ["reconcile", "discrepancies", step, str(target), *base]
        result = runner.invoke(app, args + (["--note", note] if note else []))
        assert result.exit_code == 0, result.output
    with _db(ws, "finance").connect() as conn:
        status = conn.execute(select(discrepancies.c.status).where(
            discrepancies.c.id == target)).scalar_one()
        trail = conn.execute(select(audit_log.c.action).where(
            audit_log.c.action.like("discrepancy.%"))).scalars().all()
    assert status == "resolved"
    assert trail == ["discrepancy.investigate", "discrepancy.annotate", "discrepancy.resolve"]
