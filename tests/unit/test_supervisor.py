"""The supervisor on real child processes (small HTTP servers): it starts them, restarts one
killed with SIGKILL after its backoff, records pids and restarts, and stops them all."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from guoku.deploy.local import Child, free_port
from guoku.deploy.supervisor import Supervisor


def server(name: str, tmp: Path) -> Child:
    port = free_port()
    return Child(name, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                        "--directory", str(tmp)], dict(os.environ), tmp / f"{name}.log",
                 f"http://127.0.0.1:{port}/")


def wait(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_restart_after_kill_and_stop_all(tmp_path: Path) -> None:
    first, second = server("first", tmp_path), server("second", tmp_path)
    state = tmp_path / "state.json"
    supervisor = Supervisor([[first], [second]], state_file=state, stop_timeout=5)
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    try:
        wait(lambda: first.healthy() and second.healthy())
        victim = second.pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        wait(lambda: supervisor.watches["second"].restarts == 1 and second.healthy())
        assert second.pid != victim and first.starts == 1
        wait(lambda: json.loads(state.read_text())["processes"][1]["pid"] == second.pid)
        recorded = {p["name"]: p for p in json.loads(state.read_text())["processes"]}
        assert recorded["second"]["restarts"] == 1
        assert recorded["second"]["last_exit"] == -signal.SIGKILL
        assert recorded["first"]["restarts"] == 0 and recorded["first"]["alive"]
    finally:
        supervisor.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert not first.alive() and not second.alive()
    final = json.loads(state.read_text())
    assert final["supervisor"]["stopped"] and not any(p["alive"] for p in final["processes"])


def test_backoff_grows_for_a_process_that_keeps_dying(tmp_path: Path) -> None:
    dying = Child("dying", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ),
                  tmp_path / "dying.log", "http://127.0.0.1:9/")
    supervisor = Supervisor([[dying]], state_file=None, ready_timeout=0.1)
    watch = supervisor.watches["dying"]
    dying.start()
    assert dying.process is not None
    dying.process.wait()
    delays = []
    now = 0.0
    for _ in range(4):
        supervisor.tick(now)
        assert watch.restart_at is not None and watch.last_exit == 3
        delays.append(watch.restart_at - now)
        now = watch.restart_at
        supervisor.tick(now)  # due: started again
        assert dying.process is not None
        dying.process.wait()
    assert delays == [1.0, 2.0, 4.0, 8.0] and watch.restarts == 4
