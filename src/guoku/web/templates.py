"""The Jinja2 environment every HTML page renders with (zh-CN, autoescaped).

Templates get ``csrf_token(request)`` for their forms and ``yuan(fen)`` to show amounts; pages
other routers add (monitor, console) extend ``base.html`` the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from guoku.domain.money import Amount
from guoku.web.security import csrf_token

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["csrf_token"] = csrf_token


def yuan(fen: int) -> str:
    """``1234.50`` with thousands separators, as amounts are printed (元)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d}"


templates.env.filters["yuan"] = yuan
templates.env.filters["amount"] = lambda wire: yuan(Amount.parse(wire).fen) if wire else ""


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """Render ``name`` with the request, the signed-in user (if any) and ``context``."""
    user = getattr(request.state, "user", None)
    return templates.TemplateResponse(request, name, {"user": user, **context},
                                      status_code=status_code)
