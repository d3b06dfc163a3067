"""``guoku deploy up|status|down``: a whole province on this machine's PostgreSQL and RabbitMQ
(:mod:`guoku.deploy.deployment`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from guoku.cli._common import print_json, table
from guoku.deploy.config import load_config
from guoku.deploy.deployment import UP_TIMEOUT_S, Deployment, ProcessStatus

app = typer.Typer(help="Deploy a province: up, status, down.", no_args_is_help=True)

CONFIG_ENV = "GUOKU_DEPLOY_CONFIG"

Config = Annotated[Path, typer.Option(
    "--config", envvar=CONFIG_ENV, dir_okay=False,
    help=f"The deployment config (TOML; or ${CONFIG_ENV}).")]
Dir = Annotated[Path | None, typer.Option(
    "--dir", file_okay=False, help="The deployment's directory (default: from --config).")]


def _deployment(config: Path, directory: Path | None) -> Deployment:
    if directory is not None:
        return Deployment(directory)
    return Deployment(load_config(config).directory)


def _show(rows: list[ProcessStatus]) -> None:
    table("processes", ["process", "pid", "uptime", "restarts", "last exit", "health",
                        "endpoint"],
          [(r.name, r.pid or "-", "-" if r.uptime_s is None else _uptime(r.uptime_s),
            r.restarts, "-" if r.last_exit is None else r.last_exit, r.health, r.health_url)
           for r in rows])


def _uptime(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}"


@app.command("up")
def up(
    config: Config = Path("deploy.toml"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every process healthy.")
                       ] = UP_TIMEOUT_S,
) -> None:
    """Key ceremony (first time), schemas, queues; start the supervisor; wait until healthy."""
    loaded = load_config(config)
    rows = Deployment(loaded.directory).up(loaded, timeout=timeout, say=typer.echo)
    _show(rows)
    typer.echo(f"{loaded.name} is up: {len(rows)} processes")


@app.command("status")
def status(
    config: Config = Path("deploy.toml"), directory: Dir = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Each process: pid, uptime, restarts, last exit code and what its health endpoint says.
    Exit 1 when the supervisor is not running or a process is not ok."""
    deployment = _deployment(config, directory)
    supervisor = deployment.supervisor_pid()
    rows = deployment.status()
    if json_out:
        print_json({"supervisor": supervisor, "processes": [vars(r) for r in rows]})
    else:
        typer.echo(f"supervisor: {'pid ' + str(supervisor) if supervisor else 'not running'}")
        _show(rows)
    if supervisor is None or not rows or any(r.health != "ok" for r in rows):
        raise typer.Exit(1)


@app.command("down")
def down(
    config: Config = Path("deploy.toml"), directory: Dir = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds to wait for a graceful stop before killing (default: from the config).")
    ] = None,
    purge: Annotated[bool, typer.Option(
        "--purge", help="Also drop the nodes' schemas or databases and queues (not the keys).")
    ] = False,
) -> None:
    """Stop every process (SIGTERM, SIGKILL after the timeout) and the supervisor."""
    killed = _deployment(config, directory).down(timeout=timeout, purge=purge)
    for what in killed:
        typer.echo(f"killed {what} (did not stop in time)")
    typer.echo("down" + (" and purged" if purge else ""))


@app.command("supervise", hidden=True)
def supervise(directory: Annotated[Path, typer.Option("--dir", file_okay=False)]) -> None:
    """The supervisor daemon (started by ``up``)."""
    raise typer.Exit(Deployment(directory).supervise())


@app.command("web", hidden=True)
def web(
    directory: Annotated[Path, typer.Option("--dir", file_okay=False)],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
) -> None:
    """The web applications over the deployment's nodes (started by the supervisor)."""
    from guoku.deploy.web import serve

    serve(Deployment(directory), host, port, os.environ.get("GUOKU_LOG_FORMAT", "json"))
