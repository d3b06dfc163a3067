"""Helpers shared by the command modules: database options, JSON output, Rich tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from guoku.store.engine import resolve_url

console = Console()

DbOption = typer.Option(None, "--db", help="Database URL (default: $GUOKU_DB_URL or ./guoku.db)")
WorkdirOption = typer.Option(None, "--workdir", help="A demo workspace: every node database in it")
JsonOption = typer.Option(False, "--json", help="Print one JSON object for scripts")


def db_urls(db: str | None, workdir: Path | None) -> dict[str, str]:
    """``--workdir`` means every node database of a workspace; otherwise the one ``--db``."""
    if workdir is not None:
        nodes = sorted((workdir / "nodes").glob("*.db"))
        if not nodes:
            raise typer.BadParameter(f"no node databases under {workdir / 'nodes'}")
        return {p.stem: f"sqlite:///{p.resolve()}" for p in nodes}
    return {"default": resolve_url(db)}


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[("" if v is None else str(v)) for v in r])
    console.print(t)
