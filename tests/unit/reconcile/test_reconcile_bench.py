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
    assert size["n"] == 300 and size["rows"]["fin.vouchers"] == 300
    for path in ("auto", "merge"):
        assert size[path]["all_faults_found"], size[path]
        assert size[path]["breaks"]["2.duplicate_booking"] == 3
        assert size[path]["rows_per_s"] > 0
    assert size["baseline"]["baseline"]["breaks"] == 12  # 4 faults x 3 in the voucher tables
    assert size["peak_rss_mb"] > 0
    assert "faults found: all" in out
