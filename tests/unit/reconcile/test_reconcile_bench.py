"""The scale benchmark runs end to end on a small size: data generated in SQL, every injected
fault found by both ways of reading, figures on a final JSON line."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    return importlib.import_module("bench.__main__")


def test_a_small_run_finds_every_fault_and_ends_with_its_figures(
    runner: ModuleType, capsys: pytest.CaptureFixture[str], pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert runner.main(["reconcile_scale", "--sizes", "300", "--url", pg_url]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["bench"] == "reconcile_scale" and "--with-10m" in result["skipped"]
    [size] = result["sizes"]
    # 300 payments, and the refund notices of 4 x 3 of them (the 5th refund never got one)
    assert size["n"] == 300 and size["rows"]["fin.vouchers"] == 300 + 12
    for path in ("auto", "merge"):
        assert size[path]["all_faults_found"], size[path]
        assert size[path]["breaks"]["2.duplicate_booking"] == 3 + 3  # a payment, a refund
        assert size[path]["breaks"]["3.duplicate_booking"] == 3
        assert size[path]["rows_per_s"] > 0
    # 4 faults x 3 in the voucher tables, and the bank's 5 x 3 refund applications, which
    # finance's table has no copy of
    assert size["baseline"]["baseline"]["breaks"] == 12 + 15
    assert size["peak_rss_mb"] > 0
    assert "faults found: all" in out
