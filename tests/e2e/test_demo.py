"""The README's first command, as a user runs it: `guoku demo`, then offline verification."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUOKU = [sys.executable, "-m", "guoku"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GUOKU, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    workdir = tmp_path_factory.mktemp("demo") / "ws"
    result = _run("demo", "--workdir", str(workdir), "--json")
    assert result.returncode == 0, result.stderr
    return workdir, json.loads(result.stdout.strip().splitlines()[-1])


def test_the_demo_reports_every_flow_ok_and_an_intact_audit_chain(
    demo: tuple[Path, dict[str, object]],
) -> None:
    _, report = demo
    assert report["audit_chain"] == "ok"
    flows = report["flows"]
    assert isinstance(flows, dict) and flows and set(flows.values()) == {"ok"}
    assert isinstance(report["vouchers"], int) and report["vouchers"] >= 10


def test_every_exported_voucher_verifies_offline(demo: tuple[Path, dict[str, object]]) -> None:
    workdir, report = demo
    files = sorted((workdir / "export").glob("*/*.xml"))
    assert len(files) == report["exported"]
    result = _run("verify", *map(str, files), "--trust", str(workdir / "trust"), "--json")
    assert result.returncode == 0, result.stdout
    assert all(r["valid"] for r in json.loads(result.stdout))


def test_a_voucher_with_one_field_changed_is_refused(
    demo: tuple[Path, dict[str, object]], tmp_path: Path,
) -> None:
    workdir, _ = demo
    original = sorted((workdir / "export" / "bank-icbc").glob("5201_*.xml"))[0]
    changed = tmp_path / "changed.xml"
    text = original.read_text(encoding="utf-8")
    changed.write_text(re.sub(r"<PayeeAcctName>[^<]*<", "<PayeeAcctName>某某公司<", text, count=1),
                       encoding="utf-8")
    result = _run("verify", str(changed), "--trust", str(workdir / "trust"), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)[0]["code"] == "SEAL_DATA_MISMATCH"


def test_the_audit_chains_of_every_node_verify(demo: tuple[Path, dict[str, object]]) -> None:
    workdir, _ = demo
    result = _run("audit", "verify", "--workdir", str(workdir), "--json")
    assert result.returncode == 0, result.stdout
    assert {r["status"] for r in json.loads(result.stdout).values()} == {"ok"}


def test_the_demo_reports_every_business_flow_ok(demo: tuple[Path, dict[str, object]]) -> None:
    _, report = demo
    flows = report["flows"]
    assert isinstance(flows, dict)
    for name in ("authorized_payment", "direct_payment", "allocation", "authorized_refund",
                 "direct_refund", "allocation_refund", "quota_issue"):
        assert flows[name] == "ok", name


def test_the_flow_commands_drive_a_payment_on_the_demo_workspace(
    demo: tuple[Path, dict[str, object]],
) -> None:
    workdir, _ = demo
    paid = _run("flow", "authorized-pay", "--no", "CLI0001", "--amount", "99.00",
                "--workdir", str(workdir), "--json")
    assert paid.returncode == 0, paid.stderr
    assert "9301:F533103" in json.loads(paid.stdout)["vouchers"]
    refused = _run("flow", "authorized-pay", "--no", "CLI0002", "--amount", "999999.00",
                   "--workdir", str(workdir))
    assert refused.returncode == 2 and "QUOTA_EXCEEDED" in refused.stderr
    closed = _run("day", "close", "--workdir", str(workdir))
    assert closed.returncode == 2 and "DAY_ALREADY_CLOSED" in closed.stderr
