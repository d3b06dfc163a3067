"""``guoku deploy up|status|down`` on the real PostgreSQL and RabbitMQ: a province comes up under
its supervisor, a direct payment runs through it, a node process killed with SIGKILL is
restarted, and ``down`` leaves no process, schema or queue behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from guoku import demo_flows as world
from guoku.bank.paying import CorePayer
from guoku.deploy.deployment import Deployment
from guoku.domain.money import Amount
from guoku.flows import direct_payment
from guoku.flows.desk import Desk, state_of
from guoku.flows.model import Payment
from guoku.transport.amqp import AmqpTransport
from guoku.transport.ports import TransientError

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq,
              pytest.mark.xdist_group("rabbitmq")]

ROOT = Path(__file__).resolve().parents[2]
C = world.COUNTY
FIN, BANK, PBOC = Desk(f"F{C}", C, "fin"), Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")
DAY = datetime.now(UTC).strftime("%Y%m%d")
NODES = ("finance", "pboc", "bank-icbc", "bank-abc")


def guoku(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GUOKU_DB_URL", "GUOKU_SIGNING_URL", "GUOKU_DEPLOY_CONFIG")}
    done = subprocess.run([sys.executable, "-m", "guoku", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"guoku {' '.join(args)} exited {done.returncode}\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def small_config(tmp: Path, pg_url: str, amqp_url: str, prefix: str) -> Path:
    """The demo province (deploy/demo.toml) with this test's directory, names and free ports;
    finance as two workers over two partitions."""
    province = (ROOT / "deploy" / "demo.toml").read_text().split("\n[province]\n", 1)[1]
    config = tmp / "deploy.toml"
    config.write_text(f"""[deployment]
name = "t"
directory = "state"
database = "{pg_url}"
isolation = "schema"
broker = "{amqp_url}"
prefix = "{prefix}"
partitions = 2
base_port = 0
stop_timeout = 20
log_format = "json"

[deployment.workers]
finance = 2

[deployment.web]
enabled = true

[province]
{province}""")
    return config


def status(config: Path) -> dict[str, Any]:
    done = guoku("deploy", "status", "--config", str(config), "--json", check=False)
    document: dict[str, Any] = json.loads(done.stdout)
    document["exit"] = done.returncode
    return document


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in document["processes"]}


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def deployed(tmp_path: Path, pg_url: str, amqp_url: str) -> Iterator[tuple[Path, Deployment]]:
    prefix = f"gk-t{uuid.uuid4().hex[:8]}"
    config = small_config(tmp_path, pg_url, amqp_url, prefix)
    deployment = Deployment(tmp_path / "state")
    try:
        guoku("deploy", "up", "--config", str(config))
        yield config, deployment
    finally:
        if deployment.plan_file.exists():
            guoku("deploy", "down", "--config", str(config), "--purge", check=False)


def test_up_flow_restart_down(deployed: tuple[Path, Deployment], pg_url: str,
                              amqp_url: str) -> None:
    config, deployment = deployed
    first = status(config)
    processes = by_name(first)
    assert first["exit"] == 0 and first["supervisor"]
    expected = {f"signing-{n}" for n in NODES} | {f"node-{n}" for n in NODES} | {
        "node-finance.1", "web"}
    assert set(processes) == expected
    assert all(p["health"] == "ok" and p["pid"] and p["restarts"] == 0
               for p in processes.values())
    plan = deployment.plan()
    log_line = json.loads((deployment.logs / "node-pboc.log").read_text().splitlines()[0])
    assert log_line["process"] == "node-pboc" and "ts" in log_line and "level" in log_line
    with urllib.request.urlopen(processes["web"]["health_url"].replace("/health", "/login"),
                                timeout=10) as page:  # the web apps answer over the nodes
        assert page.status == 200

    province = deployment.client()
    try:
        world.register_accounts(province)
        bank = CorePayer(world._core(), world.CLEARING)
        ok = direct_payment.run(province, _payment("PD0001", "2000.00"), FIN, BANK, PBOC, bank)
        assert ok.paid and state_of(province, BANK, ok.vouchers["2208"]) == "accepted"

        victim = processes["node-pboc"]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: by_name(status(config))["node-pboc"]["restarts"] == 1, 60,
                 "the supervisor to restart node-pboc")
        wait_for(lambda: status(config)["exit"] == 0, 120, "every process healthy again")
        again = by_name(status(config))["node-pboc"]
        assert again["pid"] != victim and again["last_exit"] == -signal.SIGKILL
        # the restarted node carries the next payment
        ok = direct_payment.run(province, _payment("PD0002", "30.00"), FIN, BANK, PBOC, bank)
        assert ok.paid and state_of(province, FIN, ok.payment) == "accepted"
        logged = [json.loads(line) for line in
                  (deployment.logs / "node-finance.log").read_text().splitlines()
                  + (deployment.logs / "node-finance.1.log").read_text().splitlines()
                  if line.startswith("{")]
        assert any("PD0002" in entry.get("voucher_nos", []) for entry in logged)
    finally:
        for node in province.assembled.values():
            node.close()

    pids = [p["pid"] for p in status(config)["processes"]] + [deployment.supervisor_pid()]
    assert all(pids)
    guoku("deploy", "down", "--config", str(config), "--purge")
    assert not any(alive(pid) for pid in pids)
    assert deployment.supervisor_pid() is None and status(config)["exit"] == 1
    admin = create_engine(pg_url)
    try:
        with admin.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM information_schema.schemata WHERE "
                                     "schema_name LIKE :p"),
                                {"p": plan["prefix"].replace("-", "_") + "%"}).scalar_one()
    finally:
        admin.dispose()
    assert left == 0
    transport = AmqpTransport(amqp_url, prefix=plan["prefix"])
    try:
        with pytest.raises(TransientError):
            transport.queue_depth("pboc", 2)  # the queues are gone (passive declare fails)
    finally:
        transport.close()


def _payment(no: str, amount: str) -> Payment:
    return Payment(C, no, DAY, "U533103001", "芒市教育体育局", world.SCHOOL, Amount.parse(amount),
                   "购买教学用品", world._funding())
