"""``guoku audit verify``: walk the hash-chained audit log of one or every node database."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import DbOption, JsonOption, WorkdirOption, console, db_urls, print_json
from guoku.store import audit
from guoku.store.engine import make_engine

app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
def verify_cmd(
    db: str | None = DbOption, workdir: Path | None = WorkdirOption, as_json: bool = JsonOption
) -> None:
    """Exit 0 when every chain is intact; otherwise name the first broken position, exit 1."""
    report: dict[str, dict[str, object]] = {}
    broken = False
    for name, url in db_urls(db, workdir).items():
        engine = make_engine(url)
        checked, found = audit.verify(engine)
        engine.dispose()
        if found is None:
            report[name] = {"status": "ok", "entries": checked}
        else:
            broken = True
            report[name] = {"status": "broken", "entries": checked, "position": found.position,
                            "seq": found.seq, "reason": found.reason}
    if as_json:
        print_json(report)
    else:
        for name, r in report.items():
            if r["status"] == "ok":
                console.print(f"[green]ok[/]     {name}: {r['entries']} entries, chain intact")
            else:
                console.print(f"[red]broken[/] {name}: at position {r['position']} "
                              f"(seq {r['seq']}): {r['reason']}")
    raise typer.Exit(1 if broken else 0)
