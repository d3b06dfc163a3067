"""``guoku mq``: the broker side of a node, for an operator.

``declare NODE...`` creates a node's queues before it first runs (a sender's messages wait in
its outbox until the receiver's queue exists). ``dead-letters list|show|replay``: what the node
gave up on.

A message lands in ``dead_letters`` after the broker dead-lettered it (too many failed
deliveries) and the node drained it; nothing is dropped. ``replay`` publishes the stored body to
the queue it died in (a fresh delivery count) and stamps ``replayed_at``; both the replay and
the stamp are audited. Replaying twice needs ``--force`` (harmless: the inbox deduplicates, but
an operator should know).
"""

from __future__ import annotations

import base64
import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, select

from guoku.cli._common import DbOption, JsonOption, console, print_json, table
from guoku.cli.node import Broker, Prefix
from guoku.domain.errors import GuokuError
from guoku.node.partitions import partition_of
from guoku.security.crypto import sm3_hex
from guoku.store.engine import make_engine, resolve_url
from guoku.store.tables import dead_letters
from guoku.transport import dead_letters as dead_letters_store
from guoku.transport.amqp import DEFAULT_DELIVERY_LIMIT, DEFAULT_PREFIX, AmqpTransport
from guoku.transport.envelope import read_head

app = typer.Typer(help="Message middleware (消息中间件) administration.", no_args_is_help=True)
dead_app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)
app.add_typer(dead_app, name="dead-letters")

LetterId = Annotated[int, typer.Argument(help="Dead-letter id (from `list`).", min=1)]
Partitions = Annotated[int | None, typer.Option(
    "--partitions", min=1, max=256,
    help="The deployment's partitions (`guoku node run --partitions`); default: one queue.")]


@app.command("declare")
def declare_cmd(
    nodes: Annotated[list[str], typer.Argument(help="Node names, e.g. finance pboc bank-icbc.")],
    broker: Broker,
    prefix: Prefix = DEFAULT_PREFIX,
    delivery_limit: Annotated[int, typer.Option(
        "--delivery-limit", min=1, max=100,
        help="Failed deliveries before a message is dead-lettered.")] = DEFAULT_DELIVERY_LIMIT,
    partitions: Partitions = None,
) -> None:
    """Declare each node's queue, dead-letter queue and the dead-letter exchange (idempotent)."""
    transport = AmqpTransport(broker, prefix=prefix, delivery_limit=delivery_limit)
    try:
        for name in nodes:
            transport.declare(name, partitions)
            queues = transport.queue_name(name)
            if partitions is not None:
                queues += f".0..{partitions - 1}"
            console.print(f"{queues}: declared", highlight=False)
    finally:
        transport.close()


def _engine(db: str | None) -> Engine:
    return make_engine(resolve_url(db))


def _summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "envelope_id": row.envelope_id, "queue": row.queue,
            "reason": row.reason, "attempts": row.attempts, "dead_at": row.dead_at,
            "replayed_at": row.replayed_at, "size": len(row.body), "sm3": sm3_hex(row.body)}


def _head(body: bytes) -> dict[str, str] | None:
    """The envelope head as claimed (unauthenticated), or None when it is not an envelope."""
    try:
        return read_head(body).fields()
    except GuokuError:
        return None


@dead_app.command("list")
def list_cmd(
    db: str | None = DbOption,
    pending: Annotated[bool, typer.Option("--pending", help="Only those not replayed.")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Every dead letter of the node, oldest first."""
    query = select(dead_letters).order_by(dead_letters.c.id)
    if pending:
        query = query.where(dead_letters.c.replayed_at.is_(None))
    with _engine(db).connect() as conn:
        rows = [_summary(r) for r in conn.execute(query)]
    if as_json:
        print_json({"dead_letters": rows})
        return
    columns = ["id", "envelope_id", "queue", "attempts", "reason", "dead_at", "replayed_at", "size"]
    table(f"dead letters ({len(rows)})", columns, [[r[c] for c in columns] for r in rows])


@dead_app.command("show")
def show_cmd(
    letter_id: LetterId,
    db: str | None = DbOption,
    out: Annotated[Path | None, typer.Option("--out", help="Write the raw body to this file.",
                                             dir_okay=False)] = None,
    as_json: bool = JsonOption,
) -> None:
    """One dead letter: why it died, the head it claims, its digest; ``--out`` saves the body."""
    row = dead_letters_store.letter(_engine(db), letter_id)
    document = {**_summary(row), "head": _head(row.body)}
    if out is not None:
        out.write_bytes(row.body)
    if as_json:
        print_json({**document, "body_base64": base64.b64encode(row.body).decode("ascii")})
        return
    for key, value in document.items():
        if key != "head":
            console.print(f"{key:12} {'' if value is None else value}", highlight=False)
    head = document["head"]
    console.print("head         " + ("(not an envelope)" if head is None else
                                     "(claimed, not authenticated)"), highlight=False)
    for key, value in (head or {}).items():
        console.print(f"  {key:12} {value}", highlight=False)
    if out is not None:
        console.print(f"body written to {out}", highlight=False)


@dead_app.command("replay")
def replay_cmd(
    letter_id: LetterId,
    broker: Broker,
    db: str | None = DbOption,
    prefix: Prefix = DEFAULT_PREFIX,
    force: Annotated[bool, typer.Option("--force", help="Replay one already replayed.")] = False,
    operator: Annotated[str | None, typer.Option(
        "--operator", help="Who replays, for the audit log (default: the login name).")] = None,
    as_json: bool = JsonOption,
    partitions: Partitions = None,
) -> None:
    """Publish the body to its queue again (confirmed by the broker), then stamp replayed_at;
    with ``--partitions``, to the partition of the envelope's division."""
    engine = _engine(db)

    def publish(queue: str, body: bytes, envelope_id: str | None) -> None:
        transport = AmqpTransport(broker, prefix=prefix)
        try:
            partition = (None if partitions is None
                         else partition_of(read_head(body).admdiv, partitions))
            transport.replay(transport.topology.node_of_queue(queue), body, envelope_id,
                             partition=partition)
        finally:
            transport.close()

    at = dead_letters_store.replay(engine, letter_id, publish, operator or getpass.getuser(),
                                   force=force)
    row = dead_letters_store.letter(engine, letter_id)
    if as_json:
        print_json({"id": letter_id, "queue": row.queue, "replayed_at": at})
    else:
        console.print(f"dead letter {letter_id} replayed to {row.queue} at {at}",
                      highlight=False)
