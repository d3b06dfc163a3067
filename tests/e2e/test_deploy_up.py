"""``guoku deploy up|status|down`` on the real PostgreSQL and RabbitMQ: a province comes up under
its supervisor, a direct payment runs through it, a node process killed with SIGKILL is
restarted, the operator commands act on the deployment (``--config``: ``voucher list``, the
paper fallback while the receiving bank's node is stopped, ``day close``), and ``down`` leaves
no process, schema or queue behind — all on one ``deploy up``."""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from guoku import demo_flows as world
from guoku.bank.paying import CorePayer
from guoku.deploy.deployment import Deployment
from guoku.deploy.local import LocalProvince
from guoku.domain.money import Amount
from guoku.flows import direct_payment
from guoku.flows.desk import Desk, issue, state_of
from guoku.flows.model import DIRECT, Payment, payment_details, payment_header
from guoku.ops.fallback import MARK_ASCII
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.transport.amqp import AmqpTransport
from guoku.transport.ports import TransientError
from guoku.xml.codec import from_xml

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq,
              pytest.mark.xdist_group("rabbitmq")]

ROOT = Path(__file__).resolve().parents[2]
C = world.COUNTY
FIN, BANK, PBOC = Desk(f"F{C}", C, "fin"), Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")
DAY = datetime.now(UTC).strftime("%Y%m%d")
NODES = ("finance", "pboc", "bank-icbc", "bank-abc")
PAPER_WAIT_S = 6
"""The deployment config's ``[fallback.types] 5201``: how long before a direct payment voucher
may go to paper (two hours for the other types)."""


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
    finance as two workers over two partitions; a short paper-fallback wait for 5201."""
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

[fallback]
default = "2h"
[fallback.types]
5201 = "{PAPER_WAIT_S}s"

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


def test_up_flow_restart_operations_down(deployed: tuple[Path, Deployment], pg_url: str,
                                         amqp_url: str, tmp_path: Path) -> None:
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
        before = direct_payment.run(province, _payment("PD0001", "2000.00"), FIN, BANK, PBOC,
                                    bank)
        assert before.paid and state_of(province, BANK, before.vouchers["2208"]) == "accepted"

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

        operator_commands(config, province, [before.payment, ok.payment], tmp_path)
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


def operator_commands(config: Path, province: LocalProvince, payments: list[VoucherRow],
                      tmp: Path) -> None:
    """``guoku voucher list``, the paper fallback round trip and ``guoku day close`` on the
    deployment, each a command line with ``--config``."""

    def cli(*args: str) -> str:
        return guoku(*args, "--config", str(config), timeout=180).stdout

    listed = json.loads(cli("voucher", "list", "--user", FIN.entry, "--vt-code", "5201",
                            "--json"))
    states = {item["ref"]: item["state"] for item in listed["items"]}
    assert {row.ref: states.get(row.ref) for row in payments} == {
        row.ref: state_of(province, FIN, row) for row in payments}
    assert set(states.values()) == {"accepted"}

    # the agent bank's node stops answering: the voucher waits on the wire, then goes to paper
    bank_node = by_name(status(config))["node-bank-icbc"]["pid"]
    os.kill(bank_node, signal.SIGSTOP)
    try:
        wire = _payment("PAPER01", "1234.56")
        sent = issue(province, FIN, "5201", payment_header(wire, "5201", DIRECT),
                     payment_details(wire), receiver=BANK.party)
        [waiting] = [w for w in json.loads(cli("fallback", "list", "--all", "--user", FIN.sealer,
                                                "--json")) if w["id"] == sent.id]
        opens, since = (datetime.fromisoformat(waiting[k].replace("Z", "+00:00"))
                        for k in ("opens_at", "sent_at"))
        assert waiting["state"] == "sent" and opens - since == timedelta(seconds=PAPER_WAIT_S)
        wait_for(lambda: sent.id in [w["id"] for w in json.loads(cli(
            "fallback", "list", "--user", FIN.sealer, "--json"))], 60, "the paper fallback")
        cli("fallback", "switch", str(sent.id), "--reason", "工行节点中断，启用纸质凭证",
            "--user", FIN.sealer)
        assert state_of(province, FIN, sent) == "paper"
        pdf = tmp / "paper.pdf"
        cli("fallback", "print", str(sent.id), "--out", str(pdf), "--user", FIN.receiver)
        assert MARK_ASCII.encode() in pdf.read_bytes()
        assert f"{sent.ref} PRINT 1".encode() in pdf.read_bytes()
        # the bank processed the paper and registers it
        cli("fallback", "register", "--sender", FIN.party, "--type", "5201", "--year",
            str(sent.st_year), "--no", sent.voucher_no, "--amount", "1234.56", "--date",
            sent.vou_date, "--user", BANK.receiver)
    finally:
        os.kill(bank_node, signal.SIGCONT)

    def registered() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(cli("fallback", "registrations", "--user",
                                                     BANK.receiver, "--json"))
        return found

    wait_for(lambda: [(r["ref"], r["status"]) for r in registered()] == [
        (sent.ref, "matched")], 120, "the electronic copy to arrive and match the paper")
    province.settle()
    assert state_of(province, FIN, sent) == "accepted"
    wait_for(lambda: status(config)["exit"] == 0, 120, "every process healthy again")

    closed = json.loads(cli("day", "close", "--date", DAY, "--county", C, "--json"))
    assert closed["returned"] == {} and closed["accepted"] == len(closed["reports"]) >= 1
    reports = province.library(FIN.party).query(FIN.receiver, VoucherQuery(
        vt_code="2206", direction="in", date_from=DAY, date_to=DAY)).items
    assert {r.ref for r in reports} <= set(closed["reports"])
    assert {r.state for r in reports} == {"accepted"}
    assert {line["OriVoucherNo"] for r in reports for line in from_xml(r.xml).details} == {
        "PD0001", "PD0002", "PAPER01"}


def _payment(no: str, amount: str) -> Payment:
    return Payment(C, no, DAY, "U533103001", "芒市教育体育局", world.SCHOOL, Amount.parse(amount),
                   "购买教学用品", world._funding())
