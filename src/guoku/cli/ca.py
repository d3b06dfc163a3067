"""``guoku ca``: run the deployment CA (身份认证系统) — init, issue, revoke, CRLs, trust export.

The passphrase that protects the CA keys comes from ``--passphrase``, ``$GUOKU_CA_PASSPHRASE``
or a hidden prompt. This entry point is the one place that reads the clock: it passes ``now``
to the CA, which never reads it itself. Errors are ``GuokuError``s; ``guoku.cli.main`` prints
them as one line with exit code 2.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from guoku.security.ca import (
    DEFAULT_CERT_DAYS,
    DEFAULT_CRL_DAYS,
    DEFAULT_KDF_ITERATIONS,
    MAX_CERT_DAYS,
    MAX_KDF_ITERATIONS,
    MIN_KDF_ITERATIONS,
    CertificateAuthority,
    read_index,
)
from guoku.security.certs import Crl, RevocationReason
from guoku.security.crypto import SM2PublicKey
from guoku.security.x509 import Certificate, CertificateInvalid, CrlInvalid

app = typer.Typer(help="The deployment CA: institution and personal SM2 certificates, CRLs.")


def _console() -> Console:
    """A console per command, so the terminal width is read when the command runs."""
    return Console()


CaDir = Annotated[Path, typer.Argument(help="The CA directory.", file_okay=False)]


class Kind(enum.StrEnum):
    INSTITUTION = "institution"
    PERSONAL = "personal"


def _passphrase(confirm: bool = False) -> Any:
    """A passphrase option: flag, environment, or hidden prompt (typer.Option is typed Any)."""
    return typer.Option(
        "--passphrase",
        envvar="GUOKU_CA_PASSPHRASE",
        prompt="CA passphrase",
        hide_input=True,
        confirmation_prompt=confirm,
        show_default=False,
        show_envvar=True,
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@app.command("init")
def init(
    directory: CaDir,
    name: Annotated[str, typer.Option(help="Deployment name: the O of every subject.")],
    passphrase: Annotated[str, _passphrase(confirm=True)],
    kdf_iterations: Annotated[
        int,
        typer.Option(
            help="PBKDF2-HMAC-SM3 rounds protecting the CA keys.",
            min=MIN_KDF_ITERATIONS,
            max=MAX_KDF_ITERATIONS,
        ),
    ] = DEFAULT_KDF_ITERATIONS,
) -> None:
    """Create a root CA and an issuing CA in an empty directory."""
    ca = CertificateAuthority.create(
        directory, name, passphrase, _now(), kdf_iterations=kdf_iterations
    )
    typer.echo(f"created CA {ca.name!r} in {directory}")
    typer.echo(f"root    {ca.root.serial:x}  sm3 {ca.root.fingerprint}")
    typer.echo(f"issuing {ca.issuing.serial:x}  sm3 {ca.issuing.fingerprint}")


@app.command("issue")
def issue(
    directory: CaDir,
    kind: Annotated[Kind, typer.Option(help="institution (机构证书) or personal (个人证书).")],
    party: Annotated[str, typer.Option(help="Party code, e.g. F530000 (goes in OU).")],
    name: Annotated[str, typer.Option(help="Institution or person's name (goes in CN).")],
    public_key: Annotated[
        Path, typer.Option(help="The holder's SM2 public key, PEM.", exists=True, dir_okay=False)
    ],
    passphrase: Annotated[str, _passphrase()],
    username: Annotated[str | None, typer.Option(help="Personal only: the login (UID).")] = None,
    days: Annotated[int, typer.Option(min=1, max=MAX_CERT_DAYS)] = DEFAULT_CERT_DAYS,
    out: Annotated[Path | None, typer.Option(help="Write the certificate PEM here.")] = None,
) -> None:
    """Issue a certificate for a public key the holder generated (signing server, USB key)."""
    key = SM2PublicKey.from_pem(public_key.read_bytes())
    if (kind is Kind.PERSONAL) != (username is not None):
        raise typer.BadParameter("--username is required for personal and refused otherwise")
    ca = CertificateAuthority.open(directory, passphrase)
    if username is not None:
        cert = ca.issue_personal(username, party, name, key, _now(), days)
    else:
        cert = ca.issue_institution(party, name, key, _now(), days)
    if out is not None:
        _write(out, cert.pem)
    typer.echo(f"issued {cert.serial:x}  {cert.subject}  until {cert.not_after.isoformat()}")


@app.command("revoke")
def revoke(
    directory: CaDir,
    serial: Annotated[str, typer.Argument(help="Serial number, hexadecimal.")],
    passphrase: Annotated[str, _passphrase()],
    reason: Annotated[RevocationReason, typer.Option()] = RevocationReason.UNSPECIFIED,
) -> None:
    """Revoke a certificate from now on; publish a fresh CRL afterwards (``guoku ca crl``)."""
    record = CertificateAuthority.open(directory, passphrase).revoke(serial, _now(), reason)
    typer.echo(f"revoked {record.serial} ({record.name}) at {record.revoked_at}: {record.reason}")


@app.command("crl")
def crl(
    directory: CaDir,
    passphrase: Annotated[str, _passphrase()],
    out: Annotated[Path | None, typer.Option(help="Output file; .pem means PEM, else DER.")] = None,
    days: Annotated[int, typer.Option(min=1, max=366)] = DEFAULT_CRL_DAYS,
) -> None:
    """Sign a fresh CRL of the issuing CA."""
    fresh = CertificateAuthority.open(directory, passphrase).crl(_now(), days)
    target = out or directory / "issuing.crl.pem"
    _write(target, fresh.pem if target.suffix == ".pem" else fresh.der)
    typer.echo(
        f"CRL #{fresh.crl_number}: {len(fresh.revoked)} revoked, "
        f"next update {fresh.next_update.isoformat() if fresh.next_update else '-'} -> {target}"
    )


@app.command("export-trust")
def export_trust(
    directory: CaDir,
    target: Annotated[Path, typer.Argument(help="Trust dir to write.", file_okay=False)],
    passphrase: Annotated[str, _passphrase()],
) -> None:
    """Write the trust dir an offline verifier loads: CA certificates and fresh CRLs."""
    CertificateAuthority.open(directory, passphrase).export_trust(target, _now())
    typer.echo(f"trust dir written to {target}")


@app.command("list")
def list_issued(directory: CaDir) -> None:
    """List issued certificates and their revocation state (no passphrase needed)."""
    table = Table(title=f"certificates issued by {directory}")
    for column in ("serial", "kind", "party", "user", "name", "not after", "revoked"):
        table.add_column(column, overflow="fold")
    for r in read_index(directory):
        revoked = f"{r.revoked_at} ({r.reason})" if r.revoked_at else ""
        table.add_row(
            r.serial, r.kind, r.party_code, r.username or "", r.name, r.not_after, revoked
        )
    _console().print(table)


@app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="A certificate or CRL, PEM or DER.", exists=True)],
) -> None:
    """Print a certificate's (or CRL's) fields."""
    data = path.read_bytes()
    try:
        cert = Certificate.load(data)
    except CertificateInvalid as not_cert:
        try:
            revocations = Crl.load(data)
        except CrlInvalid:
            raise CertificateInvalid(
                f"{path} is neither an SM2 certificate nor a CRL ({not_cert.message})"
            ) from not_cert
        _show_crl(revocations)
        return
    table = Table(title=str(path), show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    holder = cert.holder
    rows = [
        ("serial", f"{cert.serial:x}"),
        ("subject", cert.subject),
        ("issuer", cert.issuer),
        ("not before", cert.not_before.isoformat()),
        ("not after", cert.not_after.isoformat()),
        ("CA", f"yes (path length {cert.path_len})" if cert.is_ca else "no"),
        ("key usage", ", ".join(sorted(cert.key_usage))),
        ("holder", f"{holder.kind}: party {holder.party_code}" if holder else "-"),
        ("user", holder.username if holder and holder.username else "-"),
        ("public key", cert.public_key.point.hex()),
        ("SM3 fingerprint", cert.fingerprint),
    ]
    for field, value in rows:
        table.add_row(field, value)
    _console().print(table)


def _show_crl(revocations: Crl) -> None:
    table = Table(title=f"CRL #{revocations.crl_number} by {revocations.issuer}")
    for column in ("serial", "revoked at", "reason"):
        table.add_column(column, overflow="fold")
    for r in sorted(revocations.revoked.values(), key=lambda r: r.revoked_at):
        table.add_row(f"{r.serial:x}", r.revoked_at.isoformat(), r.reason)
    _console().print(table)
    next_update = revocations.next_update.isoformat() if revocations.next_update else "-"
    _console().print(
        f"this update {revocations.this_update.isoformat()}, next update {next_update}"
    )
