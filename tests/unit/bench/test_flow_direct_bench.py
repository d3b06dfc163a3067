"""The direct-payment benchmark runs end to end and ends with its figures on one JSON line."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the runner rewrites it for the benchmark
    return importlib.import_module("bench.__main__")


def last_json(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_two_direct_payments_end_with_the_figures_and_the_verdict(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["flow_direct", "--count", "2", "--warmup", "1", "--profile", "1"]
    assert runner.main(argv) == 0
    out = capsys.readouterr().out
    result = last_json(out)
    assert (result["bench"], result["deployment"], result["count"]) == (
        "flow_direct",
        "embedded",
        2,
    )
    shape = result["per_payment"]
    assert shape["vouchers"] == 8 and shape["envelopes"] > 0
    # counted, not assumed: 5201 and 5108 carry an official and a personal stamp, the other
    # six vouchers one official stamp; every stamp is verified once by its receiver
    assert shape["operations"]["seal_sign"] == 8
    assert shape["operations"]["personal_sign"] == 2
    assert shape["operations"]["verify"] == 10
    assert shape["database"]["statements"] > shape["database"]["transactions"] > 0
    for figure in ("payments_per_s", "vouchers_per_s", "crypto_bound_payments_per_s"):
        assert result[figure] > 0, figure
    assert (
        0
        < result["ratio"]
        == pytest.approx(result["payments_per_s"] / result["crypto_bound_payments_per_s"], rel=0.01)
    )
    assert result["target"] == {"ratio": 0.5, "pass": result["ratio"] >= 0.5}
    assert sum(result["profile"]["shares"].values()) == pytest.approx(1.0, abs=0.01)
    assert ("PASS" if result["target"]["pass"] else "FAIL") in out
    assert shape["operations"]["settle"] == 5 and result["idle_settle_ms"] >= 0


def test_a_run_longer_than_the_flow_can_take_is_refused(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        runner.main(["flow_direct", "--count", "500"])
    assert "MAX_COUNT" in capsys.readouterr().err
