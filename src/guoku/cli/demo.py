"""``guoku demo``: the README's first command."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import JsonOption, console, print_json, table

app = typer.Typer()


@app.command("demo")
def demo_cmd(
    workdir: Path = typer.Option(Path("demo-workspace"), "--workdir", help="Workspace directory"),
    as_json: bool = JsonOption,
) -> None:
    """Run a four-party province on the embedded default (SQLite + in-process transport)."""
    from guoku.demo import run

    report = run(workdir, log=(lambda _m: None) if as_json else console.print)
    if as_json:
        print_json(report.as_json())
    else:
        table("guoku demo", ["flow", "result"], sorted(report.flows.items()))
        for note in report.notes:
            console.print(f"  • {note}")
        console.print(
            f"{report.vouchers} vouchers in {len(report.flows)} flows; {report.exported} "
            f"exported to {workdir / 'export'}; audit chain {report.audit_chain} "
            f"({report.audit_entries} entries); trust anchors in {workdir / 'trust'}; "
            f"{report.seconds:.1f} s"
        )
        console.print(
            f"Web: `guoku web --workdir {workdir}` and `guoku key-agent --workdir {workdir}`, "
            "then open http://127.0.0.1:8000/ (counter: /counter, monitor: /monitor, console: "
            "/console, API: /openapi.json); clerks unit-533103-entry/-review/-seal/-recv, "
            "password guoku-demo, USB-key PIN 246810"
        )
    failed = report.audit_chain != "ok" or any(v != "ok" for v in report.flows.values())
    raise typer.Exit(1 if failed else 0)
