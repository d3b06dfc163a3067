"""``guoku key-agent``: the local U盾 helper the sign-in page calls (see guoku.web.key_agent)."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import console

app = typer.Typer()


@app.command("key-agent")
def key_agent_cmd(
    workdir: Path = typer.Option(Path("demo-workspace"), "--workdir",
                                 help="Workspace whose security/usb/ holds the USB keys"),
    port: int = typer.Option(8719, "--port", help="Port on 127.0.0.1"),
    origin: list[str] = typer.Option(["http://127.0.0.1:8000", "http://localhost:8000"],
                                     "--origin", help="Web app origins allowed to use the key"),
) -> None:
    """Sign sign-in challenges with the clerk's USB key after PIN entry (127.0.0.1 only)."""
    from guoku.web.key_agent import agent_for

    if not (workdir / "security" / "usb").is_dir():
        raise typer.BadParameter(f"no USB keys under {workdir / 'security' / 'usb'}")
    server = agent_for(workdir, origin).serve("127.0.0.1", port)
    console.print(f"key agent on http://127.0.0.1:{port} for {', '.join(origin)}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
