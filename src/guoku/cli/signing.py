"""``guoku signing-*``: run and administer the signing server (签名服务器).

The passphrase that opens the directory comes from ``--passphrase-file``, else
``$GUOKU_SIGNING_PASSPHRASE``, else (administration only) a hidden prompt — never from the
command line, where ``ps`` would show it. Administration needs the directory to itself: stop
the server first (the directory is locked by whoever has it open). Each administrative command
is audited under ``--admin`` (default: the login name). This module reads the clock and passes
it on; errors are ``GuokuError``s, printed by ``guoku.cli.main`` as one line with exit code 2.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from guoku.cli._common import print_json, table
from guoku.domain.controls import Post
from guoku.security.ca import MAX_KDF_ITERATIONS, MIN_KDF_ITERATIONS
from guoku.security.crypto import SM2PrivateKey
from guoku.security.signing_http import serve
from guoku.security.signing_server import DEFAULT_KDF_ITERATIONS, SigningService
from guoku.security.x509 import Certificate

app = typer.Typer(help="The signing server: institution keys and official seals.")

PASSPHRASE_ENV = "GUOKU_SIGNING_PASSPHRASE"

Dir = Annotated[Path, typer.Option("--dir", help="The signing-server directory.", file_okay=False)]
PassFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"File whose first line is the passphrase (else ${PASSPHRASE_ENV}).",
        exists=True,
        dir_okay=False,
    ),
]
Admin = Annotated[str | None, typer.Option("--admin", help="Administrator named in the audit log.")]
Party = Annotated[str, typer.Option("--party", help="Party code, e.g. F530000.")]


def _passphrase(path: Path | None, *, prompt: bool, confirm: bool = False) -> str:
    if path is not None:
        lines = path.read_text("utf-8").splitlines()
        return lines[0] if lines else ""
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not prompt:
        raise typer.BadParameter(f"set ${PASSPHRASE_ENV} or pass --passphrase-file")
    value: str = typer.prompt(
        "Signing server passphrase", hide_input=True, confirmation_prompt=confirm
    )
    return value


def _admin(admin: str | None) -> str:
    return admin or getpass.getuser()


def _open(directory: Path, passphrase_file: Path | None) -> SigningService:
    return SigningService.open(directory, _passphrase(passphrase_file, prompt=True))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@app.command("signing-server")
def signing_server(
    directory: Dir,
    passphrase_file: PassFile = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).", min=0)] = 8443,
    verbose: Annotated[bool, typer.Option(help="Log every request to stderr.")] = False,
) -> None:
    """Serve the signing API over HTTP until SIGTERM or Ctrl-C (graceful: in-flight finish)."""
    service = SigningService.open(directory, _passphrase(passphrase_file, prompt=False))

    def ready(bound_host: str, bound_port: int) -> None:
        typer.echo(f"guoku signing server listening on http://{bound_host}:{bound_port}")
        sys.stdout.flush()

    try:
        serve(service, host, port, on_ready=ready, verbose=verbose)
    finally:
        service.close()
    typer.echo("guoku signing server stopped")


@app.command("signing-init")
def signing_init(
    directory: Dir,
    passphrase_file: PassFile = None,
    admin: Admin = None,
    kdf_iterations: Annotated[
        int,
        typer.Option(
            help="PBKDF2-HMAC-SM3 rounds protecting the keys.",
            min=MIN_KDF_ITERATIONS,
            max=MAX_KDF_ITERATIONS,
        ),
    ] = DEFAULT_KDF_ITERATIONS,
) -> None:
    """Create an empty signing-server directory."""
    secret = _passphrase(passphrase_file, prompt=True, confirm=True)
    SigningService.create(
        directory, secret, admin=_admin(admin), kdf_iterations=kdf_iterations
    ).close()
    typer.echo(f"created signing server directory {directory}")


@app.command("signing-keygen")
def signing_keygen(
    directory: Dir,
    party: Party,
    out: Annotated[Path, typer.Option(help="Write the public key (PEM) here, for the CA.")],
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Make a party's institution key pair in the server; hand the public key to the CA."""
    with _open(directory, passphrase_file) as service:
        public = service.generate_institution_key(party, admin=_admin(admin))
    out.write_bytes(public.pem())
    typer.echo(f"generated the institution key of {party}; public key in {out}")


