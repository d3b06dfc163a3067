"""``guoku backup`` and ``guoku restore``: one node's database to a signed, verifiable file and
back (decision 0020).

``guoku backup --node NAME (--db URL | --workdir DIR) --out FILE [--home DIR] [--no-sign]``
``guoku restore FILE --node NAME (--db URL | --workdir DIR) [--trust DIR] [--check]``

A restore refuses a changed, truncated or wrongly signed file, and a target that is not empty,
with a typed error (exit 2) before it changes anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from guoku.cli._common import JsonOption, console, print_json

app = typer.Typer()

NodeOpt = typer.Option(..., "--node", help="The node (finance, pboc, bank-icbc ...)")
DbOpt = typer.Option(None, "--db", help="The node's database URL")
WorkdirOpt = typer.Option(None, "--workdir",
                          help="A workspace: WORKDIR/nodes/NODE.db, keys in WORKDIR/security")


def node_url(db: str | None, workdir: Path | None, node: str) -> str:
    from guoku.store.engine import resolve_url, sqlite_url

    if db is None and workdir is not None:
        return sqlite_url(workdir / "nodes" / f"{node}.db")
    return resolve_url(db)


@app.command("backup")
def backup_cmd(
    node: str = NodeOpt, out: Path = typer.Option(..., "--out", help="Backup file (.tar.gz)"),
    db: str | None = DbOpt, workdir: Path | None = WorkdirOpt,
    home: Path | None = typer.Option(None, "--home", help="Key-ceremony directory (default "
                                     "WORKDIR/security) holding the node's signing server"),
    sign: bool = typer.Option(True, "--sign/--no-sign",
                              help="Sign the manifest with the node's institution key"),
    as_json: bool = JsonOption,
) -> None:
    """Every table of the node, its row counts and SM3 digests, the schema revision and the
    audit-chain head, in one file; the manifest signed by the node's institution key."""
    import contextlib

    from guoku.ops.backup import backup
    from guoku.ops.keys import node_keys
    from guoku.store.engine import make_engine

    home = home or (workdir / "security" if workdir is not None else None)
    if sign and home is None:
        raise typer.BadParameter("signing needs --home (or --workdir); or pass --no-sign")
    engine = make_engine(node_url(db, workdir, node))
    try:
        with contextlib.ExitStack() as stack:
            keys = stack.enter_context(node_keys(home, node)) if sign and home else None
            manifest = backup(engine, out, node=node, keys=keys, now=datetime.now(UTC))
    finally:
        engine.dispose()
    summary = {"file": str(out), "node": node, "signed": sign, "revision": manifest.revision,
               "rows": manifest.rows, "tables": len(manifest.tables),
               "audit_head": manifest.audit_seq, "bytes": out.stat().st_size}
    if as_json:
        print_json(summary)
    else:
        console.print(f"backup of {node}: {summary['rows']} rows in {summary['tables']} tables, "
                      f"revision {manifest.revision}, audit head {manifest.audit_seq}, "
                      f"{'signed' if sign else 'unsigned'} -> {out}")


@app.command("restore")
def restore_cmd(
    file: Path = typer.Argument(..., help="A backup made by `guoku backup`"),
    node: str = NodeOpt, db: str | None = DbOpt, workdir: Path | None = WorkdirOpt,
    trust: Path | None = typer.Option(None, "--trust", help="Trust anchors (default "
                                      "WORKDIR/trust)"),
    require_signature: bool = typer.Option(False, "--require-signature"),
    check: bool = typer.Option(False, "--check", help="Verify the file only; touch nothing"),
    as_json: bool = JsonOption,
) -> None:
    """Verify the backup completely, then load it into an empty database in one transaction."""
    from guoku.ops.backup import restore, verify
    from guoku.security.certs import TrustStore
    from guoku.store.engine import make_engine

    trust_dir = trust or (workdir / "trust" if workdir is not None else None)
    store = TrustStore.from_directory(trust_dir) if trust_dir is not None else None
    if check:
        manifest, signer = verify(file, store, require_signature=require_signature)
        timings: dict[str, float] = {}
    else:
        url = node_url(db, workdir, node)
        if workdir is not None and db is None:
            (workdir / "nodes").mkdir(parents=True, exist_ok=True)
        engine = make_engine(url)
        try:
            report = restore(file, engine, store, require_signature=require_signature)
        finally:
            engine.dispose()
        manifest, signer, timings = report.manifest, report.signed_by, report.timings
    if manifest.node != node:
        console.print(f"[yellow]note[/]: the backup is of node {manifest.node}, not {node}")
    result = {"file": str(file), "node": manifest.node, "rows": manifest.rows,
              "revision": manifest.revision, "audit_head": manifest.audit_seq,
              "signed_by": signer, "restored": not check,
              "seconds": {k: round(v, 3) for k, v in timings.items()}}
    if as_json:
        print_json(result)
    else:
        verb = "restored" if not check else "verified"
        console.print(f"{verb} {file}: {manifest.rows} rows of node {manifest.node}, revision "
                      f"{manifest.revision}, audit head {manifest.audit_seq}, "
                      f"signed by {signer or 'nobody (unsigned)'}")
