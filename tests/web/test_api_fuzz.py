"""schemathesis fuzzes the service API from the app's own ``/openapi.json``: whatever it sends,
with a valid token of a clerk of finance, the answer is never a server error (5xx).

The schema is read at import from an app of the API's router (serving ``/openapi.json`` needs
no database); the fixture attaches a fresh demo province to that same app before the first
case. (schemathesis's lazy ``from_fixture`` loader does not run under pytest 9.)

Bounded: ``MAX_EXAMPLES`` generated cases per operation (plus schemathesis's coverage cases),
so the whole run stays well under a minute on this machine (figures in decision 0019).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from service_fixtures import bare_app, bearer, token, workspace

from guoku.web.context import WebContext
from guoku.workspace import Workspace

MAX_EXAMPLES = 30
pytestmark = pytest.mark.xdist_group("api-fuzz")


APP = bare_app(None)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex="^/api/v1/")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("fuzz") / "ws")
    APP.state.ctx = WebContext.over_workspace(w)
    yield w
    APP.state.ctx = None
    w.close()


@pytest.fixture(scope="module")
def headers(ws: Workspace) -> dict[str, str]:
    return bearer(token(ws, "fin-533103-entry", "fuzzer"))


DOCUMENTED = [result.ok() for result in schema.get_all_operations()]


def _route(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _statuses(route: str) -> dict[str, float]:
    """Requests the app answered on ``route`` ("GET /api/v1/..."), by status."""
    from guoku.web.metrics import metrics_of

    counts: dict[str, float] = {}
    for metric in metrics_of(APP).registry.collect():
        if metric.name != "guoku_http_requests":
            continue
        for sample in metric.samples:
            labels = sample.labels
            if (sample.name.endswith("_total")
                    and f"{labels['method']} {labels['route']}" == route):
                counts[labels["status"]] = counts.get(labels["status"], 0) + sample.value
    return counts




def _fuzz(operation: Any, headers: dict[str, str]) -> None:
    """Valid and invalid inputs (schemathesis's positive and negative generation)."""
    @given(case=operation.as_strategy(GenerationMode.POSITIVE)
           | operation.as_strategy(GenerationMode.NEGATIVE))
    @settings(max_examples=MAX_EXAMPLES, deadline=None,
              suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    call()


def test_the_spec_publishes_every_operation() -> None:
    assert len(DOCUMENTED) == 15, [f"{op.method.upper()} {op.path}" for op in DOCUMENTED]


def test_no_input_makes_the_service_api_fail_with_a_server_error(
    headers: dict[str, str],
) -> None:
    """Every operation of the published spec fuzzed in this one test, then checked in the
    same process — not a vacuous pass: the app answered every operation, never with a 5xx, and
    refused bad input to every operation that takes any (path, query or body) with a 4xx."""
    before = {_route(op): _statuses(_route(op)) for op in DOCUMENTED}
    for op in DOCUMENTED:
        _fuzz(op, headers)
    for op in DOCUMENTED:
        after = _statuses(_route(op))
        new = {s: n - before[_route(op)].get(s, 0) for s, n in after.items()}
        new = {s: n for s, n in new.items() if n}
        assert new, f"the fuzzer never reached {_route(op)}"
        assert not any(s.startswith("5") for s in new), (_route(op), new)
        if op.path_parameters or op.body or op.query:
            assert any(s.startswith("4") for s in new), (_route(op), new)
    print("fuzzing answered", {_route(op): _statuses(_route(op)) for op in DOCUMENTED})
