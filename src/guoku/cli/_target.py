"""Where an operator command acts: a demo workspace (``--workdir``), or a deployment brought up
with ``guoku deploy up`` (``--config deploy.toml``, the option ``guoku deploy`` finds it by; or
``$GUOKU_DEPLOY_CONFIG``). An explicit ``--workdir`` wins; with neither, ``demo-workspace``.

On a workspace every node is assembled in this process and envelopes are delivered here
(:attr:`Clerk.pump`). On a deployment only the clerk's node is opened, as ``deploy web`` opens
it (:meth:`guoku.deploy.deployment.Deployment.open_nodes`: the node's database, its signing
server over HTTP, the trust store), and the running node processes carry the envelopes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer

from guoku.cli.deploy import CONFIG_ENV
from guoku.domain.errors import NotFound
from guoku.library.service import VoucherLibrary
from guoku.store import repository as repo

if TYPE_CHECKING:
    from guoku.deploy.deployment import Deployment
    from guoku.deploy.local import LocalProvince

DEFAULT_WORKDIR: Final = Path("demo-workspace")

WorkdirOpt = typer.Option(
    None, "--workdir", file_okay=False,
    help=f"A demo workspace (default: {DEFAULT_WORKDIR} unless --config is given)")
ConfigOpt = typer.Option(
    None, "--config", envvar=CONFIG_ENV, dir_okay=False,
    help=f"A deployment's config (deploy.toml, or ${CONFIG_ENV}): act on its running nodes")


def deployment_config(workdir: Path | None, config: Path | None) -> Path | None:
    """The deployment config to act on, or None for a workspace (``--workdir`` wins)."""
    return config if workdir is None else None


def deployment(config: Path) -> Deployment:
    """The deployment ``config`` names (its directory as ``guoku deploy`` finds it)."""
    from guoku.deploy.config import load_config
    from guoku.deploy.deployment import Deployment

    return Deployment(load_config(config).directory)


@dataclass(frozen=True)
class Clerk:
    """The library of the node serving the clerk, and how to move what was sent."""

    library: VoucherLibrary
    pump: Callable[[], object]
    """Deliver in process (workspace); nothing on a deployment (its node processes relay)."""


@contextmanager
def clerk(workdir: Path | None, config: Path | None, user: str) -> Iterator[Clerk]:
    """The node that serves ``user``'s party, opened for one command and closed after it."""
    target = deployment_config(workdir, config)
    if target is not None:
        with _deployment_clerk(deployment(target), user) as found:
            yield found
        return
    from guoku.workspace import open_workspace

    path = workdir or DEFAULT_WORKDIR
    ws = open_workspace(path)
    try:
        for node in ws.nodes.values():
            with node.engine.connect() as conn:
                try:
                    repo.get_user(conn, user)
                except NotFound:
                    continue
            yield Clerk(node.library, ws.network.pump)
            return
        raise typer.BadParameter(f"no node of {path} knows user {user}")
    finally:
        ws.close()


@contextmanager
def _deployment_clerk(target: Deployment, user: str) -> Iterator[Clerk]:
    name = target.node_serving(user)
    if name is None:
        raise typer.BadParameter(f"no node of the deployment in {target.directory} knows "
                                 f"user {user}")
    nodes = target.open_nodes([name])
    try:
        yield Clerk(nodes[name].node.library, lambda: 0)
    finally:
        for node in nodes.values():
            node.close()


@contextmanager
def deployed_province(config: Path) -> Iterator[LocalProvince]:
    """Every node of the deployment in this process, as the flows drive a province
    (:meth:`Deployment.client`: ``library(party)``, ``settle()``), closed after."""
    province = deployment(config).client()
    try:
        yield province
    finally:
        for node in province.assembled.values():
            node.close()
