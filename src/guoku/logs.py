"""Logging for long-running processes: text lines for a terminal, JSON lines for a deployment.

A JSON line holds ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``process`` (the process
name a supervisor gave it, ``$GUOKU_PROCESS_NAME``), ``pid``, ``msg`` and every ``extra`` field
the call passed — the messenger adds ``envelope_id``, ``voucher_nos``, ``message_ids``,
``admdiv`` — so ``jq 'select(.voucher_nos[]? == "PD0001")'`` follows one voucher through the
logs of every node.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any, Final, Literal

LogFormat = Literal["text", "json"]
PROCESS_ENV: Final = "GUOKU_PROCESS_NAME"
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra`` fields become keys."""

    def __init__(self) -> None:
        super().__init__()
        self._process = os.environ.get(PROCESS_ENV)

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        if self._process:
            document["process"] = self._process
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure(fmt: LogFormat = "text", verbose: bool = False) -> None:
    """Root logging on stderr in ``fmt``. pika's own connection-workflow tracebacks are muted:
    the transport logs each broker failure once, with what it does about it."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("pika").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
