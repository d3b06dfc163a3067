"""``guoku flow``: drive the business flows on a demo workspace, each step as the right clerk.

The agent bank's and the treasury's core banking systems are simulators whose state is kept in
``WORKDIR/core/`` between commands (accounts as the demo opens them). ``guoku day close`` also
runs on a deployment (``--config deploy.toml``, :mod:`guoku.cli._target`): no core banking is
involved, the bank's and finance's clerks work through their nodes' libraries here and the
node processes carry the reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from guoku.cli._common import JsonOption, console, print_json
from guoku.cli._target import DEFAULT_WORKDIR, ConfigOpt, deployed_province, deployment_config
from guoku.cli._target import WorkdirOpt as TargetWorkdirOpt

if TYPE_CHECKING:
    from guoku.bank.paying import CorePayer
    from guoku.flows.desk import Desk, Province
    from guoku.flows.model import Payment
    from guoku.workspace import EmbeddedProvince

app = typer.Typer(help="Business flows: quota issue, payments, allocations, refunds.",
                  no_args_is_help=True)
day_app = typer.Typer(help="Day close (日终).", no_args_is_help=True)

WorkdirOpt = typer.Option(DEFAULT_WORKDIR, "--workdir", help="Demo workspace")
CountyOpt = typer.Option("533103", "--county", help="Division the clerks work for")
AmountOpt = typer.Option(..., "--amount", help="Amount, e.g. 1200.00")
NoOpt = typer.Option(..., "--no", help="Voucher number")
PayeeOpt = typer.Option("2502010009200012345", "--payee-account", help="Payee account")
PayeeNameOpt = typer.Option("芒市文具有限公司", "--payee-name", help="Payee name")


@dataclass
class _Session:
    province: EmbeddedProvince
    bank: CorePayer
    treasury: CorePayer


@contextmanager
def _session(workdir: Path) -> Iterator[_Session]:
    """The workspace, and the two core banking simulators loaded and saved around a command."""
    from guoku import demo_flows as world
    from guoku.bank.core import SimulatedCoreBanking
    from guoku.bank.paying import CorePayer
    from guoku.workspace import EmbeddedProvince, open_workspace

    ws = open_workspace(workdir)
    cores = {"bank": (world._core, world.CLEARING), "treasury": (world._treasury,
                                                                 world.TREASURY)}
    loaded = {}
    for name, (fresh, _) in cores.items():
        path = workdir / "core" / f"{name}.json"
        loaded[name] = (SimulatedCoreBanking.restore(json.loads(path.read_text()))
                        if path.exists() else fresh())
    try:
        yield _Session(EmbeddedProvince(ws),
                       CorePayer(loaded["bank"], cores["bank"][1]),
                       CorePayer(loaded["treasury"], cores["treasury"][1]))
    finally:
        (workdir / "core").mkdir(exist_ok=True)
        for name, core in loaded.items():
            (workdir / "core" / f"{name}.json").write_text(
                json.dumps(core.snapshot(), ensure_ascii=False))
        ws.close()


def _payment(county: str, no: str, amount: str, account: str, name: str) -> Payment:
    from guoku import demo_flows as world
    from guoku.domain.money import Amount
    from guoku.flows.model import Payee, Payment

    return Payment(county, no, datetime.now(UTC).strftime("%Y%m%d"), f"U{county}001",
                   "芒市教育体育局", Payee(account, name, "中国工商银行芒市支行"),
                   Amount.parse(amount), "购买教学用品", world._funding())


def _desks(county: str) -> dict[str, Desk]:
    from guoku.flows.desk import Desk

    return {"finance": Desk(f"F{county}", county, "fin"),
            "unit": Desk(f"U{county}001", county, "unit"),
            "bank": Desk("B-ICBC", county, "icbc"), "pboc": Desk("P530000", county, "pboc")}


def _report(result: object, as_json: bool) -> None:
    vouchers = {k: v.ref for k, v in getattr(result, "vouchers", {}).items()}
    data = {"vouchers": vouchers, "reason": getattr(result, "reason", None)}
    if as_json:
        print_json(data)
        return
    for key, ref in vouchers.items():
        console.print(f"  {key:>14}  {ref}")
    if data["reason"]:
        console.print(f"[yellow]not paid[/]: {data['reason']}")


@app.command("quota-issue")
def quota_issue(no: str = NoOpt, amount: str = AmountOpt, county: str = CountyOpt,
                workdir: Path = WorkdirOpt, as_json: bool = JsonOption) -> None:
    """额度下达: 5102 to the bank, 5106 to the treasury, their answers back."""
    from guoku.flows import authorized_payment

    d = _desks(county)
    with _session(workdir) as s:
        _report(authorized_payment.issue_quota(
            s.province, _payment(county, no, amount, "-", "-"), d["finance"], d["bank"],
            d["pboc"]), as_json)


@app.command("authorized-pay")
def authorized_pay(no: str = NoOpt, amount: str = AmountOpt, county: str = CountyOpt,
                   payee_account: str = PayeeOpt, payee_name: str = PayeeNameOpt,
                   workdir: Path = WorkdirOpt, as_json: bool = JsonOption) -> None:
    """授权支付: the unit pays within its quota; the bank pays and clears with the treasury."""
    from guoku.flows import authorized_payment

    d = _desks(county)
    with _session(workdir) as s:
        _report(authorized_payment.pay(
            s.province, _payment(county, no, amount, payee_account, payee_name), d["unit"],
            d["bank"], d["pboc"], d["finance"], s.bank), as_json)


@app.command("direct-pay")
def direct_pay(no: str = NoOpt, amount: str = AmountOpt, county: str = CountyOpt,
               payee_account: str = PayeeOpt, payee_name: str = PayeeNameOpt,
               workdir: Path = WorkdirOpt, as_json: bool = JsonOption) -> None:
    """直接支付: finance pays through the bank; receipts, clearing and credit notice."""
    from guoku.flows import direct_payment

    d = _desks(county)
    with _session(workdir) as s:
        _report(direct_payment.run(
            s.province, _payment(county, no, amount, payee_account, payee_name),
            d["finance"], d["bank"], d["pboc"], s.bank), as_json)


@app.command("allocate")
def allocate(no: str = NoOpt, amount: str = AmountOpt, county: str = CountyOpt,
             payee_account: str = typer.Option("6228480000000012345", "--payee-account"),
             payee_name: str = typer.Option("芒市扶贫专户", "--payee-name"),
             workdir: Path = WorkdirOpt, as_json: bool = JsonOption) -> None:
    """实拨: finance to the treasury, which pays (or returns it, and finance voids it)."""
    from guoku.flows import allocation

    d = _desks(county)
    with _session(workdir) as s:
        _report(allocation.run(
            s.province, _payment(county, no, amount, payee_account, payee_name),
            d["finance"], d["pboc"], s.treasury), as_json)


@contextmanager
def _province(workdir: Path | None, config: Path | None) -> Iterator[Province]:
    """The deployment's nodes (``--config``), or the workspace with its core banking."""
    target = deployment_config(workdir, config)
    if target is not None:
        with deployed_province(target) as deployed:
            yield deployed
        return
    with _session(workdir or DEFAULT_WORKDIR) as s:
        yield s.province


@day_app.command("close")
def day_close_cmd(date: str = typer.Option(datetime.now(UTC).strftime("%Y%m%d"), "--date"),
                  county: str = CountyOpt, workdir: Path | None = TargetWorkdirOpt,
                  config: Path | None = ConfigOpt, as_json: bool = JsonOption) -> None:
    """Build and send the bank's daily reports of DATE; finance checks them."""
    from guoku.flows import day_close

    d = _desks(county)
    with _province(workdir, config) as province:
        result = day_close.close_day(province, d["bank"], d["finance"], date)
    data = {"day": date, "reports": [r.ref for r in result.reports],
            "accepted": result.accepted, "returned": result.returned}
    if as_json:
        print_json(data)
    else:
        console.print(f"{len(result.reports)} daily reports for {date}: {result.accepted} "
                      f"accepted, {len(result.returned)} returned")
    raise typer.Exit(1 if result.returned else 0)
