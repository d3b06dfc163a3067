"""``guoku archive``: settled vouchers older than a cut-off to a signed archive (decision 0022).

``guoku archive --before YYYYMMDD --out DIR --node NAME (--db URL | --workdir DIR) [--purge]``
writes every settled voucher version dated before the cut-off as its sealed XML, with their
trail and a manifest of SM3 digests, counts and amounts, sealed with the node's official seal;
the archive is verified at once, and ``--purge`` then removes those rows from the live database
in one transaction, each one recorded in the audit chain.

``guoku archive verify DIR --trust DIR`` checks an archive offline: exit 0 with a report, 1 with
the typed reason of the first failure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from guoku.cli._common import JsonOption, console, print_json
from guoku.cli.backup import node_url

app = typer.Typer(help="Signed archives of settled vouchers: make (and purge), verify.",
                  invoke_without_command=True)


def _show(report: object, as_json: bool, extra: dict[str, object] | None = None) -> None:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(report) and not isinstance(report, type)
    data = {**asdict(report), **(extra or {})}
    if as_json:
        print_json(data)
        return
    console.print(f"[green]valid[/] archive {data['archive_id']} of {data['node']} "
                  f"({data['party']}): {data['vouchers']} vouchers before {data['cutoff']}, "
                  f"{data['amount_fen']} fen, {data['stamps_checked']} stamps checked; "
                  f"sealed 「{data['seal_name']}」 by {data['sealed_by']} at {data['signed_at']}")
    if extra:
        console.print(", ".join(f"{k}: {v}" for k, v in extra.items()))


@app.callback()
def archive(
    ctx: typer.Context,
    before: str | None = typer.Option(None, "--before", help="Cut-off date yyyymmdd"),
    out: Path | None = typer.Option(None, "--out", help="Archive directory (new or empty)"),
    node: str | None = typer.Option(None, "--node", help="The node (finance, bank-icbc ...)"),
    db: str | None = typer.Option(None, "--db", help="The node's database URL"),
    workdir: Path | None = typer.Option(None, "--workdir", help="A workspace"),
    home: Path | None = typer.Option(None, "--home", help="Key-ceremony directory (default "
                                     "WORKDIR/security)"),
    purge: bool = typer.Option(False, "--purge", help="Then remove the archived rows"),
    user: str = typer.Option("ops", "--user", help="Who archives (for the audit log)"),
    as_json: bool = JsonOption,
) -> None:
    """Make a signed archive; with --purge, then remove what it holds from the database."""
    if ctx.invoked_subcommand is not None:
        return
    from guoku.ops.archive import make_archive
    from guoku.ops.archive import purge as purge_rows
    from guoku.ops.keys import node_keys
    from guoku.security.certs import TrustStore
    from guoku.store.engine import make_engine

    if before is None or out is None or node is None:
        raise typer.BadParameter("give --before, --out and --node (or `archive verify DIR`)")
    home = home or (workdir / "security" if workdir is not None else None)
    if home is None:
        raise typer.BadParameter("the node's signing server: give --home or --workdir")
    engine = make_engine(node_url(db, workdir, node))
    extra: dict[str, object] = {}
    try:
        with node_keys(home, node) as keys:
            now = datetime.now(UTC)
            report = make_archive(engine, keys, out, before=before, now=now, made_by=user)
            if purge:
                extra["purged"] = purge_rows(engine, out,
                                             TrustStore.from_directory(home / "trust"),
                                             party=keys.party, actor=user, now=now)
    finally:
        engine.dispose()
    _show(report, as_json, extra)


@app.command("verify")
def verify_cmd(
    directory: Path = typer.Argument(..., help="An archive directory"),
    trust: Path = typer.Option(Path("demo-workspace/trust"), "--trust",
                               help="Trust anchors: CA certificates and CRLs"),
    as_json: bool = JsonOption,
) -> None:
    """Offline: the manifest's seal and chain, exactly the files named, every SM3, the totals
    and every voucher's stamps. Exit 0 when valid, 1 with the typed reason otherwise."""
    from guoku.domain.errors import GuokuError
    from guoku.ops.archive import verify_archive
    from guoku.security.certs import TrustStore

    try:
        report = verify_archive(directory, TrustStore.from_directory(trust))
    except GuokuError as exc:
        if as_json:
            print_json({"valid": False, "code": exc.code, "reason": exc.message,
                        "cause": exc.details.get("cause")})
        else:
            console.print(f"[red]INVALID[/] {directory}: {exc.code}: {exc.message}")
        raise typer.Exit(1) from None
    _show(report, as_json, {"valid": True} if as_json else None)