@app.command("signing-install-cert")
def signing_install_cert(
    directory: Dir,
    party: Party,
    cert: Annotated[Path, typer.Option(help="The CA's certificate, PEM or DER.", exists=True)],
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Attach the CA's institution certificate to a key made by ``signing-keygen``."""
    certificate = Certificate.load(cert.read_bytes())
    with _open(directory, passphrase_file) as service:
        service.install_certificate(party, certificate, admin=_admin(admin))
    typer.echo(f"installed {certificate.subject} for {party}")


@app.command("signing-import-key")
def signing_import_key(
    directory: Dir,
    party: Party,
    key: Annotated[Path, typer.Option(help="Unencrypted PKCS#8 PEM key.", exists=True)],
    cert: Annotated[Path, typer.Option(help="Its certificate, PEM or DER.", exists=True)],
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Take in a key made elsewhere; then destroy the clear key file yourself."""
    private = SM2PrivateKey.from_pem(key.read_bytes())
    certificate = Certificate.load(cert.read_bytes())
    with _open(directory, passphrase_file) as service:
        service.add_institution_key(party, private, certificate, admin=_admin(admin))
    typer.echo(f"holding the institution key of {party}; now shred {key}")


@app.command("signing-add-seal")
def signing_add_seal(
    directory: Dir,
    seal: Annotated[Path, typer.Option(help="The seal, DER SES_Seal.", exists=True)],
    owner: Annotated[
        str | None, typer.Option(help="Whose seal, when not the holder (a hosted unit).")
    ] = None,
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Hold an official seal (公章) whose holder is an institution certificate held here."""
    with _open(directory, passphrase_file) as service:
        es_id = service.add_seal(seal.read_bytes(), admin=_admin(admin), owner=owner)
    typer.echo(f"holding seal {es_id}")


@app.command("signing-add-client")
def signing_add_client(
    directory: Dir,
    name: Annotated[str, typer.Option(help="Client name, e.g. finance-node.")],
    party: Annotated[list[str], typer.Option("--party", help="A party it acts for (repeat).")],
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Register a client; its bearer token is printed once and stored only as a hash."""
    with _open(directory, passphrase_file) as service:
        token = service.register_client(name, party, admin=_admin(admin))
    typer.echo(token)


@app.command("signing-revoke-client")
def signing_revoke_client(
    directory: Dir,
    name: Annotated[str, typer.Option(help="Client name.")],
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Revoke a client's token."""
    with _open(directory, passphrase_file) as service:
        service.revoke_client(name, admin=_admin(admin))
    typer.echo(f"revoked client {name}")


@app.command("signing-authorize")
def signing_authorize(
    directory: Dir,
    seal: Annotated[str, typer.Option(help="The seal's esID.")],
    post: Annotated[Post, typer.Option(help="The post allowed to use it.")],
    days: Annotated[int, typer.Option(help="Valid this many days from now.", min=1)] = 365,
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """印章授权: let a post use a seal from now for ``--days``."""
    start = _now()
    end = start + timedelta(days=days)
    with _open(directory, passphrase_file) as service:
        auth_id = service.authorize(seal, post, start, end, admin=_admin(admin))
    typer.echo(f"authorization {auth_id}: {post.value} may use {seal} for {days} days")


@app.command("signing-revoke-authorization")
def signing_revoke_authorization(
    directory: Dir,
    authorization: Annotated[str, typer.Argument(help="The authorization id, e.g. A000001.")],
    passphrase_file: PassFile = None,
    admin: Admin = None,
) -> None:
    """Withdraw a seal authorization from now on."""
    with _open(directory, passphrase_file) as service:
        service.revoke_authorization(authorization, _now(), admin=_admin(admin))
    typer.echo(f"revoked authorization {authorization}")


@app.command("signing-status")
def signing_status(
    directory: Dir,
    passphrase_file: PassFile = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Parties, seals, clients and authorizations held, and the audit head."""
    with _open(directory, passphrase_file) as service:
        parties = [p.to_json() for p in service.parties()]
        seals = [s.to_json() for s in service.seals()]
        clients = [
            {k: v for k, v in c.to_json().items() if k != "token_sm3"} for c in service.clients()
        ]
        auths = [a.to_json() for a in service.authorizations()]
        head = service.audit_head
    if json_out:
        print_json(
            {
                "parties": parties,
                "seals": seals,
                "clients": clients,
                "authorizations": auths,
                "audit_head": list(head),
            }
        )
        return
    table(
        "parties",
        ["party", "status", "fingerprint"],
        [
            (
                p["code"],
                "pending" if p["fingerprint"] is None else "certified",
                (p["fingerprint"] or "")[:16],
            )
            for p in parties
        ],
    )
    table(
        "seals",
        ["esID", "name", "kind", "owner", "signer", "valid to"],
        [
            (s["es_id"], s["name"], s["kind"], s["owner"], s["signer"], s["valid_end"])
            for s in seals
        ],
    )
    table(
        "clients",
        ["client", "parties", "revoked"],
        [(c["name"], " ".join(c["parties"]), c["revoked_at"]) for c in clients],
    )
    table(
        "authorizations",
        ["id", "esID", "post", "from", "to", "revoked"],
        [
            (a["id"], a["es_id"], a["post"], a["valid_from"], a["valid_to"], a["revoked_at"])
            for a in auths
        ],
    )
    typer.echo(f"audit head: seq {head[0]} {head[1]}")


@app.command("signing-audit")
def signing_audit(directory: Dir, passphrase_file: PassFile = None) -> None:
    """Verify the audit log's hash chain; exit 1 at the first break."""
    with _open(directory, passphrase_file) as service:
        broken = service.verify_audit()
        head = service.audit_head
    if broken is not None:
        typer.echo(f"audit chain BROKEN at position {broken.position}: {broken.reason}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit chain intact: {head[0]} entries, head {head[1]}")
