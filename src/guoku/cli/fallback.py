"""``guoku fallback``: the emergency paper procedure (应急纸质凭证) on a workspace.

``list`` the vouchers waiting on the wire and whether their paper fallback is open; ``switch``
one to paper (sending post, after its type's time, ``--policy FILE`` with a ``[fallback]``
table); ``print`` it as a PDF marked 应急 / 纸质凭证 (printing post, counted); the receiver
``register``s the paper it processed; ``registrations`` shows what was matched.
"""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import JsonOption, console, print_json, table
from guoku.cli.voucher import UserOpt, WorkdirOpt, _open

app = typer.Typer(help="Emergency fallback to paper: list, switch, print, register.",
                  no_args_is_help=True)
PolicyOpt = typer.Option(None, "--policy", help="TOML file with a [fallback] table")


@app.command("list")
def list_cmd(user: str = UserOpt, workdir: Path = WorkdirOpt, policy: Path | None = PolicyOpt,
             show_all: bool = typer.Option(False, "--all", help="Also those not yet due"),
             as_json: bool = JsonOption) -> None:
    """The node's vouchers on the wire (sent, indeterminate) and when paper opens for them."""
    from guoku.ops.fallback import FallbackPolicy, overdue

    ws, lib = _open(workdir, user)
    try:
        found = overdue(lib, FallbackPolicy.load(policy), lib.clock(), only_due=not show_all)
    finally:
        ws.close()
    items = [{"id": w.row.id, "ref": w.row.ref, "state": w.row.state,
              "receiver": w.row.receiver_party, "sent_at": w.sent_at, "opens_at": w.opens_at,
              "due": w.due} for w in found]
    if as_json:
        print_json(items)
    else:
        table("waiting on the wire", ["id", "voucher", "state", "receiver", "sent", "paper from",
                                      "due"],
              [(i["id"], i["ref"], i["state"], i["receiver"], i["sent_at"], i["opens_at"],
                "yes" if i["due"] else "") for i in items])


@app.command("switch")
def switch_cmd(voucher_id: int, reason: str = typer.Option(..., "--reason"),
               user: str = UserOpt, workdir: Path = WorkdirOpt,
               policy: Path | None = PolicyOpt) -> None:
    """应急: switch a voucher to paper (refused before its type's time has passed)."""
    from guoku.ops.fallback import FallbackPolicy, switch

    ws, lib = _open(workdir, user)
    try:
        row = switch(lib, FallbackPolicy.load(policy), user, voucher_id, reason)
    finally:
        ws.close()
    console.print(f"{row.ref}: {row.state} (print it with `guoku fallback print {row.id}`)")


@app.command("print")
def print_cmd(voucher_id: int, out: Path = typer.Option(..., "--out", help="PDF to write"),
              user: str = UserOpt, workdir: Path = WorkdirOpt) -> None:
    """Print a paper voucher with the emergency mark (counted and audited)."""
    from guoku.ops.fallback import print_emergency

    ws, lib = _open(workdir, user)
    try:
        printed = print_emergency(lib, user, voucher_id, out)
    finally:
        ws.close()
    console.print(f"{printed.ref}: print no. {printed.print_no} -> {printed.path} "
                  f"(SM3 {printed.sm3[:16]}…)")


@app.command("register")
def register_cmd(
    sender: str = typer.Option(..., "--sender", help="Sending party code on the paper"),
    vt_code: str = typer.Option(..., "--type"), year: int = typer.Option(..., "--year"),
    voucher_no: str = typer.Option(..., "--no"), version: int = typer.Option(1, "--version"),
    amount: str = typer.Option(..., "--amount", help="Yuan, e.g. 1234.56"),
    vou_date: str = typer.Option(..., "--date", help="yyyymmdd"),
    user: str = UserOpt, workdir: Path = WorkdirOpt,
) -> None:
    """登记: the receiver records a paper voucher it processed (receiving post)."""
    from guoku.domain.money import Amount
    from guoku.library.paper import PaperFacts

    ws, lib = _open(workdir, user)
    try:
        record = lib.register_paper(user, PaperFacts(
            sender, vt_code, year, voucher_no, version, Amount.parse(amount).fen, vou_date))
    finally:
        ws.close()
    console.print(f"paper {record.ref} from {record.sender_party}: {record.status}")


@app.command("registrations")
def registrations_cmd(user: str = UserOpt, workdir: Path = WorkdirOpt,
                      as_json: bool = JsonOption) -> None:
    """The paper vouchers this node registered, and whether their electronic copy matched."""
    from guoku.library.paper import registrations

    ws, lib = _open(workdir, user)
    try:
        with lib.engine.connect() as conn:
            records = registrations(conn)
    finally:
        ws.close()
    items = [{"id": r.id, "ref": r.ref, "sender": r.sender_party, "amount_fen": r.amount_fen,
              "date": r.vou_date, "status": r.status, "voucher_id": r.voucher_id,
              "registered_by": r.registered_by} for r in records]
    if as_json:
        print_json(items)
    else:
        table("paper registrations", ["id", "voucher", "sender", "fen", "date", "status"],
              [(i["id"], i["ref"], i["sender"], i["amount_fen"], i["date"], i["status"])
               for i in items])
