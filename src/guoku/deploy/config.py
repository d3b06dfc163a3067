"""The deployment config (``deploy.toml``): where a province runs and how many of each process.

``[deployment]`` (all optional but ``database`` and ``broker``)::

    name = "yunnan"
    directory = "../var/yunnan"     # keys, pid file, state, logs; relative to the config file
    database = "postgresql+psycopg://postgres@127.0.0.1:5432/guoku"
    isolation = "schema"            # a schema per node in that database, or "database"
    broker = "amqp://guest:guest@127.0.0.1:5672/"
    prefix = "gk-yunnan"            # queues, exchange, schema / database names
    partitions = 4                  # queues per node (scale-out); omit for one queue per node
    base_port = 18100               # signing servers, node workers, web apps from here up
    stop_timeout = 30               # seconds between SIGTERM and SIGKILL
    log_format = "json"
    [deployment.workers]            # worker processes per node (default 1)
    finance = 2
    [deployment.web]
    enabled = true
    host = "127.0.0.1"

and ``[province]`` (:mod:`guoku.province_config`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import make_url

from guoku.domain.errors import ValidationError
from guoku.province import NodeSpec, ProvinceSpec
from guoku.province_config import province_from_mapping

ISOLATIONS: Final = ("schema", "database")
_PREFIX: Final = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class DeployConfigError(ValidationError):
    code = "DEPLOY_CONFIG"


@dataclass(frozen=True)
class DeployConfig:
    path: Path
    name: str
    directory: Path
    database: str
    isolation: str
    broker: str
    prefix: str
    province: ProvinceSpec
    partitions: int | None = None
    base_port: int = 18100
    stop_timeout: float = 30.0
    log_format: str = "json"
    workers: Mapping[str, int] = field(default_factory=dict)
    web: bool = True
    web_host: str = "127.0.0.1"

    def db_name(self, node: NodeSpec) -> str:
        """The node's schema or database: ``<prefix>_<node>`` with ``-`` as ``_``."""
        return f"{self.prefix}_{node.name}".replace("-", "_")

    def db_url(self, node: NodeSpec) -> str:
        base = make_url(self.database)
        if self.isolation == "database":
            return base.set(database=self.db_name(node)).render_as_string(hide_password=False)
        url = base.render_as_string(hide_password=False)
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}options=-csearch_path%3D{self.db_name(node)}"

    def workers_of(self, node: NodeSpec) -> int:
        return self.workers.get(node.name, 1)


def load_config(path: Path) -> DeployConfig:
    path = path.resolve()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeployConfigError(f"cannot read {path}: {exc}") from exc
    deployment = data.get("deployment")
    if not isinstance(deployment, Mapping):
        raise DeployConfigError(f"{path}: [deployment] is missing")
    province_table = data.get("province")
    if not isinstance(province_table, Mapping):
        raise DeployConfigError(f"{path}: [province] is missing")
    province = province_from_mapping(province_table)
    name = str(deployment.get("name", path.stem))
    prefix = str(deployment.get("prefix", f"gk-{name}"))
    if not _PREFIX.match(prefix):
        raise DeployConfigError(f"prefix {prefix!r}: lower-case letters, digits and '-', "
                                "at most 31 characters, starting with a letter")
    isolation = str(deployment.get("isolation", "schema"))
    if isolation not in ISOLATIONS:
        raise DeployConfigError(f"isolation is one of {', '.join(ISOLATIONS)}")
    workers = _workers(deployment.get("workers", {}), province)
    partitions = deployment.get("partitions")
    if partitions is not None and not (isinstance(partitions, int) and 1 <= partitions <= 256):
        raise DeployConfigError("partitions is a whole number from 1 to 256")
    if partitions is None and any(n > 1 for n in workers.values()):
        raise DeployConfigError("several workers for a node need partitions")
    web = deployment.get("web", {})
    log_format = str(deployment.get("log_format", "json"))
    if log_format not in ("json", "text"):
        raise DeployConfigError("log_format is json or text")
    return DeployConfig(
        path=path, name=name,
        directory=(path.parent / str(deployment.get("directory", f"var/{name}"))).resolve(),
        database=_required(deployment, "database"), isolation=isolation,
        broker=_required(deployment, "broker"), prefix=prefix, province=province,
        partitions=partitions, base_port=int(deployment.get("base_port", 18100)),
        stop_timeout=float(deployment.get("stop_timeout", 30)), log_format=log_format,
        workers=workers, web=bool(web.get("enabled", True)),
        web_host=str(web.get("host", "127.0.0.1")),
    )


def _required(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise DeployConfigError(f"[deployment] {key} is required")
    return value


def _workers(table: Any, province: ProvinceSpec) -> dict[str, int]:
    if not isinstance(table, Mapping):
        raise DeployConfigError("[deployment.workers] maps node names to counts")
    nodes = {n.name for n in province.nodes}
    workers: dict[str, int] = {}
    for node, count in table.items():
        if node not in nodes:
            raise DeployConfigError(f"[deployment.workers]: no node {node!r} "
                                    f"(nodes: {', '.join(sorted(nodes))})")
        if not isinstance(count, int) or not 1 <= count <= 64:
            raise DeployConfigError(f"[deployment.workers] {node}: 1 to 64")
        workers[node] = count
    return workers
