"""The web applications (counter, monitor, console, API: ``guoku.web.app.create_app``) as one
process of a deployment, over the deployment's node databases.

Every node's library is assembled here as the node processes assemble theirs — same database,
same signing-server process over HTTP (:meth:`Deployment.open_nodes`, as the operator commands
open a deployment's node) — so a voucher sealed at the counter is stamped by the
node's signing server and relayed by the node's workers (no in-process pump). ``GET /health``
answers 200 ``{"status": "ok"}`` when every node database answers.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from sqlalchemy import text

from guoku.deploy.deployment import Deployment
from guoku.logs import configure

log = logging.getLogger(__name__)


def serve(deployment: Deployment, host: str, port: int, log_format: str) -> None:
    import uvicorn
    from fastapi.responses import JSONResponse

    from guoku.web.context import WebContext

    configure("json" if log_format == "json" else "text")
    nodes = {name: assembled.node for name, assembled in deployment.open_nodes().items()}
    context = WebContext(deployment.province(), nodes)
    app: Any = importlib.import_module("guoku.web.app").create_app(context)

    def health() -> JSONResponse:
        problems = []
        for name, node in nodes.items():
            try:
                with node.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:
                problems.append(f"{name}: {type(exc).__name__}")
        return JSONResponse({"status": "degraded" if problems else "ok", "problems": problems},
                            status_code=503 if problems else 200)

    if not any(getattr(route, "path", None) == "/health" for route in app.routes):
        app.add_api_route("/health", health, methods=["GET"])
    log.info("web applications on http://%s:%d", host, port)
    uvicorn.run(app, host=host, port=port, log_config=None)
