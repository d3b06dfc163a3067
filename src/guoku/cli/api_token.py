"""``guoku api-token issue|list|revoke``: bearer tokens of business systems for the service API.

A token acts as one service user of one node (``--workdir``: the node whose database holds the
user; ``--db``: that database). The token is printed once, at issue; only its SM3 hash is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine, select

from guoku.cli._common import DbOption, JsonOption, WorkdirOption, console, db_urls, print_json
from guoku.cli._common import table as print_table
from guoku.store import api_tokens
from guoku.store.tables import users

app = typer.Typer(help="Service-API tokens of business systems (接口令牌).", no_args_is_help=True)

AdminOpt = Annotated[str, typer.Option("--admin", help="Administrator who issues or revokes")]


def _engines(db: str | None, workdir: Path | None) -> dict[str, Engine]:
    from guoku.bootstrap import open_engine

    return {name: open_engine(url) for name, url in db_urls(db, workdir).items()}


def _node_of_user(engines: dict[str, Engine], username: str) -> Engine:
    for engine in engines.values():
        with engine.connect() as conn:
            if conn.execute(select(users.c.id).where(users.c.username == username)).first():
                return engine
    raise typer.BadParameter(f"no node database knows user {username}")


@app.command("issue")
def issue_cmd(
    system: Annotated[str, typer.Argument(help="Business system name, e.g. fin-erp")],
    user: Annotated[str, typer.Option("--user", help="Service user the system acts as")],
    admin: AdminOpt, db: str | None = DbOption, workdir: Path | None = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Issue a token; it is printed once and cannot be shown again."""
    engine = _node_of_user(_engines(db, workdir), user)
    token, record = api_tokens.issue(engine, admin, system, user)
    if as_json:
        print_json({**record.to_dict(), "token": token})
    else:
        console.print(f"token {record.id} for {system} as {user} ({record.party}, "
                      f"{record.admdiv}):", highlight=False)
        typer.echo(token)


@app.command("list")
def list_cmd(db: str | None = DbOption, workdir: Path | None = WorkdirOption,
             as_json: bool = JsonOption) -> None:
    """Every token of every node (never the tokens themselves)."""
    rows = [(node, t) for node, engine in _engines(db, workdir).items()
            for t in api_tokens.list_tokens(engine)]
    if as_json:
        print_json([{"node": node, **t.to_dict()} for node, t in rows])
        return
    print_table("API tokens", ["node", "id", "system", "user", "party", "admdiv", "issued",
                               "revoked"],
                [(node, t.id, t.system, t.username, t.party, t.admdiv, t.created_at,
                  t.revoked_at) for node, t in rows])


@app.command("revoke")
def revoke_cmd(
    token_id: Annotated[int, typer.Argument(help="Token id (from `list`)", min=1)],
    admin: AdminOpt,
    node: Annotated[str | None, typer.Option("--node", help="Node name (with --workdir)")] = None,
    db: str | None = DbOption, workdir: Path | None = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a token: every later call with it is refused (401)."""
    engines = _engines(db, workdir)
    if len(engines) > 1 and node is None:
        raise typer.BadParameter("several nodes: name one with --node")
    engine = engines[node] if node is not None else next(iter(engines.values()))
    record = api_tokens.revoke(engine, admin, token_id)
    if as_json:
        print_json(record.to_dict())
    else:
        console.print(f"token {record.id} ({record.system}) revoked at {record.revoked_at}",
                      highlight=False)
