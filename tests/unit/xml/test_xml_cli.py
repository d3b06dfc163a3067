"""``guoku xsd export DIR`` through the real command line application."""

from __future__ import annotations

from pathlib import Path

from lxml import etree
from typer.testing import CliRunner

from guoku.domain.vouchers import all_types


def test_the_cli_exports_every_schema(tmp_path: Path) -> None:
    from guoku.cli import app  # imported here: it loads every command group, not only ours

    out = tmp_path / "xsd"
    result = CliRunner().invoke(app, ["xsd", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(all_types())} schemas written" in result.output
    files = sorted(out.glob("*.xsd"))
    assert len(files) == len(all_types())
    assert all(etree.XMLSchema(etree.parse(str(f))) for f in files)


def test_export_without_a_directory_is_a_usage_error() -> None:
    from guoku.cli import app

    result = CliRunner().invoke(app, ["xsd", "export"])
    assert result.exit_code == 2
