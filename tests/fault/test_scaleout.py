"""A node as two worker processes over one database and its partition queues (competing
consumers, partitioned by division): with one receiving worker killed by SIGKILL mid-stream,
nothing is delivered twice or lost — counts and an SM3 digest over the sorted (voucher no,
version, amount) rows agree on both sides — and every voucher's receipts are applied in the
order they were sent (an acceptance or a return never overtakes the delivered receipt)."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest

from guoku.node.bootstrap import DEMO_SECRETS
from guoku.province_config import load_province_file
from guoku.security.provision import provision
from tests.fault.harness import (
    Databases,
    Desks,
    db_name,
    digest,
    duplicate_vouchers,
    inbox_outcomes,
    received,
    rows,
    states,
    troubles,
    unpublished,
    wait_until,
)
from tests.fault.scaleout import (
    RECEIVER,
    SENDER,
    ScaleoutPair,
    build_sent_vouchers,
    counties_of,
    event_sequences,
    out_of_order,
    province_toml,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq,
              pytest.mark.xdist_group("rabbitmq")]

VOUCHERS: Final = int(os.environ.get("GUOKU_SCALEOUT_VOUCHERS", "400"))
COUNTIES: Final = 4
PARTITIONS: Final = 4
WORKERS: Final = 2
RETURN_EVERY: Final = 7
TIMEOUT: Final = max(180.0, VOUCHERS * 0.5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[
        tuple[Path, Path, Databases, str]]:
    root = tmp_path_factory.mktemp("scaleout")
    province_file = root / "province.toml"
    province_file.write_text(province_toml(COUNTIES))
    province = load_province_file(province_file)
    provision(root / "security", province, DEMO_SECRETS, datetime.now(UTC))
    databases = Databases(pg_url)
    try:
        template = db_name(f"st{uuid.uuid4().hex[:8]}", SENDER)
        build_sent_vouchers(root / "security", province, databases.create(template), VOUCHERS)
        yield root, province_file, databases, template
    finally:
        databases.close()


def test_two_workers_deliver_exactly_once_in_order(
        world: tuple[Path, Path, Databases, str], amqp_url: str, tmp_path: Path) -> None:
    root, province_file, databases, template = world
    pair = ScaleoutPair(home=root / "security", province_file=province_file,
                        databases=databases, amqp_url=amqp_url, workdir=tmp_path,
                        run=uuid.uuid4().hex[:8], workers=WORKERS, partitions=PARTITIONS,
                        sender_template=template)
    desks: Desks | None = None
    try:
        pair.start()
        receivers = [f"node-{RECEIVER}", f"node-{RECEIVER}.1"]

        def shared() -> bool:
            """Each receiving worker holds its half, and together they hold every partition."""
            shares = [set(pair.health(w)["partitions"]) for w in receivers]
            return (len(shares[0]) == len(shares[1]) == PARTITIONS // WORKERS
                    and len(shares[0] | shares[1]) == PARTITIONS)

        wait_until(shared, 60, "the receiving workers to share the partitions", pair.tails)

        clerks = [f"pboc-{county}-recv" for county in counties_of(pair.province)]
        desks = Desks(root / "security", pair.province, pair.urls[RECEIVER], clerks,
                      RETURN_EVERY)
        desks.start()
        sender, receiver = pair.engines[SENDER], pair.engines[RECEIVER]
        wait_until(lambda: received(receiver) >= VOUCHERS // 3, TIMEOUT,
                   "a third of the vouchers stored", pair.tails)
        victim = pair.workers[receivers[1]]
        assert victim.process is not None
        os.kill(victim.process.pid, signal.SIGKILL)  # mid-stream, whatever it holds
        victim.process.wait()
        wait_until(lambda: len(pair.health(receivers[0])["partitions"]) == PARTITIONS, 60,
                   "the surviving worker to take every partition over", pair.tails)

        returned = len([i for i in range(VOUCHERS) if i % RETURN_EVERY == 0])
        answered = Counter({"accepted": VOUCHERS - returned, "returned": returned})

        def done() -> bool:
            return (states(sender, "out") == answered and states(receiver, "in") == answered
                    and not unpublished(sender) and not unpublished(receiver))

        wait_until(done, TIMEOUT, "every voucher answered on both sides",
                   lambda: f"{states(sender, 'out')} {states(receiver, 'in')}\n{pair.tails()}")
        desks.stop()
        desks = None

        sent, stored = rows(sender, "out"), rows(receiver, "in")
        assert len(sent) == VOUCHERS
        assert digest(sent) == digest(stored), "the sent set is not the stored set"
        assert duplicate_vouchers(sender) == duplicate_vouchers(receiver) == 0
        assert inbox_outcomes(receiver) == Counter({"voucher/stored": VOUCHERS})
        assert inbox_outcomes(sender) == Counter({"delivered/applied": VOUCHERS,
                                                  "receipt/applied": VOUCHERS})
        assert out_of_order(event_sequences(sender)) == []
        assert troubles(sender) == troubles(receiver) == {"dead_letters": 0,
                                                           "rejected_envelopes": 0}
        codes = pair.stop()
        assert all(code == 0 for name, code in codes.items() if name != receivers[1]), codes
    finally:
        if desks is not None:
            desks.stop(check=False)
        pair.close()
