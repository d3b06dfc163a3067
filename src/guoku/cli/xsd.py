"""``guoku xsd export DIR``: write the XML Schema of every voucher type, for partners' systems.

The schemas are generated from the voucher catalogue on every run (``guoku.xml.xsd``), so an
export always matches what this version of guoku sends and accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guoku.xml.xsd import export_xsds

app = typer.Typer(
    help="XML Schemas (XSD) of the voucher types, generated from the catalogue.",
    no_args_is_help=True,
)


@app.command("export")
def export_cmd(
    directory: Annotated[
        Path,
        typer.Argument(file_okay=False, help="Directory to write the schemas into (created)"),
    ],
) -> None:
    """Write one <code>_<slug>.xsd per voucher type into DIRECTORY."""
    paths = export_xsds(directory)
    for path in paths:
        typer.echo(str(path))
    typer.echo(f"{len(paths)} schemas written to {directory}")
