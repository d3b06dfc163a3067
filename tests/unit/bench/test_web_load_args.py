"""The web load benchmark's arguments and its reading of locust's CSV (no server, no locust:
locust patches the standard library and never runs inside the test suite)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.web_load import MAX_SECONDS, parse_args, summarize

STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
GET,/counter,32,0,10,17.1,5,210,5000,3.56,0.0,10,12,15,15,21,44,210,210,210,210,210
POST,/counter/payments,15,1,17,40.0,9,300,300,1.67,0.1,17,25,26,31,34,300,300,300,300,300,300
,Aggregated,47,1,12,25.3,5,300,3000,5.23,0.1,12,16,19,21,36,120,210,230,300,300,300
"""


def test_defaults_are_a_bounded_thirty_second_run() -> None:
    args = parse_args([])
    assert (args.seconds, args.users, args.workdir) == (30, 10, None)


@pytest.mark.parametrize("argv", [["--seconds", "0"], ["--seconds", str(MAX_SECONDS + 1)],
                                  ["--users", "0"], ["--spawn-rate", "0"]])
def test_unbounded_or_empty_runs_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_locust_csv_gives_requests_per_second_and_p99_per_kind() -> None:
    rows = summarize(STATS)
    assert [r.name for r in rows] == ["GET /counter", "POST /counter/payments", "Aggregated"]
    total = rows[-1]
    assert (total.requests, total.failures, total.rps, total.p99_ms) == (47, 1, 5.23, 230.0)
    assert rows[1].p50_ms == 17.0
