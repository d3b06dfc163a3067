"""``guoku node run``: one voucher-library node as a long-running process on RabbitMQ.

The process relays its outbox to the broker, consumes its queue, drains its dead letters into
its database and sweeps time limits, until SIGTERM or SIGINT; then it finishes the message in
hand and exits 0. Secrets come from the environment (``GUOKU_SIGNING_PASSPHRASE``,
``GUOKU_USB_PIN``), never from the command line; the broker URL may come from
``$GUOKU_BROKER_URL`` so that its password stays out of ``ps``.

Scale-out: with ``--partitions P`` the node's work is split into P partitions (the same P on
every node of the deployment) that any number of worker processes over the same database share
(:mod:`guoku.node.workers`); ``--workers N`` starts and supervises N such workers here.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from guoku.cli._common import DbOption
from guoku.logs import LogFormat, configure
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


def configure_logging(verbose: bool, fmt: LogFormat = "text") -> None:
    """One line per event on stderr (text, or JSON for a deployment: :mod:`guoku.logs`)."""
    configure(fmt, verbose)


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
    province_file: Annotated[Path | None, typer.Option(
        "--province", exists=True, dir_okay=False,
        help="TOML with a [province] table (a deployment config); default: the demo province.")
    ] = None,
    partitions: Annotated[int | None, typer.Option(
        "--partitions", min=1, max=256,
        help="Split the node's queues and outbox into this many partitions by division, shared "
        "by its workers (the same number on every node of the deployment); default: one queue, "
        "one worker.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64,
        help="Start and supervise this many worker processes (needs --partitions); health "
        "ports --health-port, +1, +2, ...")] = 1,
    log_format: Annotated[str, typer.Option(
        "--log-format", envvar="GUOKU_LOG_FORMAT", help="text or json (one object a line).")
    ] = "text",
) -> None:
    """Run the node until SIGTERM/SIGINT; exit 0 after a clean shutdown."""
    from guoku.node.bootstrap import build_messenger, prepare_database, resolve_node
    from guoku.province import demo_province
    from guoku.province_config import load_province_file

    if log_format not in ("text", "json"):
        raise typer.BadParameter("--log-format is text or json")
    configure_logging(verbose, "json" if log_format == "json" else "text")
    province = load_province_file(province_file) if province_file else demo_province()
    url = resolve_url(db)
    if workers > 1:
        if partitions is None:
            raise typer.BadParameter("--workers needs --partitions")
        prepare_database(url, province, resolve_node(province, party))
        raise typer.Exit(_supervise_workers(
            workers, party=party, db=url, home=home, prefix=prefix, signing=signing,
            province_file=province_file, partitions=partitions, health_port=health_port,
            log_format=log_format,
            extra=("--delivery-limit", str(delivery_limit), "--prefetch", str(prefetch),
                   "--batch", str(batch), *(("--verbose",) if verbose else ()))))
    if partitions is None:
        messenger = build_messenger(home, party, url, signing, province)
    else:  # workers starting together take turns through the migrations
        from guoku.node.partitions import startup_lock

        with startup_lock(url, prefix, resolve_node(province, party).name):
            messenger = build_messenger(home, party, url, signing, province)
    engine = messenger.library.engine
    transport = AmqpTransport(broker, prefix=prefix, delivery_limit=delivery_limit,
                              prefetch=prefetch)
    options: dict[str, Any] = {"batch": batch, "health_port": health_port,
                               "backlog": partial(outbox_backlog, engine)}
    runtime: NodeRuntime
    if partitions is None:
        runtime = NodeRuntime(messenger, transport, **options)
        queues = transport.queue_name(messenger.node_name)
    else:
        from guoku.node.partitions import leases_for
        from guoku.node.workers import PartitionedRuntime

        leases = leases_for(engine, prefix, messenger.node_name, partitions)
        runtime = PartitionedRuntime(messenger, transport, leases, **options)
        queues = f"{transport.queue_name(messenger.node_name)}.0..{partitions - 1}"
    log = logging.getLogger("guoku.node")
    log.info("node %s: queue %s", messenger.node_name, queues)
    try:
        code = runtime.run()
    finally:
        engine.dispose()
    raise typer.Exit(code)


def _supervise_workers(count: int, *, party: str, db: str, home: Path, prefix: str,
                       signing: str | None, province_file: Path | None, partitions: int,
                       health_port: int | None, log_format: str,
                       extra: tuple[str, ...]) -> int:
    """N workers of this node as child processes, restarted when they die, stopped on
    SIGTERM; their output goes to this process's stderr."""
    import os

    from guoku.deploy.local import Child, node_argv, worker_name
    from guoku.deploy.supervisor import Supervisor

    children = []
    for index in range(count):
        port = 0 if not health_port else health_port + index
        argv = node_argv(home, party, db, prefix, health_port=port, signing_url=signing,
                         province_file=province_file, partitions=partitions,
                         log_format=log_format, extra=extra)
        children.append(Child(worker_name(party, index), argv, dict(os.environ),
                              Path("/dev/stderr"), f"http://127.0.0.1:{port}/health"))
    return Supervisor([children], state_file=None).run()
