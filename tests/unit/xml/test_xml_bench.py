"""The benchmark runner and the XML benchmark work end to end on a handful of vouchers."""

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
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the runner rewrites it for the benchmark
    return importlib.import_module("bench.__main__")


def test_list_names_the_xml_benchmark(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(["list"]) == 0
    assert "xml_build" in capsys.readouterr().out


def test_an_unknown_benchmark_is_an_error(runner: ModuleType) -> None:
    assert runner.main(["no_such_bench"]) == 2


def test_xml_build_ends_with_a_json_line(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(["xml_build", "--count", "44"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["count"] == 44
    assert result["guoku_vouchers_per_s"] > 0
    assert result["baseline_lxml_vouchers_per_s"] > 0
