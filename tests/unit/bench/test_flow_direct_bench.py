"""The direct-payment benchmark: a batch call counts as its stamps and replays as it was made,
the modes interleave, and a tiny run of both modes ends with its figures on one JSON line."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from guoku.domain.controls import Post
from guoku.domain.seals import SealKind
from guoku.security.signing_server import SealRequest

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the runner rewrites it for the benchmark
    return importlib.import_module("bench.__main__")


@pytest.fixture
def flow_direct(runner: ModuleType) -> ModuleType:
    return importlib.import_module("bench.flow_direct")


def last_json(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


class FakeSigningClient:
    """Stamps ``data`` as ``b"sig:" + data`` and remembers every call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def seal_sign(self, *, data: bytes, **_: Any) -> bytes:
        self.calls.append(("seal_sign", data))
        return b"sig:" + data

    def batch_seal_sign(self, requests: tuple[SealRequest, ...]) -> list[bytes]:
        self.calls.append(("batch_seal_sign", requests))
        return [b"sig:" + r.data for r in requests]

    def institution_certificate(self, party_code: str) -> str:
        return f"cert of {party_code}"


def request(data: bytes) -> SealRequest:
    return SealRequest("clerk", Post.SEAL, "B-ICBC", SealKind.BANK_BUSINESS, data, NOW, "")


def test_a_batch_call_counts_as_its_stamps_and_is_replayed_as_one_call(
    flow_direct: ModuleType,
) -> None:
    ops, inner = flow_direct.Ops(), FakeSigningClient()
    official = flow_direct._OfficialRecorder(inner, ops)
    batch = [request(b"a"), request(b"b"), request(b"c")]
    assert official.batch_seal_sign(batch) == [b"sig:a", b"sig:b", b"sig:c"]
    assert official.seal_sign(username="clerk", data=b"d", now=NOW) == b"sig:d"
    assert official.institution_certificate("B-ICBC") == "cert of B-ICBC"  # passed through

    assert ops.counts() == {"seal_sign": 4}  # stamps, not calls
    assert ops.calls_made() == {"seal_sign": 2}
    assert list(ops.stamps()) == [(b"sig:" + d, d) for d in (b"a", b"b", b"c", b"d")]
    assert flow_direct._per(ops.counts(), 4) == {"seal_sign": 1.0}

    inner.calls.clear()
    spent = ops.replay(flow_direct.SEALING)
    assert inner.calls == [("batch_seal_sign", tuple(batch)), ("seal_sign", b"d")]
    assert set(spent) == {"seal_sign"} and spent["seal_sign"] > 0
    assert ops.replay(flow_direct.ENVELOPES) == {}


def test_the_modes_units_are_spread_over_the_run(flow_direct: ModuleType) -> None:
    assert flow_direct.interleaved({"batch": 2, "single": 4}) == [
        "single",
        "batch",
        "single",
        "single",
        "batch",
        "single",
    ]
    assert flow_direct.interleaved({"batch": 3}) == ["batch"] * 3


def test_a_tiny_run_of_both_modes_ends_with_the_figures_and_the_verdict(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["flow_direct", "--batch", "3", "--count", "1", "--single", "1", "--warmup", "2"]
    assert runner.main([*argv, "--profile", "1"]) == 0
    out = capsys.readouterr().out
    result = last_json(out)
    assert (result["bench"], result["deployment"], result["warmup_units"]) == (
        "flow_direct",
        "embedded",
        2,
    )
    batch, single = result["modes"]["batch"], result["modes"]["single"]
    assert (batch["payments_per_unit"], batch["units"], batch["payments"]) == (3, 1, 3)
    assert (single["payments_per_unit"], single["units"], single["payments"]) == (1, 1, 1)
    for mode in (batch, single):
        shape = mode["per_payment"]
        # counted, not assumed, and per payment: 5201 and 5108 carry an official and a
        # personal stamp, the other six vouchers one official stamp; every stamp is verified
        # once by its receiver
        assert shape["vouchers"] == 8 and shape["counts_stable"]
        ops = shape["operations"]
        assert (ops["seal_sign"], ops["personal_sign"], ops["verify"]) == (8, 2, 10)
        # one signing-server call per issuing step (eight), however many vouchers it stamps
        assert shape["calls_per_unit"]["seal_sign"] == 8
        assert shape["database"]["statements"] > shape["database"]["transactions"] > 0
        for figure in ("payments_per_s", "vouchers_per_s", "crypto_bound_payments_per_s"):
            assert mode[figure] > 0, figure
        assert mode["vouchers_per_s"] == pytest.approx(8 * mode["payments_per_s"], rel=0.01)
        assert (
            0
            < mode["ratio"]
            == pytest.approx(mode["payments_per_s"] / mode["crypto_bound_payments_per_s"], 0.01)
        )
    # the batch shares its steps' settles, transactions and envelopes among its payments
    assert (
        single["per_payment"]["operations"]["settle"],
        batch["per_payment"]["operations"]["settle"],
    ) == (5, pytest.approx(5 / 3, abs=0.001))
    assert batch["per_payment"]["envelopes"] < single["per_payment"]["envelopes"]
    assert (
        batch["per_payment"]["database"]["transactions"]
        < single["per_payment"]["database"]["transactions"]
    )
    assert result["target"] == {"ratio": 0.5, "mode": "batch", "pass": batch["ratio"] >= 0.5}
    assert ("PASS" if result["target"]["pass"] else "FAIL") in out
    assert f"not judged: single {single['ratio']:.1%}" in out
    assert result["profile"]["payments"] == 3
    assert sum(result["profile"]["shares"].values()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    "args", [["--count", "200"], ["--batch", "0"], ["--single", "-1"], ["--warmup", "0"]]
)
def test_a_run_out_of_bounds_is_refused(
    runner: ModuleType, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit):
        runner.main(["flow_direct", *args])
    assert "flow_direct" in capsys.readouterr().err
