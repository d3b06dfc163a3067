"""/metrics: voucher counts read from the node databases at scrape time, by node, party,
division, type and state; requests counted by route template, not raw path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from service_fixtures import app_over, bearer, direct_payment, token, workspace

from guoku.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("metrics") / "ws")
    yield w
    w.close()


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_vouchers_by_state_and_requests_by_route(ws: Workspace) -> None:
    entry = bearer(token(ws, "fin-533103-entry"))
    with TestClient(app_over(ws)) as client:
        for no in ("M001", "M002"):
            assert client.post("/api/v1/vouchers", json=direct_payment(no),
                               headers=entry).status_code == 201
        for i in (1, 2, 3):
            client.get(f"/api/v1/vouchers/{i}", headers=entry)
        samples = scrape(client)
    drafts = (("admdiv", "533103"), ("direction", "out"), ("node", "finance"),
              ("party", "F533103"), ("state", "draft"), ("vt_code", "5201"))
    assert samples[("guoku_vouchers", drafts)] == 2
    assert samples[("guoku_voucher_amount_fen", drafts)] == 2 * 123450
    assert samples[("guoku_node_db_up", (("node", "bank-icbc"),))] == 1
    assert samples[("guoku_node_backlog", (("kind", "outbox"), ("node", "finance")))] == 0
    route = (("method", "GET"), ("route", "/api/v1/vouchers/{voucher_id}"))
    assert samples[("guoku_http_requests_total", (*route, ("status", "200")))] == 2
    assert samples[("guoku_http_requests_total", (*route, ("status", "404")))] == 1
    assert samples[("guoku_http_request_duration_seconds_count", route)] == 3
    assert not any("/api/v1/vouchers/1" in dict(labels).get("route", "")
                   for _, labels in samples)


