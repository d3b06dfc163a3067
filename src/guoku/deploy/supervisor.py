"""Keeps a set of processes running: starts them stage by stage, restarts one that died (with
backoff), records their state, and stops them all on SIGTERM.

Stages start in order (signing servers, then node workers, then web apps), each waited for until
healthy (or ``ready_timeout``); they stop in the reverse order: SIGTERM to every process of a
stage at once, SIGKILL to whichever has not exited after ``stop_timeout``. A process that exits
— crash, kill -9, or a clean exit nobody asked for — is started again after a delay that doubles
from 1 s up to 60 s and resets once it has stayed up for ``STABLE_AFTER`` seconds.

The state file (JSON, replaced atomically) holds the supervisor's pid and, per process, its pid,
start time, restarts, last exit code and health URL: what ``guoku deploy status`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from guoku.deploy.local import Child, ProcessFailed
from guoku.transport.amqp import Backoff

log = logging.getLogger(__name__)

POLL_S: Final = 0.5
STABLE_AFTER: Final = 30.0
READY_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 30.0


@dataclass
class Watch:
    """The supervisor's record of one child."""

    child: Child
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=60.0))
    restarts: int = 0
    last_exit: int | None = None
    restart_at: float | None = None
    """``time.monotonic()`` when a dead child is due to start again."""
    up_since: float | None = None


class Supervisor:
    """Run with :meth:`run` (blocks until SIGTERM/SIGINT or :meth:`stop`)."""

    def __init__(self, stages: Sequence[Sequence[Child]], *, state_file: Path | None,
                 stop_timeout: float = STOP_TIMEOUT_S,
                 ready_timeout: float = READY_TIMEOUT_S) -> None:
        self.stages = [list(stage) for stage in stages]
        self.watches = {c.name: Watch(c) for stage in self.stages for c in stage}
        self.state_file = state_file
        self.stop_timeout = stop_timeout
        self.ready_timeout = ready_timeout
        self.started_at = time.time()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        previous = self._install_signals()
        try:
            self._start_all()
            while not self._stop.wait(POLL_S):
                self.tick(time.monotonic())
                self.write_state()
        finally:
            self._stop_all()
            self.write_state(stopped=True)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    # -- starting and watching ---------------------------------------------------------------

    def _start_all(self) -> None:
        for stage in self.stages:
            if self._stop.is_set():
                return
            for child in stage:
                self._start(self.watches[child.name])
            self.write_state()
            for child in stage:
                try:
                    child.wait_ready(self.ready_timeout)
                except ProcessFailed as exc:  # watched and restarted like any other failure
                    log.error("%s did not come up: %s", child.name, exc)

    def _start(self, watch: Watch) -> None:
        watch.child.start()
        watch.up_since = time.monotonic()
        watch.restart_at = None
        log.info("started %s", watch.child.name,
                 extra={"child": watch.child.name, "child_pid": watch.child.pid,
                        "restarts": watch.restarts})

    def tick(self, now: float) -> None:
        """One look at every child: note deaths, start what is due, forgive the stable."""
        for watch in self.watches.values():
            child = watch.child
            if watch.restart_at is None:
                code = child.reap()
                if code is not None:
                    delay = watch.backoff.next()
                    watch.last_exit, watch.up_since = code, None
                    watch.restart_at = now + delay
                    log.warning("%s exited with %s; restarting in %.0f s", child.name, code,
                                delay, extra={"child": child.name, "exit_code": code})
                elif watch.up_since is not None and now - watch.up_since > STABLE_AFTER:
                    watch.backoff.reset()
            if watch.restart_at is not None and now >= watch.restart_at:
                watch.restarts += 1
                self._start(watch)

    # -- stopping ------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        for stage in reversed(self.stages):
            for child in stage:
                if child.alive() and child.process is not None:
                    child.process.send_signal(signal.SIGTERM)
            for child in stage:
                code = child.stop(self.stop_timeout)
                log.info("stopped %s (exit %s)", child.name, code,
                         extra={"child": child.name, "exit_code": code})

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping every process", signum)
            self._stop.set()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    # -- state ----------------------------------------------------------------------------------

    def state(self, *, stopped: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        processes = []
        for watch in self.watches.values():
            child = watch.child
            alive = child.alive()
            processes.append({
                "name": child.name,
                "pid": child.pid if alive else None,
                "alive": alive,
                "started_at": child.started_at if alive else None,
                "restarts": watch.restarts,
                "last_exit": watch.last_exit,
                "restart_in": (None if watch.restart_at is None
                               else round(max(0.0, watch.restart_at - now), 1)),
                "health": child.health,
                "log": str(child.log),
            })
        return {"supervisor": {"pid": os.getpid(), "started_at": self.started_at,
                               "stopped": stopped}, "processes": processes}

    def write_state(self, *, stopped: bool = False) -> None:
        if self.state_file is None:
            return
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state(stopped=stopped), indent=1))
        os.replace(temporary, self.state_file)
