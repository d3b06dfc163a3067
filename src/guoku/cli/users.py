"""``guoku user``: users, their posts (岗位) and grants, on a demo workspace node."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import JsonOption, print_json, table
from guoku.domain.controls import Post

app = typer.Typer(help="Users and posts (岗位); changes need the administrator post.",
                  no_args_is_help=True)

WorkdirOpt = typer.Option(Path("demo-workspace"), "--workdir", help="Demo workspace")
NodeOpt = typer.Option("finance", "--node", help="Node name (finance, pboc, bank-icbc, ...)")


def _engine(workdir: Path, node: str):  # type: ignore[no-untyped-def]
    from guoku.bootstrap import open_engine
    from guoku.store.engine import sqlite_url

    path = workdir / "nodes" / f"{node}.db"
    if not path.exists():
        raise typer.BadParameter(f"no node database {path}")
    return open_engine(sqlite_url(path))


@app.command("list")
def list_cmd(workdir: Path = WorkdirOpt, node: str = NodeOpt,
             admdiv: str | None = typer.Option(None, help="Only this division"),
             as_json: bool = JsonOption) -> None:
    """Users of a node with their party, division and posts."""
    from guoku.store import repository as repo

    with _engine(workdir, node).connect() as conn:
        users = repo.list_users(conn, admdiv)
    rows = [(u.username, u.name, u.party.code, u.admdiv.code,
             ", ".join(sorted(f"{g.post.value}:{g.vt_code}" for g in u.grants))) for u in users]
    if as_json:
        print_json([dict(zip(("username", "name", "party", "admdiv", "posts"), r, strict=True))
                    for r in rows])
    else:
        table(f"users of {node}", ["user", "name", "party", "admdiv", "posts"], rows)


@app.command("grant")
def grant_cmd(username: str, post: Post, admin: str = typer.Option(..., "--admin"),
              vt_code: str = typer.Option("*", "--vt-code"), workdir: Path = WorkdirOpt,
              node: str = NodeOpt) -> None:
    """Give USERNAME a post (for one voucher type or all), as administrator ADMIN."""
    from guoku.library.admin import Administration

    Administration(_engine(workdir, node)).grant(admin, username, post, vt_code)
    typer.echo(f"{username} now holds {post.value} for {vt_code}")
