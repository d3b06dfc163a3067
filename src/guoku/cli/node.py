"""``guoku node run``: one voucher-library node as a long-running process on RabbitMQ.

The process relays its outbox to the broker, consumes its queue, drains its dead letters into
its database and sweeps time limits, until SIGTERM or SIGINT; then it finishes the message in
hand and exits 0. Secrets come from the environment (``GUOKU_SIGNING_PASSPHRASE``,
``GUOKU_USB_PIN``), never from the command line; the broker URL may come from
``$GUOKU_BROKER_URL`` so that its password stays out of ``ps``.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from guoku.cli._common import DbOption
from guoku.node.health import outbox_backlog
from guoku.node.runtime import DEFAULT_BATCH, NodeRuntime
from guoku.store.engine import resolve_url
from guoku.transport.amqp import (
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_PREFETCH,
    DEFAULT_PREFIX,
    AmqpTransport,
)

app = typer.Typer(help="Run a voucher-library node (节点) on the message broker.",
                  no_args_is_help=True)

BROKER_ENV = "GUOKU_BROKER_URL"

Broker = Annotated[str, typer.Option(
    "--broker", envvar=BROKER_ENV, help=f"AMQP URL, e.g. amqp://user:pass@host:5672/ "
    f"(or ${BROKER_ENV}).", show_default=False)]
Prefix = Annotated[str, typer.Option("--prefix", help="Name prefix of queues and exchange.")]


@app.callback()
def node() -> None:
    """A voucher-library node process (a group even while ``run`` is its only command)."""


def configure_logging(verbose: bool) -> None:
    """One line per event on stderr. pika's own connection-workflow tracebacks are muted: the
    transport logs each broker failure once, with what it does about it."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


@app.command("run")
def run_cmd(
    party: Annotated[str, typer.Option(
        "--party", help="Node name (finance, pboc, bank-icbc) or a party it serves (F530000).")],
    broker: Broker,
    home: Annotated[Path, typer.Option(
        "--home", help="Provisioned security directory (a demo workspace's WORKDIR/security).",
        exists=True, file_okay=False)],
    db: str | None = DbOption,
    health_port: Annotated[int | None, typer.Option(
        "--health-port", help="Serve GET /health on 127.0.0.1:PORT (0 = any free port).",
        min=0, max=65535)] = None,
    prefix: Prefix = DEFAULT_PREFIX,
    delivery_limit: Annotated[int, typer.Option(
        "--delivery-limit", min=1, max=100,
        help="Failed deliveries before a message is dead-lettered.")] = DEFAULT_DELIVERY_LIMIT,
    prefetch: Annotated[int, typer.Option(
        "--prefetch", min=1, max=1000,
        help="Deliveries the broker sends ahead of acks (more helps across a WAN).")
    ] = DEFAULT_PREFETCH,
    batch: Annotated[int, typer.Option("--batch", min=1, max=500,
                                       help="Envelopes the relay seals per pass.")] = DEFAULT_BATCH,
    signing: Annotated[str | None, typer.Option(
        "--signing", envvar="GUOKU_SIGNING_URL",
        help="Signing server URL (http://127.0.0.1:PORT); default: open the signing-server "
        "directory under --home in this process.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the node until SIGTERM/SIGINT; exit 0 after a clean shutdown."""
    from guoku.node.bootstrap import build_messenger

    configure_logging(verbose)
    messenger = build_messenger(home, party, resolve_url(db), signing)
    engine = messenger.library.engine
    transport = AmqpTransport(broker, prefix=prefix, delivery_limit=delivery_limit,
                              prefetch=prefetch)
    runtime = NodeRuntime(messenger, transport, batch=batch, health_port=health_port,
                          backlog=partial(outbox_backlog, engine))
    log = logging.getLogger("guoku.node")
    log.info("node %s: queue %s", messenger.node_name, transport.queue_name(messenger.node_name))
    try:
        code = runtime.run()
    finally:
        engine.dispose()
    raise typer.Exit(code)
