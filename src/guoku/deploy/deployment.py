"""``guoku deploy``: a province brought up, watched and brought down on this machine.

``up`` (in the operator's shell, foreground):

1. the key ceremony (:func:`guoku.security.provision.provision`) into ``<dir>/security`` the
   first time — CA, institution keys and seals in each node's signing-server directory, USB keys
   of the sealing clerks, the trust directory;
2. a PostgreSQL schema (or database) per node, migrated and seeded; the nodes' queues declared;
3. the plan written to ``<dir>/deployment.json``: every process's command line, log file and
   health URL (:class:`guoku.deploy.local.Launch` builds them, as it does for the tests);
4. the supervisor started as a daemon (``guoku deploy supervise``, its own session, pid in
   ``<dir>/supervisor.pid``), which starts the processes and keeps them running
   (:mod:`guoku.deploy.supervisor`); ``up`` returns once every process answers healthy.

``status`` reads ``<dir>/state.json`` and asks each health endpoint. ``down`` sends the
supervisor SIGTERM (it stops every process: SIGTERM, then SIGKILL after the timeout) and makes
sure nothing is left; ``down --purge`` also drops the schemas and queues (never the keys).

Secrets are never written here: the signing passphrase and USB PIN come from the environment
of ``up`` (``GUOKU_SIGNING_PASSPHRASE``, ``GUOKU_USB_PIN``; the demo's when unset, with a
warning) and pass to the supervisor and its processes by inheritance only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from guoku.deploy.config import DeployConfig
from guoku.deploy.local import Child, Launch, LocalProvince, free_port
from guoku.deploy.supervisor import Supervisor
from guoku.domain.errors import GuokuError, NotFound
from guoku.logs import configure
from guoku.node.bootstrap import (
    DEMO_SECRETS,
    AssembledNode,
    assemble,
    prepare_database,
    secrets_from_env,
)
from guoku.province import ProvinceSpec
from guoku.province_config import load_province_file
from guoku.security.certs import TrustStore
from guoku.security.provision import Secrets, provision
from guoku.store.repository import get_user

PLAN: Final = "deployment.json"
STATE: Final = "state.json"
PID: Final = "supervisor.pid"
UP_TIMEOUT_S: Final = 240.0
SPAWN_GRACE_S: Final = 15.0
"""How long the supervisor may take to write its pid file."""


class DeployError(GuokuError):
    code = "DEPLOY"


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int | None
    uptime_s: float | None
    restarts: int
    last_exit: int | None
    health_url: str
    health: str
    """ok, degraded, stopping, down (nothing answers) or restarting."""


class Deployment:
    """The deployment in ``directory`` (see the module)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.security = self.directory / "security"
        self.logs = self.directory / "logs"
        self.plan_file = self.directory / PLAN
        self.state_file = self.directory / STATE
        self.pid_file = self.directory / PID

    # --- up ------------------------------------------------------------------------------------

    def up(self, config: DeployConfig, *, timeout: float = UP_TIMEOUT_S,
           say: Any = print) -> list[ProcessStatus]:
        if self.supervisor_pid() is not None:
            raise DeployError(f"already up (supervisor pid {self.supervisor_pid()}); "
                              "`guoku deploy down` first")
        self.logs.mkdir(parents=True, exist_ok=True)
        secrets = secrets_from_env()
        if secrets.passphrase == DEMO_SECRETS.passphrase:
            say("warning: GUOKU_SIGNING_PASSPHRASE is not set: using the demo passphrase")
        if not (self.security / "ca").exists():
            say(f"key ceremony into {self.security} ...")
            provision(self.security, config.province, secrets, datetime.now(UTC))
        urls = self._databases(config)
        for spec in config.province.nodes:
            prepare_database(urls[spec.name], config.province, spec)
        launch = self._launch(config, urls, secrets)
        launch.declare_queues()
        self._write_plan(config, launch, urls)
        say(f"starting the supervisor of {config.name} in {self.directory}")
        self._spawn_supervisor(config, secrets)
        return self.wait_healthy(timeout)

    def _launch(self, config: DeployConfig, urls: dict[str, str], secrets: Secrets) -> Launch:
        return Launch(self.security, config.province, urls, config.broker, config.prefix,
                      self.logs, secrets, province_file=config.path,
                      partitions=config.partitions,
                      workers={n.name: config.workers_of(n) for n in config.province.nodes},
                      log_format=config.log_format, port=_ports(config.base_port).__next__)

    def _databases(self, config: DeployConfig) -> dict[str, str]:
        """Create each node's schema (or database) when missing; their URLs by node."""
        admin = create_engine(config.database, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as conn:
                for spec in config.province.nodes:
                    name = config.db_name(spec)
                    if config.isolation == "schema":
                        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
                    elif conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": name}).first() is None:
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return {spec.name: config.db_url(spec) for spec in config.province.nodes}

    def _write_plan(self, config: DeployConfig, launch: Launch, urls: dict[str, str]) -> None:
        signing = [launch.signing_child(spec) for spec in config.province.nodes]
        nodes = [child for spec, s in zip(config.province.nodes, signing, strict=True)
                 for child in launch.node_children(spec, s.health.removesuffix("/health"))]
        stages = [signing, nodes]
        if config.web and web_available():
            port = launch.port()
            stages.append([Child(
                "web", [sys.executable, "-m", "guoku", "deploy", "web", "--dir",
                        str(self.directory), "--host", config.web_host, "--port", str(port)],
                {}, self.logs / "web.log", f"http://{config.web_host}:{port}/health")])
        plan = {
            "name": config.name, "config": str(config.path), "prefix": config.prefix,
            "partitions": config.partitions, "broker": config.broker,
            "isolation": config.isolation, "database": config.database,
            "stop_timeout": config.stop_timeout, "databases": urls,
            "signing": {spec.name: s.health.removesuffix("/health")
                        for spec, s in zip(config.province.nodes, signing, strict=True)},
            "stages": [[{"name": c.name, "argv": c.argv, "log": str(c.log), "health": c.health}
                        for c in stage] for stage in stages],
        }
        self.plan_file.write_text(json.dumps(plan, indent=1, ensure_ascii=False))

    def _spawn_supervisor(self, config: DeployConfig, secrets: Secrets) -> None:
        env = {**os.environ, "GUOKU_SIGNING_PASSPHRASE": secrets.passphrase,
               "GUOKU_USB_PIN": secrets.user_pin, "GUOKU_BROKER_URL": config.broker,
               "GUOKU_LOG_FORMAT": config.log_format}
        env.pop("GUOKU_DB_URL", None)
        env.pop("GUOKU_SIGNING_URL", None)
        with (self.logs / "supervisor.log").open("ab") as out:
            subprocess.Popen([sys.executable, "-m", "guoku", "deploy", "supervise", "--dir",
                              str(self.directory)], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                             cwd=self.directory)

    def wait_healthy(self, timeout: float) -> list[ProcessStatus]:
        start = time.monotonic()
        seen: list[ProcessStatus] = []
        while time.monotonic() < start + timeout:
            time.sleep(0.5)
            if self.supervisor_pid() is None and time.monotonic() > start + SPAWN_GRACE_S:
                raise DeployError(f"the supervisor is not running: {self._tail('supervisor')}")
            seen = self.status()
            if seen and all(p.health == "ok" for p in seen):
                return seen
        bad = ", ".join(f"{p.name}={p.health}" for p in seen if p.health != "ok")
        raise DeployError(f"not healthy after {timeout:.0f} s: {bad or 'no state yet'}; "
                          f"logs in {self.logs}")

    # --- the supervisor daemon -------------------------------------------------------------

    def supervise(self) -> int:
        """Run the plan's processes until SIGTERM (``guoku deploy supervise``)."""
        plan = self.plan()
        configure("json")
        try:
            fd = os.open(self.pid_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if self.supervisor_pid() is not None:
                raise DeployError("another supervisor runs this deployment") from None
            self.pid_file.unlink()
            fd = os.open(self.pid_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        env = dict(os.environ)
        stages = [[Child(p["name"], p["argv"], env, Path(p["log"]), p["health"]) for p in stage]
                  for stage in plan["stages"]]
        try:
            return Supervisor(stages, state_file=self.state_file,
                              stop_timeout=float(plan["stop_timeout"])).run()
        finally:
            self.pid_file.unlink(missing_ok=True)

    # --- status --------------------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        if not self.plan_file.exists():
            raise DeployError(f"no deployment in {self.directory} (`guoku deploy up` first)")
        plan: dict[str, Any] = json.loads(self.plan_file.read_text())
        return plan

    def supervisor_pid(self) -> int | None:
        """The running supervisor's pid, or None (no pid file, or a stale one)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _running(pid, "guoku") else None

    def state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {"processes": []}
        return state

    def status(self) -> list[ProcessStatus]:
        now = time.time()
        rows = []
        for p in self.state().get("processes", []):
            if p["alive"]:
                health = _health(p["health"])
            else:
                health = "restarting" if p.get("restart_in") is not None else "down"
            started = p.get("started_at")
            rows.append(ProcessStatus(p["name"], p["pid"], None if started is None
                                      else round(now - started, 1), p["restarts"],
                                      p["last_exit"], p["health"], health))
        return rows

    def province(self) -> ProvinceSpec:
        """The province the deployment runs (the ``[province]`` of the config it came up with)."""
        return load_province_file(Path(self.plan()["config"]))

    def open_nodes(self, names: Collection[str] | None = None) -> dict[str, AssembledNode]:
        """The deployment's nodes (``names``, or every one) assembled in this process as their
        node processes assemble them: the node's database, sealing through the node's signing
        server over HTTP, the deployment's trust store, the secrets from the environment.
        What ``deploy web``, :meth:`client` and the operator commands (``--config``) act on;
        the caller closes each."""
        plan = self.plan()
        province = self.province()
        unknown = set(names or ()) - {spec.name for spec in province.nodes}
        if unknown:
            raise DeployError(f"no node {', '.join(sorted(unknown))} in {self.directory}")
        trust = TrustStore.from_directory(self.security / "trust")
        secrets = secrets_from_env()
        opened: dict[str, AssembledNode] = {}
        try:
            for spec in province.nodes:
                if names is None or spec.name in names:
                    opened[spec.name] = assemble(
                        self.security, spec, plan["databases"][spec.name], secrets=secrets,
                        province=province, trust=trust, signing_url=plan["signing"][spec.name])
        except BaseException:
            for node in opened.values():
                node.close()
            raise
        return opened

    def node_serving(self, username: str) -> str | None:
        """The node whose database knows ``username`` (clerk or administrator), or None."""
        for name, url in self.plan()["databases"].items():
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    get_user(conn, username)
                    return str(name)
            except NotFound:
                continue
            finally:
                engine.dispose()
        return None

    def client(self) -> LocalProvince:
        """The running deployment as the flows see it: every node's library in this process
        (:meth:`open_nodes`), :meth:`LocalProvince.settle`."""
        plan = self.plan()
        province = LocalProvince(self.security, self.province(), plan["databases"],
                                 plan["broker"], plan["prefix"], self.logs, secrets_from_env(),
                                 partitions=plan["partitions"])
        province.assembled.update(self.open_nodes())
        return province

    # --- down ---------------------------------------------------------------------------------

    def down(self, *, timeout: float | None = None, purge: bool = False) -> list[str]:
        """Stop the supervisor and every process; returns what had to be killed."""
        killed: list[str] = []
        plan = self.plan()
        stages = len(plan["stages"])
        wait = timeout if timeout is not None else float(plan["stop_timeout"]) * stages + 15
        pid = self.supervisor_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + wait
            while _running(pid, "guoku") and time.monotonic() < deadline:
                time.sleep(0.2)
            if _running(pid, "guoku"):
                os.kill(pid, signal.SIGKILL)
                killed.append(f"supervisor {pid}")
        for p in self.state().get("processes", []):
            child = p.get("pid")
            if child and _running(child, "guoku"):
                os.killpg(child, signal.SIGKILL)  # each process leads its own session
                killed.append(f"{p['name']} {child}")
        self.pid_file.unlink(missing_ok=True)
        if purge:
            self.purge(plan)
        return killed

    def purge(self, plan: dict[str, Any]) -> None:
        """Drop the nodes' schemas (or databases) and queues; the keys stay."""
        province = load_province_file(Path(plan["config"]))
        Launch(self.security, province, plan["databases"], plan["broker"],
               plan["prefix"], self.logs, partitions=plan["partitions"]).delete_queues()
        admin = create_engine(plan["database"], isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as conn:
                for url in plan["databases"].values():
                    name = _db_name(url, plan["isolation"])
                    if plan["isolation"] == "schema":
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
                    else:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()

    def _tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join((self.logs / f"{name}.log").read_text(errors="replace")
                             .splitlines()[-lines:])
        except OSError:
            return "(no log)"


def web_available() -> bool:
    """Whether the web applications are built (``guoku.web.app.create_app``)."""
    return importlib.util.find_spec("guoku.web.app") is not None


def _db_name(url: str, isolation: str) -> str:
    if isolation == "database":
        return str(make_url(url).database)
    return url.rsplit("search_path%3D", 1)[1]


def _ports(base: int) -> Iterator[int]:
    """``base``, ``base + 1``, ...; any free ports when ``base`` is 0."""
    port = base
    while True:
        yield free_port() if base == 0 else port
        port += 1


def _running(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line mentions ``marker`` (a pid file or state
    entry may outlive its process, and the pid be reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie is dead, whoever reaps it
    except (OSError, IndexError):
        return False
    return marker.encode() in cmdline


def _health(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return _status_of(answer.read(), "ok")
    except urllib.error.HTTPError as exc:
        return _status_of(exc.read(), "degraded")
    except OSError:
        return "down"


def _status_of(body: bytes, default: str) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return default
    status = document.get("status") if isinstance(document, dict) else None
    return str(status) if status else default
