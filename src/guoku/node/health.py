"""The node's health endpoint: ``GET /health`` on 127.0.0.1 (stdlib ``http.server``).

200 with the JSON document when the node is ``ok``; 503 with the same document when it is
``degraded`` or ``stopping``, so a load balancer or systemd watchdog needs no JSON parser.
Bound to the loopback interface only: it tells the world nothing, an operator asks locally.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from sqlalchemy import Engine, func, select

from guoku.store.tables import outbox

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
PATH: Final = "/health"
POLL: Final = 0.05
"""Seconds between the server's looks at its shutdown flag (how long close() may wait)."""

Snapshot = Callable[[], dict[str, Any]]


class HealthServer:
    """Serves ``snapshot()`` in a daemon thread; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(self, snapshot: Snapshot, *, port: int = 0, host: str = HOST) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(snapshot))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL,),
                                        name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("health endpoint on http://%s:%d%s", HOST, self.port, PATH)

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler(snapshot: Snapshot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self._reply(404, {"error": "not found", "path": PATH})
                return
            try:
                document = snapshot()
            except Exception as exc:
                log.exception("health snapshot")
                document = {"status": "degraded", "problems": [f"snapshot failed: {exc}"]}
            self._reply(200 if document.get("status") == "ok" else 503, document)

        def _reply(self, code: int, document: dict[str, Any]) -> None:
            body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health: " + format, *args)

    return Handler


def outbox_backlog(engine: Engine) -> int:
    """Unpublished outbox rows: the relay lag the health document reports."""
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        ).scalar_one()
    return int(count)
