"""``guoku web``: the counter, monitor, console and service API over a demo workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import console

app = typer.Typer()


@app.command("web")
def web_cmd(
    workdir: Path = typer.Option(Path("demo-workspace"), "--workdir", help="Demo workspace"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    key_agent_url: str = typer.Option("http://127.0.0.1:8719", "--key-agent-url",
                                      help="Where the sign-in page finds the local key agent"),
) -> None:
    """Serve every web app over the workspace's nodes (in-process transport pumped)."""
    import uvicorn

    from guoku.web.app import create_app
    from guoku.web.context import WebContext
    from guoku.workspace import open_workspace

    if not (workdir / "nodes").is_dir():
        raise typer.BadParameter(f"{workdir} is not a workspace: run `guoku demo` first")
    ws = open_workspace(workdir)
    try:
        app = create_app(WebContext.over_workspace(ws), key_agent_url)
        console.print(f"guoku web on http://{host}:{port}/ — sign in through the key agent "
                      f"(`guoku key-agent --workdir {workdir}`)")
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        ws.close()
