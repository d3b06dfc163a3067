"""``guoku db``: schema migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import DbOption, WorkdirOption, console, db_urls
from guoku.store.engine import make_engine
from guoku.store.migrate import current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(db: str | None = DbOption, workdir: Path | None = WorkdirOption) -> None:
    """Bring the database(s) to the newest schema."""
    for name, url in db_urls(db, workdir).items():
        engine = make_engine(url)
        upgrade(engine)
        console.print(f"{name}: at revision {current_revision(engine)}")


@app.command("current")
def current_cmd(db: str | None = DbOption, workdir: Path | None = WorkdirOption) -> None:
    """Show each database's revision and the newest one available."""
    for name, url in db_urls(db, workdir).items():
        console.print(f"{name}: {current_revision(make_engine(url))} (head {head_revision()})")
