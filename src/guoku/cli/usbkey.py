"""``guoku usbkey``: issue and administer software USB keys (软U盾).

PINs may be given as options (scripts, tests) or typed at a hidden prompt, which is the default.
Errors are :class:`~guoku.security.token_protocol.TokenError`; ``guoku.cli.main`` prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from guoku.cli._common import JsonOption, print_json
from guoku.security.crypto import sm3_hex
from guoku.security.token_protocol import (
    SO_PIN_MAX_RETRIES,
    USER_PIN_MAX_RETRIES,
    ObjectKind,
)
from guoku.security.usbkey import (
    DEFAULT_PIN_ITERATIONS,
    FORMAT_NAME,
    FORMAT_VERSION,
    KDF_NAME,
    MAX_PIN_ITERATIONS,
    MIN_PIN_ITERATIONS,
    SoftwareToken,
)

app = typer.Typer(help="Software USB keys (U盾): personal SM2 keys, certificates and seals.")

TokenPath = Annotated[Path, typer.Argument(help="The USB key file.", dir_okay=False)]


def _pin_option(prompt: str, *, confirm: bool = False, flag: str = "--pin") -> Any:
    """A PIN option that falls back to a hidden prompt (typer.Option is typed as Any)."""
    return typer.Option(
        flag, prompt=prompt, hide_input=True, confirmation_prompt=confirm, show_default=False
    )


@app.command("init")
def init(
    path: TokenPath,
    label: Annotated[str, typer.Option(help="Token label, e.g. the holder's name.")],
    so_pin: Annotated[str, _pin_option("SO PIN", confirm=True, flag="--so-pin")],
    pin: Annotated[str, _pin_option("User PIN", confirm=True)],
    iterations: Annotated[
        int,
        typer.Option(
            help="PBKDF2-HMAC-SM3 rounds per PIN check.",
            min=MIN_PIN_ITERATIONS,
            max=MAX_PIN_ITERATIONS,
        ),
    ] = DEFAULT_PIN_ITERATIONS,
) -> None:
    """Create a blank USB key file (no keys yet) protected by a user PIN and an SO PIN."""
    token = SoftwareToken.initialize(path, label, so_pin, pin, iterations=iterations)
    typer.echo(f"initialized USB key {token.serial} ({token.label}) at {path}")


@app.command("info")
def info(path: TokenPath, as_json: bool = JsonOption) -> None:
    """Show the serial, PIN counters and objects of a USB key (no PIN needed)."""
    token = SoftwareToken.open(path)
    if token.is_dead:
        state = "dead"
    elif token.is_locked:
        state = "locked"
    else:
        state = "ready"
    objects = [
        {
            "kind": obj.kind.value,
            "label": obj.label,
            "size": obj.size,
            "fingerprint": (
                sm3_hex(token.public_key(obj.label).point)[:16]
                if obj.kind is ObjectKind.SM2_KEY
                else None
            ),
        }
        for obj in token.list_objects()
    ]
    if as_json:
        print_json(
            {
                "serial": token.serial,
                "label": token.label,
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "kdf": KDF_NAME,
                "iterations": token.iterations,
                "retries_left": token.retries_left,
                "so_retries_left": token.so_retries_left,
                "state": state,
                "objects": objects,
            }
        )
        return
    typer.echo(f"serial     {token.serial}")
    typer.echo(f"label      {token.label}")
    typer.echo(f"format     {FORMAT_NAME} v{FORMAT_VERSION}, {KDF_NAME} x {token.iterations}")
    typer.echo(f"user PIN   {token.retries_left}/{USER_PIN_MAX_RETRIES} attempts left")
    typer.echo(f"SO PIN     {token.so_retries_left}/{SO_PIN_MAX_RETRIES} attempts left")
    typer.echo(f"state      {_STATE_TEXT[state]}")
    typer.echo(f"objects    {len(objects)}")
    for obj in objects:
        fingerprint = obj["fingerprint"]
        detail = f"SM3(public key) {fingerprint}" if fingerprint else f"{obj['size']} bytes"
        typer.echo(f"  {obj['kind']:<12} {obj['label']:<20} {detail}")


_STATE_TEXT = {
    "ready": "ready",
    "locked": "LOCKED (unblock with the SO PIN)",
    "dead": "DEAD (SO PIN exhausted; keys erased)",
}


@app.command("genkey")
def genkey(
    path: TokenPath,
    label: Annotated[str, typer.Argument(help="Key label (the SKF container name).")],
    pin: Annotated[str, _pin_option("User PIN")],
    out: Annotated[
        Path | None, typer.Option(help="Also write the public key PEM to this file.")
    ] = None,
) -> None:
    """Generate an SM2 key pair inside the USB key and print its public key (PEM)."""
    token = SoftwareToken.open(path)
    token.login(pin)
    try:
        public = token.generate_sm2_key(label)
    finally:
        token.logout()
    if out is not None:
        out.write_bytes(public.pem())
    typer.echo(public.pem().decode("ascii"), nl=False)


@app.command("unblock")
def unblock(
    path: TokenPath,
    so_pin: Annotated[str, _pin_option("SO PIN", flag="--so-pin")],
    new_pin: Annotated[str, _pin_option("New user PIN", confirm=True, flag="--new-pin")],
) -> None:
    """Set a new user PIN with the SO PIN and reset the user PIN's retry counter."""
    token = SoftwareToken.open(path)
    token.unblock(so_pin, new_pin)
    typer.echo(f"USB key {token.serial}: user PIN reset, {token.retries_left} attempts left")


@app.command("change-pin")
def change_pin(
    path: TokenPath,
    pin: Annotated[str, _pin_option("Current user PIN")],
    new_pin: Annotated[str, _pin_option("New user PIN", confirm=True, flag="--new-pin")],
) -> None:
    """Change the user PIN (a wrong current PIN counts as a wrong PIN)."""
    token = SoftwareToken.open(path)
    token.change_pin(pin, new_pin)
    typer.echo(f"USB key {token.serial}: user PIN changed")
