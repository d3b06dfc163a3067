"""The broker-free parts of AmqpTransport: names, backoff, dead-letter headers, URL settings."""

from __future__ import annotations

import datetime as dt

import pytest

from guoku.transport.amqp import (
    BLOCKED_TIMEOUT,
    AmqpTransport,
    Backoff,
    BrokerMisconfigured,
    Topology,
)


def test_backoff_doubles_to_its_bound_and_resets() -> None:
    backoff = Backoff(initial=0.2, maximum=5.0)
    assert [backoff.next() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.2


def test_topology_names_a_nodes_queues_and_reads_them_back() -> None:
    t = Topology("guoku")
    assert t.queue("bank-icbc") == "guoku.node.bank-icbc"
    assert t.dead_queue("bank-icbc") == "guoku.dead.bank-icbc"
    assert t.dlx == "guoku.dlx"
    assert t.node_of_queue("guoku.node.bank-icbc") == "bank-icbc"


@pytest.mark.parametrize("node", ["", "a.b", "../x", "财政", "x" * 60, "-lead"])
def test_topology_refuses_node_names_that_are_not_simple(node: str) -> None:
    with pytest.raises(BrokerMisconfigured):
        Topology("guoku").queue(node)


def test_a_queue_outside_the_prefix_is_not_a_node_queue() -> None:
    with pytest.raises(BrokerMisconfigured):
        Topology("guoku").node_of_queue("other.node.finance")


def test_dead_letter_headers_give_reason_queue_and_attempts() -> None:
    transport = AmqpTransport("amqp://guest:guest@127.0.0.1:1/", delivery_limit=5)
    headers = {
        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "guoku.node.pboc",
                     "time": dt.datetime.now(dt.UTC), "exchange": "",
                     "routing-keys": ["guoku.node.pboc"]}],
        "x-first-death-reason": "delivery_limit",
    }
    assert transport._death(headers) == ("delivery_limit in guoku.node.pboc", 6)
    rejected = {"x-death": [{"count": 2, "reason": b"rejected", "queue": b"guoku.node.pboc"}]}
    assert transport._death(rejected) == ("rejected in guoku.node.pboc", 2)
    assert transport._death({}) == ("unknown in unknown queue", 1)


def test_url_settings_win_over_the_bounded_defaults() -> None:
    plain = AmqpTransport("amqp://guest:guest@127.0.0.1:5672/")._parameters
    assert plain.blocked_connection_timeout == BLOCKED_TIMEOUT
    assert plain.connection_attempts == 1
    tuned = AmqpTransport(
        "amqp://guest:guest@127.0.0.1:5672/?blocked_connection_timeout=7&connection_attempts=3"
    )._parameters
    assert tuned.blocked_connection_timeout == 7
    assert tuned.connection_attempts == 3
