"""Nothing lost, nothing doubled: four node processes, every voucher in flight, one fault each.

Each scenario starts from bank-icbc's outbox holding every sent voucher (see conftest), runs
the four nodes as ``guoku node run`` processes on RabbitMQ and PostgreSQL, injects its fault
while vouchers are moving, and waits until every voucher is accepted. Then the sender's sent set
must equal the receiver's accepted set — equal counts and an equal SM3 digest over the sorted
(voucher no, version, amount) rows — with no duplicate, refusal, dead letter or leftover.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import pytest

from tests.fault.conftest import FaultProvince
from tests.fault.harness import RECEIVER, SENDER, published, rabbitmqctl, received, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq,
              # one worker for everything that uses the broker: (c) restarts it
              pytest.mark.xdist_group("rabbitmq")]

BROKER_DOWN_SECONDS = 3.0
FAULT_WAIT = 180.0
"""Seconds to wait for the moment of a fault (vouchers moving, not yet all arrived)."""


def _report(name: str, province: FaultProvince) -> None:
    """Compare, stop every node cleanly, say where the time went (``pytest -s``)."""
    figures = province.check()
    province.finish()
    print(f"\nfault {name}: {figures['vouchers']} vouchers, sm3 {figures['sm3'][:16]}..., "
          f"{province.timeline()}")


def _when(province: FaultProvince, what: str, condition: Callable[[], bool]) -> None:
    wait_until(condition, FAULT_WAIT, what, province.diagnose)


def test_a_receiving_node_killed_mid_batch_and_restarted_loses_and_repeats_nothing(
    province: FaultProvince,
) -> None:
    """(a) pboc is killed while it stores: inside an envelope whose items are committed one by
    one, with more deliveries unacked behind it. The broker redelivers them all to the new
    process; the items already committed are found in the inbox and dropped."""
    province.start()
    receiver = province.engines[RECEIVER]
    n = province.vouchers
    _when(province, "a third of the vouchers stored", lambda: received(receiver) >= n // 3)
    province.mark("fault")
    province.kill(RECEIVER)
    at_kill = received(receiver)
    assert at_kill < n, "the receiver had finished before the kill"
    province.restart(RECEIVER)
    province.settle()
    _report("(a) kill -9 receiver", province)


def test_a_sending_node_killed_between_commit_and_publish_loses_and_repeats_nothing(
    province: FaultProvince,
) -> None:
    """(b) bank-icbc is killed while its relay publishes: every voucher is committed in the
    outbox, a quarter published, the rest not (some sealed in the dead process's memory, one
    perhaps confirmed by the broker but not yet marked). The new process seals the unmarked
    rows again and publishes them; the receiver drops any item it has already."""
    province.start()
    sender = province.engines[SENDER]
    n = province.vouchers
    _when(province, "a quarter of the vouchers published", lambda: published(sender) >= n // 4)
    province.mark("fault")
    province.kill(SENDER)
    at_kill = published(sender)
    assert at_kill < n, "the relay had published everything before the kill"
    province.restart(SENDER)
    province.settle()
    _report("(b) kill -9 sender", province)


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None and not os.environ.get("CI"),
                    reason="rabbitmqctl is not installed here")
def test_a_broker_restarted_mid_batch_loses_and_repeats_nothing(province: FaultProvince) -> None:
    """(c) RabbitMQ's application stops for a few seconds while envelopes go both ways: the
    nodes' publishes fail and stay in their outboxes, their consumers reconnect with backoff,
    and the quorum queues keep what the broker had confirmed."""
    province.start()
    receiver = province.engines[RECEIVER]
    n = province.vouchers
    _when(province, "a quarter of the vouchers stored", lambda: received(receiver) >= n // 4)
    province.mark("fault")
    try:
        rabbitmqctl("stop_app")
        at_stop = received(receiver)
        time.sleep(BROKER_DOWN_SECONDS)
    finally:
        rabbitmqctl("start_app")
    assert at_stop < n, "the receiver had finished before the broker stopped"
    province.settle()
    _report("(c) broker restart", province)


def test_every_message_delivered_twice_is_applied_once(province: FaultProvince) -> None:
    """(d) Every envelope, vouchers one way and receipts the other, arrives twice (the
    :class:`Duplicator` network); each item is applied once."""
    province.start(deliver_twice=True)
    province.settle()
    to_receiver, to_sender = province.duplicators
    assert to_receiver.forwarded > 0 and to_sender.forwarded > 0

    def consumed_twice() -> bool:
        health = province.nodes[RECEIVER].health()
        return health is not None and health["consumed"] == 2 * to_receiver.forwarded

    _when(province, "the receiver to have consumed every envelope twice", consumed_twice)
    _report("(d) every message twice", province)
