"""The ``guoku`` command line. Each command group lives in its own module under ``guoku.cli``.

Entry points stay thin: they parse options, call the library service or a security/XML function,
and print. A :class:`~guoku.domain.errors.GuokuError` becomes one clear line on stderr and exit
code 2 (``main`` does this once for every command).
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from guoku.domain.errors import GuokuError

app = typer.Typer(
    name="guoku",
    help="guoku — electronic treasury centralized payment (国库集中支付电子化管理).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)

# (module under guoku.cli, command-group name or None for top-level commands in that module)
_GROUPS: tuple[tuple[str, str | None], ...] = (
    ("demo", None),
    ("db", "db"),
    ("audit", "audit"),
    ("voucher", "voucher"),
    ("users", "user"),
    ("xsd", "xsd"),
    ("seal", "seal"),
    ("verify", None),
    ("ca", "ca"),
    ("signing", None),
    ("usbkey", "usbkey"),
    ("node", "node"),
    ("mq", "mq"),
    ("flow", "flow"),
    ("reconcile", "reconcile"),
    ("deploy", "deploy"),
    ("api_token", "api-token"),
    ("fallback", "fallback"),
    ("backup", None),
    ("archive", "archive"),
    ("web", None),
    ("key_agent", None),
)


def _register() -> None:
    for module_name, group in _GROUPS:
        try:
            module = importlib.import_module(f"guoku.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"guoku.cli.{module_name}":
                continue  # that command group is not built yet
            raise
        sub: typer.Typer = module.app
        extra = getattr(module, "day_app", None)
        if extra is not None:
            app.add_typer(extra, name="day")
        if group is None:
            for command in sub.registered_commands:
                app.registered_commands.append(command)
        else:
            app.add_typer(sub, name=group)


_register()


def main() -> None:
    try:
        app()
    except GuokuError as exc:
        err_console.print(f"[bold red]error[/]: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
