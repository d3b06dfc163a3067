"""The business flows on the production deployment: one signing-server process and one node
process per node, PostgreSQL databases and RabbitMQ queues, all real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from tests.conftest import pg_url_with_schema

from guoku import demo_flows as world
from guoku.bank.paying import CorePayer
from guoku.deploy.local import LocalProvince
from guoku.domain.money import Amount
from guoku.domain.quota import QuotaExceeded
from guoku.flows import allocation, authorized_payment, direct_payment, refunds
from guoku.flows.desk import Desk, received, state_of
from guoku.flows.model import Payment
from guoku.node.bootstrap import DEMO_SECRETS
from guoku.province import demo_province
from guoku.security.provision import provision

C = world.COUNTY
FIN, UNIT = Desk(f"F{C}", C, "fin"), Desk("U533103001", C, "unit")
BANK, PBOC = Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")
DAY = datetime.now(UTC).strftime("%Y%m%d")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rabbitmq")]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, pg_url: str,
             amqp_url: str) -> Iterator[LocalProvince]:
    root = tmp_path_factory.mktemp("deployed")
    spec = demo_province()
    provision(root / "security", spec, DEMO_SECRETS, datetime.now(UTC))
    admin = create_engine(pg_url)
    schemas = {n.name: f"d_{uuid.uuid4().hex[:8]}_{n.name.replace('-', '_')}"
               for n in spec.nodes}
    with admin.begin() as conn:
        for schema in schemas.values():
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    province = LocalProvince(root / "security", spec,
                             {n: pg_url_with_schema(pg_url, s) for n, s in schemas.items()},
                             amqp_url, f"guoku-e2e-{uuid.uuid4().hex[:8]}", root / "logs")
    try:
        province.up()
        world.register_accounts(province)
        yield province
    finally:
        codes = province.down()
        province.delete_queues()
        with admin.begin() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        assert all(code == 0 for name, code in codes.items() if name.startswith("node-")), codes


def payment(no: str, amount: str, payee: world.Payee = world.SUPPLIER) -> Payment:
    return Payment(C, no, DAY, "U533103001", "芒市教育体育局", payee, Amount.parse(amount),
                   "购买教学用品", world._funding())


def test_authorized_payment_within_quota_and_its_refund(deployed: LocalProvince) -> None:
    bank = CorePayer(world._core(), world.CLEARING)
    assert authorized_payment.issue_quota(deployed, payment("PE0001", "1000.00"), FIN, BANK,
                                          PBOC).completed
    paid = authorized_payment.pay(deployed, payment("PA0001", "700.00"), UNIT, BANK, PBOC, FIN,
                                  bank)
    assert paid.completed and state_of(deployed, UNIT, paid.first) == "accepted"
    with pytest.raises(QuotaExceeded):
        authorized_payment.pay(deployed, payment("PA0002", "300.01"), UNIT, BANK, PBOC, FIN,
                               bank)
    refund = refunds.run(deployed, received(deployed, BANK, paid.first),
                         payment("PA0001", "700.00"), BANK, PBOC, FIN, "退回")
    assert "2204" in refund.vouchers


def test_direct_payment_and_a_failed_one(deployed: LocalProvince) -> None:
    bank = CorePayer(world._core(), world.CLEARING)
    ok = direct_payment.run(deployed, payment("PD0001", "2000.00", world.SCHOOL), FIN, BANK,
                            PBOC, bank)
    assert ok.paid and state_of(deployed, BANK, ok.vouchers["2208"]) == "accepted"
    failed = direct_payment.run(deployed, payment("PD0002", "5.00", world.CLOSED), FIN, BANK,
                                PBOC, bank)
    assert not failed.paid and state_of(deployed, FIN, failed.payment) == "returned"


def test_allocation_and_its_refund(deployed: LocalProvince) -> None:
    treasury = CorePayer(world._treasury(), world.TREASURY)
    paid = allocation.run(deployed, payment("PS0001", "900.00", world.SPECIAL), FIN, PBOC,
                          treasury)
    assert paid.paid
    _, again = allocation.refund(deployed, paid, payment("PS0001", "900.00", world.SPECIAL),
                                 FIN, PBOC, treasury, "专户变更")
    assert again.paid
