"""``guoku reconcile``: three-layer reconciliation of a demo workspace or a deployment.

``guoku reconcile --layer 1|2|3|all [--date D | --month M] [--json] [--csv F] [--pdf F]`` runs
the layers over the node databases (``--workdir DIR``, or ``--node NAME=URL`` per node), records
what it finds as discrepancies in finance's node, and exits 0 when everything agrees, 1 when it
found differences. ``guoku reconcile discrepancies ...`` lists and handles them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlalchemy import Engine

from guoku.cli._common import JsonOption, console, print_json, table

app = typer.Typer(help="Three-layer reconciliation (对账) and its discrepancies.",
                  invoke_without_command=True)
discrepancy_app = typer.Typer(help="Discrepancies: list, investigate, annotate, resolve.",
                              no_args_is_help=True)
app.add_typer(discrepancy_app, name="discrepancies")

WorkdirOpt = typer.Option(None, "--workdir", help="A demo workspace (its SQLite nodes)")
NodeOpt = typer.Option(None, "--node", help="NAME=URL of a node database (repeat per node)")


def _engines(workdir: Path | None, nodes: list[str] | None) -> dict[str, Engine]:
    from guoku.bootstrap import open_engine
    from guoku.store.engine import sqlite_url

    if nodes:
        pairs = dict(n.split("=", 1) for n in nodes)
        return {name: open_engine(url) for name, url in pairs.items()}
    root = workdir or Path("demo-workspace")
    found = {p.stem: open_engine(sqlite_url(p)) for p in sorted((root / "nodes").glob("*.db"))}
    if not found:
        raise typer.BadParameter(f"no node databases under {root / 'nodes'}")
    return found


def _breaks(engines: dict[str, Engine], layers: list[int], day: str | None,
            month: str | None) -> Iterator[object]:
    from guoku.province import demo_province
    from guoku.reconcile.province import province_breaks

    return province_breaks(engines, demo_province(), layers, day, month)


@app.callback()
def reconcile(
    ctx: typer.Context,
    layer: str = typer.Option("all", "--layer", help="1, 2, 3 or all"),
    date: str | None = typer.Option(None, "--date", help="Day yyyymmdd (default: today)"),
    month: str | None = typer.Option(None, "--month", help="Month yyyymm instead of a day"),
    workdir: Path | None = WorkdirOpt, node: list[str] | None = NodeOpt,
    csv_path: Path | None = typer.Option(None, "--csv", help="Write every break as CSV"),
    pdf_path: Path | None = typer.Option(None, "--pdf", help="Write a PDF report"),
    record: bool = typer.Option(True, "--record/--no-record",
                                help="Keep what is found as discrepancies in finance's node"),
    user: str = typer.Option("reconciler", "--user", help="Who runs it (for the audit log)"),
    as_json: bool = JsonOption,
) -> None:
    """Run the layers; exit 0 when everything agrees and 1 when differences were found."""
    if ctx.invoked_subcommand is not None:
        return
    from guoku.reconcile.report import Collector, write_pdf
    from guoku.reconcile.workflow import record_run

    layers = [1, 2, 3] if layer == "all" else [int(x) for x in layer.split(",")]
    day = None if month else (date or datetime.now(UTC).strftime("%Y%m%d"))
    engines = _engines(workdir, node)
    collector = Collector()
    if csv_path is not None:
        collector.open_csv(csv_path)
    run_id: int | None = None
    try:
        collector.open_spool()
        for _ in collector.add(_breaks(engines, layers, day, month)):  # type: ignore[arg-type]
            pass
        if record and "finance" in engines:
            run_id = record_run(engines["finance"], collector.spooled(), mode="on_demand",
                                layers="".join(map(str, layers)), scope=day or month or "",
                                user=user).run_id
    finally:
        collector.close()
    if pdf_path is not None:
        write_pdf(pdf_path, "电子凭证三层对账报告", day or month or "", collector, layers)
    result = {"layers": layers, "scope": day or month, "breaks": collector.total,
              "by_kind": collector.by_kind,
              "by_layer": {str(k): v for k, v in collector.by_layer.items()},
              "run": run_id, "items": collector.kept}
    if as_json:
        print_json(result)
    else:
        table(f"reconciliation {day or month}: {collector.total} breaks",
              ["layer", "kind", "voucher", "left", "right", "detail"],
              [(r["layer"], r["label"], f"{r['vt_code'] or ''} {r['voucher_no'] or ''}",
                f"{r['left']} {r['left_amount']} {r['left_state'] or ''}",
                f"{r['right']} {r['right_amount']} {r['right_state'] or ''}",
                str(r["detail"])[:60]) for r in collector.kept[:50]])
        console.print("all three layers agree" if collector.total == 0 else
                      f"{collector.total} differences: {collector.by_kind}")
    for engine in engines.values():
        engine.dispose()
    raise typer.Exit(1 if collector.total else 0)


@discrepancy_app.command("list")
def list_cmd(workdir: Path | None = WorkdirOpt, node: list[str] | None = NodeOpt,
             as_json: bool = JsonOption) -> None:
    """Open discrepancies (not yet resolved) in finance's node."""
    from guoku.reconcile.workflow import open_discrepancies

    rows = open_discrepancies(_engines(workdir, node)["finance"])
    items = [{"id": r.id, "layer": r.layer, "kind": r.kind, "voucher": r.voucher_no,
              "status": r.status, "detail": r.detail} for r in rows]
    if as_json:
        print_json(items)
    else:
        table("discrepancies", ["id", "layer", "kind", "voucher", "status", "detail"],
              [(i["id"], i["layer"], i["kind"], i["voucher"], i["status"],
                str(i["detail"])[:60]) for i in items])


def _step(name: str, doc: str) -> None:
    def command(discrepancy_id: int, user: str = typer.Option(..., "--user"),
                note: str | None = typer.Option(None, "--note"),
                workdir: Path | None = WorkdirOpt, node: list[str] | None = NodeOpt) -> None:
        from guoku.domain.discrepancy import DiscrepancyStep
        from guoku.reconcile.workflow import handle

        status = handle(_engines(workdir, node)["finance"], user, discrepancy_id,
                        DiscrepancyStep(name), note)
        console.print(f"discrepancy {discrepancy_id}: {status.value}")

    command.__doc__ = doc
    discrepancy_app.command(name)(command)


for _name, _doc in (("investigate", "调查: take a discrepancy in hand."),
                    ("annotate", "说明: write down what was found (--note)."),
                    ("resolve", "处理: close it, saying what was done (--note).")):
    _step(_name, _doc)
