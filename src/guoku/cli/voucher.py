"""``guoku voucher``: the voucher library service from the command line, on a demo workspace
(``--workdir``) or a deployment (``--config deploy.toml``, :mod:`guoku.cli._target`).

Every command acts as ``--user`` (the clerk) on the node that serves the clerk's party, so the
same permission, separation-of-duties and tenant rules apply as in the web and API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from guoku.cli._common import JsonOption, console, print_json, table
from guoku.cli._target import ConfigOpt, WorkdirOpt, clerk
from guoku.store.repository import VoucherQuery, VoucherRow

app = typer.Typer(help="Vouchers: list, show, history and every lifecycle step.",
                  no_args_is_help=True)

UserOpt = typer.Option(..., "--user", "-u", help="Act as this clerk")


def _row(row: VoucherRow) -> dict[str, Any]:
    return {"id": row.id, "ref": row.ref, "state": row.state, "amount": _amount(row.amount_fen),
            "sender": row.sender_party,
            "receiver": row.receiver_party, "direction": row.direction, "date": row.vou_date,
            "print_count": row.print_count, "return_reason": row.return_reason}


def _amount(fen: int) -> str:
    from guoku.domain.money import Amount

    return Amount(fen).wire()


def _show(row: VoucherRow, as_json: bool) -> None:
    if as_json:
        print_json(_row(row))
    else:
        console.print(f"#{row.id} {row.ref} [bold]{row.state}[/] {_amount(row.amount_fen)} "
                      f"{row.sender_party} → {row.receiver_party}")


@app.command("list")
def list_cmd(
    user: str = UserOpt, workdir: Path | None = WorkdirOpt, config: Path | None = ConfigOpt,
    vt_code: str | None = None, state: str | None = None, page: int = 1, page_size: int = 50,
    as_json: bool = JsonOption,
) -> None:
    """Vouchers the clerk may see (own tenant and party), paginated."""
    with clerk(workdir, config, user) as c:
        result = c.library.query(user, VoucherQuery(vt_code=vt_code, state=state), page,
                                 page_size)
    if as_json:
        print_json({"total": result.total, "page": page, "items": [_row(r) for r in result.items]})
        return
    table(f"vouchers ({result.total})", ["id", "voucher", "state", "amount", "from", "to"],
          [(r.id, r.ref, r.state, _amount(r.amount_fen), r.sender_party, r.receiver_party)
           for r in result.items])


@app.command("show")
def show_cmd(voucher_id: int, user: str = UserOpt, workdir: Path | None = WorkdirOpt,
             config: Path | None = ConfigOpt, xml: bool = typer.Option(False, "--xml"),
             as_json: bool = JsonOption) -> None:
    with clerk(workdir, config, user) as c:
        row = c.library.get(user, voucher_id)
        check = c.library.payee_check(user, voucher_id)
    if xml:
        typer.echo(row.xml.decode())
    elif as_json:
        print_json({**_row(row), "payee_check": check.to_dict() if check else None})
    else:
        _show(row, as_json)
        if check is not None:  # what the reviewer sees before sealing
            mark = "[green]通过[/]" if check.passed else "[red]未通过[/]"
            console.print(f"  收款人账户校验 {mark}: {check.summary()}")


@app.command("history")
def history_cmd(voucher_id: int, user: str = UserOpt, workdir: Path | None = WorkdirOpt,
                config: Path | None = ConfigOpt, as_json: bool = JsonOption) -> None:
    with clerk(workdir, config, user) as c:
        events = c.library.history(user, voucher_id)
    if as_json:
        print_json(events)
        return
    table("history", ["v", "event", "from", "to", "actor", "post", "reason", "at"],
          [(e["version"], e["event"], e["from"], e["to"], e["actor"], e["post"], e["reason"],
            e["at"]) for e in events])


@app.command("create")
def create_cmd(
    vt_code: str, receiver: str = typer.Option(..., help="Receiving party code"),
    header: Path = typer.Option(..., help="JSON file: {field: value} and optional 'details'"),
    user: str = UserOpt, workdir: Path | None = WorkdirOpt, config: Path | None = ConfigOpt,
    as_json: bool = JsonOption,
) -> None:
    """录入 a voucher from a JSON file of header fields (and a 'details' list)."""
    data = json.loads(header.read_text())
    details = data.pop("details", [])
    with clerk(workdir, config, user) as c:
        row = c.library.create(user, vt_code, data, details, receiver=receiver)
    _show(row, as_json)


def _step(name: str, doc: str) -> None:
    def command(voucher_id: int, user: str = UserOpt, workdir: Path | None = WorkdirOpt,
                config: Path | None = ConfigOpt, as_json: bool = JsonOption) -> None:
        with clerk(workdir, config, user) as c:
            row = getattr(c.library, name)(user, voucher_id)
            c.pump()
        _show(row, as_json)

    command.__doc__ = doc
    app.command(name)(command)


def _step_with_reason(name: str, method: str, doc: str) -> None:
    def command(voucher_id: int, reason: str = typer.Option(..., "--reason"),
                user: str = UserOpt, workdir: Path | None = WorkdirOpt,
                config: Path | None = ConfigOpt, as_json: bool = JsonOption) -> None:
        with clerk(workdir, config, user) as c:
            row = getattr(c.library, method)(user, voucher_id, reason)
            c.pump()
        _show(row, as_json)

    command.__doc__ = doc
    app.command(name)(command)


for _name, _doc in (("check", "审核 (review) a draft."), ("seal", "盖章: stamp every position."),
                    ("send", "发送 a sealed voucher (delivered at once in a workspace)."),
                    ("accept", "签收 a received voucher."),
                    ("restore", "恢复 a voided voucher to draft.")):
    _step(_name, _doc)
_step_with_reason("return", "return_", "退回 a received voucher with a reason.")
_step_with_reason("void", "void", "作废 a voucher not yet sent (or returned).")
_step_with_reason("uncheck", "uncheck", "撤销审核.")


@app.command("print")
def print_cmd(voucher_id: int, user: str = UserOpt, workdir: Path | None = WorkdirOpt,
              config: Path | None = ConfigOpt) -> None:
    """Count a controlled print (the PDF itself comes with the web issue)."""
    with clerk(workdir, config, user) as c:
        count = c.library.print_(user, voucher_id)
    console.print(f"print no. {count}" + (" (copy)" if count > 1 else " (original)"))
