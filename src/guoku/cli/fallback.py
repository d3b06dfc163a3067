"""``guoku fallback``: the emergency paper procedure (应急纸质凭证) on a demo workspace
(``--workdir``) or a deployment (``--config deploy.toml``, :mod:`guoku.cli._target`).

``list`` the vouchers waiting on the wire and whether their paper fallback is open; ``switch``
one to paper (sending post, after its type's time: the ``[fallback]`` table of ``--policy
FILE``, else of the deployment's config, else two hours); ``print`` it as a PDF marked
应急 / 纸质凭证 (printing post, counted); the receiver ``register``s the paper it processed;
``registrations`` shows what was matched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from guoku.cli._common import JsonOption, console, print_json, table
from guoku.cli._target import ConfigOpt, WorkdirOpt, clerk, deployment_config
from guoku.cli.voucher import UserOpt

if TYPE_CHECKING:
    from guoku.ops.fallback import FallbackPolicy

app = typer.Typer(help="Emergency fallback to paper: list, switch, print, register.",
                  no_args_is_help=True)
PolicyOpt = typer.Option(
    None, "--policy", help="TOML file with a [fallback] table (default: the deployment's config)")


def _policy(policy: Path | None, workdir: Path | None, config: Path | None) -> FallbackPolicy:
    """``--policy``; on a deployment, the ``[fallback]`` table of its config; the defaults."""
    from guoku.ops.fallback import FallbackPolicy

    return FallbackPolicy.load(policy or deployment_config(workdir, config))


@app.command("list")
def list_cmd(user: str = UserOpt, workdir: Path | None = WorkdirOpt,
             config: Path | None = ConfigOpt, policy: Path | None = PolicyOpt,
             show_all: bool = typer.Option(False, "--all", help="Also those not yet due"),
             as_json: bool = JsonOption) -> None:
    """The node's vouchers on the wire (sent, indeterminate) and when paper opens for them."""
    from guoku.ops.fallback import overdue

    with clerk(workdir, config, user) as c:
        found = overdue(c.library, _policy(policy, workdir, config), c.library.clock(),
                        only_due=not show_all)
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
               user: str = UserOpt, workdir: Path | None = WorkdirOpt,
               config: Path | None = ConfigOpt, policy: Path | None = PolicyOpt) -> None:
    """应急: switch a voucher to paper (refused before its type's time has passed)."""
    from guoku.ops.fallback import switch

    with clerk(workdir, config, user) as c:
        row = switch(c.library, _policy(policy, workdir, config), user, voucher_id, reason)
    console.print(f"{row.ref}: {row.state} (print it with `guoku fallback print {row.id}`)")


@app.command("print")
def print_cmd(voucher_id: int, out: Path = typer.Option(..., "--out", help="PDF to write"),
              user: str = UserOpt, workdir: Path | None = WorkdirOpt,
              config: Path | None = ConfigOpt) -> None:
    """Print a paper voucher with the emergency mark (counted and audited)."""
    from guoku.ops.fallback import print_emergency

    with clerk(workdir, config, user) as c:
        printed = print_emergency(c.library, user, voucher_id, out)
    console.print(f"{printed.ref}: print no. {printed.print_no} -> {printed.path} "
                  f"(SM3 {printed.sm3[:16]}…)")


@app.command("register")
def register_cmd(
    sender: str = typer.Option(..., "--sender", help="Sending party code on the paper"),
    vt_code: str = typer.Option(..., "--type"), year: int = typer.Option(..., "--year"),
    voucher_no: str = typer.Option(..., "--no"), version: int = typer.Option(1, "--version"),
    amount: str = typer.Option(..., "--amount", help="Yuan, e.g. 1234.56"),
    vou_date: str = typer.Option(..., "--date", help="yyyymmdd"),
    user: str = UserOpt, workdir: Path | None = WorkdirOpt, config: Path | None = ConfigOpt,
) -> None:
    """登记: the receiver records a paper voucher it processed (receiving post)."""
    from guoku.domain.money import Amount
    from guoku.library.paper import PaperFacts

    with clerk(workdir, config, user) as c:
        record = c.library.register_paper(user, PaperFacts(
            sender, vt_code, year, voucher_no, version, Amount.parse(amount).fen, vou_date))
    console.print(f"paper {record.ref} from {record.sender_party}: {record.status}")


@app.command("registrations")
def registrations_cmd(user: str = UserOpt, workdir: Path | None = WorkdirOpt,
                      config: Path | None = ConfigOpt, as_json: bool = JsonOption) -> None:
    """The paper vouchers this node registered, and whether their electronic copy matched."""
    from guoku.library.paper import registrations

    with clerk(workdir, config, user) as c, c.library.engine.connect() as conn:
        records = registrations(conn)
    items = [{"id": r.id, "ref": r.ref, "sender": r.sender_party, "amount_fen": r.amount_fen,
              "date": r.vou_date, "status": r.status, "voucher_id": r.voucher_id,
              "registered_by": r.registered_by} for r in records]
    if as_json:
        print_json(items)
    else:
        table("paper registrations", ["id", "voucher", "sender", "fen", "date", "status"],
              [(i["id"], i["ref"], i["sender"], i["amount_fen"], i["date"], i["status"])
               for i in items])
