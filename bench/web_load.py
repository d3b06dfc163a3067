"""Web load: the counter's main pages and payment submission, and the service API, under locust.

A fresh demo workspace (``guoku demo``), a large quota for the Mangshi unit so submissions are
never refused for money, then ``guoku web`` on 127.0.0.1 at a free port. The clerks sign in as
the sign-in page does (password plus the challenge signed by their USB key) and an API token is
issued; then ``locust`` runs headless **as its own process** (it patches the standard library
on import) for ``--seconds`` with ``--users`` users: counter clerks (home, voucher list,
notices, entry form, payment submission) and a business system (create a draft, query).
Prints requests per second and p99 latency per request kind and overall, and one JSON line.
Not part of the test suite. Figures: docs/decisions/0019-service-api.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

MAX_SECONDS: Final = 300
MAX_USERS: Final = 200
HOST: Final = "127.0.0.1"
BIN = Path(sys.executable).parent
LOCUSTFILE = Path(__file__).with_name("_locust_web.py")
CLERKS: Final = ("unit-533103-entry",)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench web_load", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30,
                        help=f"how long locust runs (1..{MAX_SECONDS})")
    parser.add_argument("--users", type=int, default=10, help=f"locust users (1..{MAX_USERS})")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per s")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the fresh demo workspace goes (default: a temp dir)")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be 1..{MAX_SECONDS}")
    if not 1 <= args.users <= MAX_USERS:
        parser.error(f"--users must be 1..{MAX_USERS}")
    if args.spawn_rate <= 0:
        parser.error("--spawn-rate must be positive")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p99_ms: float


def summarize(stats_csv: str) -> list[Row]:
    """The rows of locust's ``*_stats.csv`` (one per request kind, then ``Aggregated``)."""
    rows = []
    for r in csv.DictReader(io.StringIO(stats_csv)):
        name = r["Name"] if r["Type"] else "Aggregated"
        rows.append(Row(f"{r['Type']} {name}".strip(), int(r["Request Count"]),
                        int(r["Failure Count"]), float(r["Requests/s"]),
                        float(r["50%"] or 0), float(r["99%"] or 0)))
    return rows


def prepare(workdir: Path) -> dict[str, str]:
    """The demo workspace, a big quota for the unit, an API token; the locust environment."""
    from guoku import demo_flows as world
    from guoku.domain.money import Amount
    from guoku.flows import authorized_payment
    from guoku.flows.desk import Desk
    from guoku.flows.model import DIRECT, Payment, payment_details, payment_header
    from guoku.store import api_tokens
    from guoku.workspace import EmbeddedProvince, open_workspace

    subprocess.run([str(BIN / "guoku"), "demo", "--workdir", str(workdir), "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    c = world.COUNTY
    day = datetime.now(UTC).strftime("%Y%m%d")
    pay = Payment(c, "LOADQ01", day, "U533103001", "芒市教育体育局", world.SUPPLIER,
                  Amount.parse("90000000.00"), "购买教学用品", world._funding())
    ws = open_workspace(workdir)
    try:
        authorized_payment.issue_quota(EmbeddedProvince(ws), pay, Desk(f"F{c}", c, "fin"),
                                       Desk("B-ICBC", c, "icbc"), Desk("P530000", c, "pboc"))
        token, _ = api_tokens.issue(ws.nodes["finance"].engine, "admin-finance", "load-test",
                                    f"fin-{c}-entry")
    finally:
        ws.close()
    f = world._funding()
    return {
        "GUOKU_LOAD_TOKEN": token,
        "GUOKU_LOAD_PAYMENT": json.dumps({
            "payee_account": world.SUPPLIER.account_no, "payee_name": world.SUPPLIER.name,
            "payee_bank": world.SUPPLIER.bank_name, "amount": "1.00", "purpose": "购买教学用品",
            "payer_account": f.payer_account, "payer_name": f.payer_name,
            "payer_bank": f.payer_bank}, ensure_ascii=False),
        "GUOKU_LOAD_API_VOUCHER": json.dumps({
            "vt_code": "5201", "receiver": "B-ICBC",
            "header": payment_header(pay, "5201", DIRECT) | {"PayAmt": "1.00"},
            "details": [d | {"PayAmt": "1.00"} for d in payment_details(pay)]},
            ensure_ascii=False),
    }


def sign_in(base: str, workdir: Path, username: str) -> dict[str, str]:
    """What the sign-in page does: the challenge signed by the clerk's USB key, the password."""
    import base64
    import re

    from guoku.node.bootstrap import DEMO_PASSWORD, DEMO_SECRETS
    from guoku.web.key_agent import KeyAgent

    agent = KeyAgent(workdir / "security", frozenset({base}))
    with httpx.Client(base_url=base) as client:
        challenge = client.post("/login/challenge", data={"username": username}).json()
        signed = agent.sign(username, DEMO_SECRETS.user_pin, challenge["challenge"])
        answer = client.post("/login", data={
            "username": username, "password": DEMO_PASSWORD,
            "challenge": challenge["challenge"],
            "certificate": base64.b64encode(signed.certificate).decode(),
            "signature": base64.b64encode(signed.signature).decode()})
        if answer.status_code != 303:
            raise SystemExit(f"sign-in of {username} failed: {answer.status_code} {answer.text}")
        html = client.get("/counter", headers={"Accept": "text/html"}).text
        found = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert found, "no CSRF token on the counter page"
        return {"cookie": client.cookies["guoku_session"], "csrf": found.group(1)}


def wait_until_up(base: str, server: subprocess.Popen[bytes], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"guoku web exited with {server.returncode}")
        try:
            httpx.get(f"{base}/login", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"guoku web did not answer at {base} within {limit_s} s")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, **prepare(workdir)}
    port = free_port()
    base = f"http://{HOST}:{port}"
    server = subprocess.Popen([str(BIN / "guoku"), "web", "--workdir", str(workdir), "--host",
                               HOST, "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_until_up(base, server)
        env["GUOKU_LOAD_SESSIONS"] = json.dumps([sign_in(base, workdir, u) for u in CLERKS])
        prefix = workdir / "locust"
        subprocess.run([str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless",
                        "-u", str(args.users), "-r", str(args.spawn_rate),
                        "-t", f"{args.seconds}s", "--host", base, "--csv", str(prefix),
                        "--only-summary", "--loglevel", "WARNING"],
                       check=False, env=env, stdout=subprocess.DEVNULL)
        rows = summarize(Path(f"{prefix}_stats.csv").read_text())
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"seconds": args.seconds, "users": args.users,
            "rows": [_row(r) for r in rows]}


def _row(r: Row) -> dict[str, Any]:
    return {"name": r.name, "requests": r.requests, "failures": r.failures,
            "rps": round(r.rps, 2), "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="guoku-web-load-") as tmp:
        workdir = args.workdir or Path(tmp) / "ws"
        result = run(args, workdir)
    print(f"{'request':48} {'n':>7} {'fail':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in result["rows"]:
        print(f"{r['name'][:48]:48} {r['requests']:7d} {r['failures']:5d} {r['rps']:8.2f} "
              f"{r['p50_ms']:8.0f} {r['p99_ms']:8.0f}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
