"""The operator commands on a demo workspace (``--workdir``), as before they also learnt
``--config`` (a deployment, tests/e2e/test_deploy_up.py): ``voucher list`` and the paper
fallback round trip, and an explicit ``--workdir`` wins over ``$GUOKU_DEPLOY_CONFIG``."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from guoku.cli import app as cli
from guoku.cli.deploy import CONFIG_ENV
from guoku.node.bootstrap import DEMO_SECRETS
from guoku.ops.fallback import MARK_ASCII
from guoku.province import demo_province
from guoku.workspace import open_workspace
from guoku.xml.samples import sample_document

COUNTY = "533103"
FIN, BANK = f"fin-{COUNTY}", f"icbc-{COUNTY}"
runner = CliRunner()


def run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(cli, [*args, "--workdir", str(workdir)], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


def test_voucher_list_and_the_paper_fallback_on_a_workspace(
    tmp_path: Path, security_material: Path,
) -> None:
    shutil.copytree(security_material, tmp_path / "security")
    ws = open_workspace(tmp_path, DEMO_SECRETS, demo_province())
    try:  # sent, never pumped: it waits on the wire
        fin = ws.node_for(f"F{COUNTY}").library
        doc = sample_document("5201", voucher_no="WS0001", amount="42.00", admdiv=COUNTY)
        row = fin.create(f"{FIN}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
        fin.check(f"{FIN}-review", row.id)
        fin.seal(f"{FIN}-seal", row.id)
        row = fin.send(f"{FIN}-seal", row.id)
    finally:
        ws.close()
    # a deployment named in the environment does not take over an explicit --workdir
    env = {CONFIG_ENV: str(tmp_path / "no-such-deploy.toml")}
    listed = run(tmp_path, "voucher", "list", "--user", f"{FIN}-entry", "--json", env=env)
    assert [(i["ref"], i["state"]) for i in listed["items"]] == [(row.ref, "sent")]

    policy = tmp_path / "policy.toml"
    policy.write_text('[fallback]\ndefault = "2h"\n[fallback.types]\n5201 = "1s"\n')
    waiting = run(tmp_path, "fallback", "list", "--all", "--user", f"{FIN}-seal", "--policy",
                  str(policy), "--json")
    assert [w["id"] for w in waiting] == [row.id]
    time.sleep(1.1)
    run(tmp_path, "fallback", "switch", str(row.id), "--reason", "工行节点中断", "--user",
        f"{FIN}-seal", "--policy", str(policy))
    pdf = tmp_path / "paper.pdf"
    run(tmp_path, "fallback", "print", str(row.id), "--out", str(pdf), "--user", f"{FIN}-recv")
    assert MARK_ASCII.encode() in pdf.read_bytes()
    run(tmp_path, "fallback", "register", "--sender", f"F{COUNTY}", "--type", "5201", "--year",
        str(row.st_year), "--no", row.voucher_no, "--amount", "42.00", "--date", row.vou_date,
        "--user", f"{BANK}-recv")
    [record] = run(tmp_path, "fallback", "registrations", "--user", f"{BANK}-recv", "--json")
    assert (record["ref"], record["status"]) == (row.ref, "registered")
    history = run(tmp_path, "voucher", "history", str(row.id), "--user", f"{FIN}-entry",
                  "--json")
    assert [e["event"] for e in history] == ["create", "check", "seal", "send", "fallback"]
