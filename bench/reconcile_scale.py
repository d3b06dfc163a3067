"""Three-layer reconciliation at 10^4..10^7 vouchers per side on PostgreSQL, vs a bare SQL join.

Per size N, in a child process (so each size's peak RSS is its own), three node schemas of one
PostgreSQL database are filled with ``INSERT ... SELECT generate_series`` — finance: N payment
vouchers (8202/5201, out) and their ``authorized_paid`` / ``direct_paid`` postings; the agent
bank: the received copies and ``advanced`` postings; the treasury: the ``cleared`` postings of
the transfer applications — with 1% of the vouchers broken for each of ten kinds of fault
(dropped message, extra copy, copy amount, stuck state, ledger amount, duplicate booking,
booking without voucher, unbooked, not cleared, clearing amount). Then, timed:

Refunds of 5% of the payments go through the three books as well (2302 / 2203 / 2204,
1% each with a refund fault).

* ``layer1`` finance <-> bank, ``layer2`` on the finance and on the bank node, ``layer3``
  finance / bank / treasury, for the month — each run to the end, breaks counted by kind and
  checked against the injected faults (a wrong engine posts no time);
* the *baseline*: a bare ``FULL OUTER JOIN`` of the same two voucher tables counting breaks
  (the issue's yardstick), and bare joins doing each layer's raw work, in the same run.

``auto`` joins the schemas in SQL (they are one database); ``--merge-max`` sizes also run the
portable streaming merge (each side through its own server-side cursor, merged in Python), the
path two separate databases take. Tables are UNLOGGED (generation only: reads are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from guoku.reconcile import Break, concurrently, layer1, layer2, layer3
from guoku.reconcile.merge import PG_SESSION
from guoku.store.tables import admdivs, ledger_entries, metadata, parties, voucher_events, vouchers

SIZES: Final = (10_000, 100_000, 1_000_000)
HUGE: Final = 10_000_000
TARGET_SECONDS: Final = 8.0
"""At 10^6 vouchers per side, all three layers (issue, section 7)."""
TARGET_RATIO: Final = 1.5
MERGE_MAX: Final = 1_000_000
TIMED: Final = ("layer1", "layer2", "layer3")
"""The timed total: each layer once on 10^6-per-side inputs — layer 1 finance <-> bank,
layer 2 on the finance node (10^6 vouchers against 10^6 postings), layer 3 finance / bank /
treasury. Layer 2 on the bank node runs too and is reported beside it."""
REPO: Final = Path(__file__).resolve().parents[1]
URL: Final = os.environ.get("GUOKU_TEST_PG_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMDIV, MONTH, OLD = "533103", "202406", "2024-06-01T08:00:00.000000Z"
NOW: Final = datetime(2024, 7, 1, tzinfo=UTC)
UNITS, FUNDS, DAYS = 50, 3, 20
FIN, BANK, PBOC = "F533103", "B-ICBC", "P530000"
UNIT_CODES: Final = tuple(f"U533103{u:03d}" for u in range(UNITS))
NODES: Final = ("fin", "bank", "pboc")

FAULTS: Final = {
    1: "dropped message", 2: "extra copy at the bank", 3: "copy amount changed",
    4: "voucher stuck in one state", 5: "ledger amount changed", 6: "duplicate booking",
    7: "booking without voucher", 8: "unbooked voucher", 9: "not cleared",
    10: "clearing amount changed", 13: "refund amount changed at the bank",
    14: "refund booked at the bank, never received by the treasury",
    15: "refund booked twice by finance",
}
"""Residue of the voucher number mod 100 -> the fault every such voucher carries."""
REFUNDED: Final = (11, 12, 13, 14, 15)
"""Residues whose payments are refunded (2302 from the bank to the treasury, then the notice
2203 — odd numbers, direct payments — or 2204 to finance): 11 and 12 cleanly, 13-15 with a
fault. 14's application never reached the treasury, so finance got no notice either."""


# --- the data --------------------------------------------------------------------------------

_V = "'V' || lpad(i::text, 10, '0')"
_VT = "CASE WHEN i % 2 = 0 THEN '8202' ELSE '5201' END"
_AMOUNT = "(100 + (i::bigint * 7919) % 9999900)"
_DAY = "'202406' || lpad((1 + i % 20)::text, 2, '0')"
_UNIT = "'U533103' || lpad((i % 50)::text, 3, '0')"
_FUND = "(1 + i % 3)::text"
_SENDER = f"CASE WHEN i % 2 = 0 THEN {_UNIT} ELSE '{FIN}' END"
_PAID = "CASE WHEN i % 2 = 0 THEN 'authorized_paid' ELSE 'direct_paid' END"
_VOUCHER_COLS = ("admdiv, st_year, vt_code, voucher_no, version, direction, state, amount_fen, "
                 "vou_date, sender_party, receiver_party, xml, print_count, is_current, "
                 "created_at, updated_at")
_ENTRY_COLS = "admdiv, party, account, agency_code, fund_type, exp_func, day, amount_fen, " \
              "voucher_ref, at"


def _ref(number: str, vt: str = _VT, version: str = "1") -> str:
    return f"{vt} || '/2024/' || {number} || '/v{version}'"


def _vouchers_sql(schema: str, number: str, direction: str, state: str, amount: str,
                  where: str, *, series: str, vt: str = _VT, sender: str = _SENDER,
                  receiver: str = f"'{BANK}'") -> str:
    """``INSERT ... SELECT`` of one voucher copy per ``i`` of ``series`` where ``where``."""
    return (f"INSERT INTO {schema}.vouchers ({_VOUCHER_COLS}) SELECT '{ADMDIV}', 2024, "
            f"{vt}, {number}, 1, '{direction}', {state}, {amount}, {_DAY}, {sender}, "
            f"{receiver}, '\\x'::bytea, 0, true, '{OLD}', '{OLD}' {series} WHERE {where}")


def _entries_sql(schema: str, party: str, account: str, agency: str, ref: str, amount: str,
                 where: str, *, series: str) -> str:
    """``INSERT ... SELECT`` of one posting per ``i`` of ``series`` where ``where``."""
    return (f"INSERT INTO {schema}.ledger_entries ({_ENTRY_COLS}) SELECT '{ADMDIV}', "
            f"{party}, {account}, {agency}, {_FUND}, '2050202', {_DAY}, {amount}, {ref}, "
            f"'{OLD}' {series} WHERE {where}")


def generate(conn: Any, s: dict[str, str], n: int) -> None:
    """Fill the three node schemas ``s`` with ``n`` payments and the injected faults."""
    series = f"FROM generate_series(1, {n}) i"
    vouchers_sql = partial(_vouchers_sql, series=series)
    entries_sql = partial(_entries_sql, series=series)
    fin, bank, pboc = s["fin"], s["bank"], s["pboc"]
    state = "CASE i % 100 WHEN 1 THEN 'indeterminate' WHEN 4 THEN 'delivered' ELSE 'accepted' END"
    copy_amount = f"{_AMOUNT} + CASE WHEN i % 100 = 3 THEN 1 ELSE 0 END"
    for sql in (
        vouchers_sql(fin, _V, "out", state, _AMOUNT, "true"),
        entries_sql(fin, _SENDER, _PAID, _UNIT, _ref(_V), _AMOUNT, "i % 100 NOT IN (1, 4, 8)"),
        entries_sql(fin, _SENDER, _PAID, _UNIT, _ref(_V, version="2"), _AMOUNT, "i % 100 = 6"),
        entries_sql(fin, _SENDER, _PAID, _UNIT, _ref("'Z' || lpad(i::text, 10, '0')"),
                    _AMOUNT, "i % 100 = 7"),
        vouchers_sql(bank, _V, "in", "'accepted'", copy_amount, "i % 100 <> 1"),
        vouchers_sql(bank, "'X' || lpad(i::text, 10, '0')", "in", "'received'", _AMOUNT,
                     "i % 100 = 2"),
        entries_sql(bank, f"'{BANK}'", "'advanced'", _UNIT, _ref(_V),
                    f"{copy_amount} + CASE WHEN i % 100 = 5 THEN 100 ELSE 0 END",
                    "i % 100 <> 1"),
        entries_sql(pboc, f"'{PBOC}'", "'cleared'", "''", _ref(f"'2301-' || {_V}", "'2301'"),
                    f"{copy_amount} - CASE WHEN i % 100 = 10 THEN 1 ELSE 0 END",
                    "i % 100 NOT IN (1, 9)"),
    ):
        conn.execute(text(sql))
    refunds(conn, s, series)


def refunds(conn: Any, s: dict[str, str], series: str) -> None:
    """The refunds of the :data:`REFUNDED` payments: the bank's application 2302 accepted by
    the treasury and booked by both, the bank's notice (2203 / 2204) received and booked by
    finance — vouchers and postings — with the faults 13-15."""
    refunded = f"i % 100 IN {REFUNDED}"
    notified = f"i % 100 IN {tuple(r for r in REFUNDED if r != 14)}"
    notice_vt = "CASE WHEN i % 2 = 0 THEN '2204' ELSE '2203' END"
    notice_no = f"{notice_vt} || '-' || {_V}"
    application = _ref(f"'2302-' || {_V}", "'2302'")

    def copies(schema: str, vt: str, number: str, direction: str, receiver: str,
               where: str) -> str:
        return _vouchers_sql(schema, number, direction, "'accepted'", _AMOUNT, where,
                             series=series, vt=vt, sender=f"'{BANK}'", receiver=receiver)

    postings = partial(_entries_sql, series=series)

    notice_account = ("CASE WHEN i % 2 = 0 THEN 'authorized_refunded' ELSE 'direct_refunded' "
                      "END")
    for sql in (
        copies(s["bank"], "'2302'", f"'2302-' || {_V}", "out", f"'{PBOC}'", refunded),
        postings(s["bank"], f"'{BANK}'", "'refund_returned'", "''", application,
                 f"{_AMOUNT} + CASE WHEN i % 100 = 13 THEN 1 ELSE 0 END", refunded),
        postings(s["pboc"], f"'{PBOC}'", "'refund_received'", "''", application, _AMOUNT,
                 f"{refunded} AND i % 100 <> 14"),
        copies(s["bank"], notice_vt, notice_no, "out", f"'{FIN}'", notified),
        copies(s["fin"], notice_vt, notice_no, "in", f"'{FIN}'", notified),
        postings(s["fin"], f"'{FIN}'", notice_account, _UNIT, _ref(notice_no, notice_vt),
                 _AMOUNT, notified),
        postings(s["fin"], f"'{FIN}'", notice_account, _UNIT, _ref(notice_no, notice_vt, "2"),
                 _AMOUNT, "i % 100 = 15"),
    ):
        conn.execute(text(sql))


def settle(admin: Engine, schemas: Iterable[str]) -> None:
    """VACUUM ANALYZE what was loaded, so that no autovacuum runs into the timings and no
    first read pays for setting hint bits."""
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for schema in schemas:
            for table in ("vouchers", "ledger_entries"):
                conn.execute(text(f"VACUUM (ANALYZE) {schema}.{table}"))


def expected_breaks(n: int) -> dict[str, int]:
    """Voucher-level breaks the injected faults must produce, by layer and kind."""
    def k(r: int) -> int:
        return n // 100 + (1 if n % 100 >= r else 0)

    return {
        "1.missing": k(1), "1.extra": k(2), "1.amount_mismatch": k(3),
        "1.status_mismatch": k(4),
        "2.amount_mismatch": k(5) + k(13), "2.duplicate_booking": k(6) + k(15),
        "2.booking_without_voucher": k(7), "2.unbooked": k(8),
        "3.amount_mismatch": k(3) + 2 * k(5) + k(10) + 2 * k(13),
        "3.missing": k(6) + k(7) + k(9) + k(14), "3.extra": k(4) + k(8) + k(14),
        "3.duplicate_booking": k(15),
    }


def create_schemas(admin: Engine, n: int) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    schemas = {node: f"bench_rc_{tag}_{node}" for node in NODES}
    tables = [admdivs, parties, vouchers, voucher_events, ledger_entries]
    with admin.begin() as conn:
        for schema in schemas.values():
            conn.execute(text(f"CREATE SCHEMA {schema}"))
            conn.execute(text(f"SET LOCAL search_path TO {schema}"))
            metadata.create_all(conn, tables=tables)
            for table in ("voucher_events", "vouchers", "ledger_entries"):
                conn.execute(text(f"ALTER TABLE {table} SET UNLOGGED"))
            conn.execute(text("INSERT INTO admdivs VALUES ('530000', '云南省', 'province', NULL), "
                              f"('{ADMDIV}', '芒市', 'county', '530000')"))
            kinds = [(FIN, "finance"), (BANK, "bank"), (PBOC, "pboc"),
                     *((u, "unit") for u in UNIT_CODES)]
            conn.execute(text("INSERT INTO parties VALUES " + ", ".join(
                f"('{code}', '{kind}', '{code}', '{ADMDIV}')" for code, kind in kinds)))
        conn.execute(text("RESET search_path"))
        generate(conn, schemas, n)
    settle(admin, schemas.values())
    return schemas


def drop_schemas(admin: Engine, schemas: Iterable[str]) -> None:
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


# --- the runs --------------------------------------------------------------------------------


def _node_url(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def _drain(breaks: Iterable[Break], counts: Counter[str]) -> None:
    for brk in breaks:
        counts[f"{int(brk.layer)}.{brk.kind.value}"] += 1


def run_layers(nodes: dict[str, Engine], method: str) -> dict[str, Any]:
    fin, bank, pboc = nodes["fin"], nodes["bank"], nodes["pboc"]
    steps: dict[str, Callable[[], Iterable[Break]]] = {
        "layer1": lambda: layer1(fin, (FIN, *UNIT_CODES), bank, (BANK,), month=MONTH,
                                 now=NOW, method=method),  # type: ignore[arg-type]
        "layer2": lambda: layer2(fin, month=MONTH),
        "layer3": lambda: layer3(fin, bank, pboc, month=MONTH,
                                 method=method),  # type: ignore[arg-type]
        "layer2_bank": lambda: layer2(bank, month=MONTH),
    }
    seconds, counts, timed = {}, Counter[str](), Counter[str]()
    for name, step in steps.items():
        start = time.perf_counter()
        found: Counter[str] = Counter()
        _drain(step(), found)
        seconds[name] = time.perf_counter() - start
        counts.update(found)
        if name in TIMED:
            timed.update(found)
    total = sum(v for k, v in seconds.items() if k in TIMED)
    return {"seconds": seconds, "total_s": total, "breaks": dict(counts), "timed": timed,
            "steps": steps}


def side_by_side(run: dict[str, Any]) -> float:
    """The timed layers again, run side by side (``reconcile.concurrently``); the same breaks."""
    together: Counter[str] = Counter()
    start = time.perf_counter()
    _drain(concurrently([run["steps"][k] for k in TIMED]), together)
    seconds = time.perf_counter() - start
    if together != run["timed"]:
        raise AssertionError(f"side by side found {together}, one by one {run['timed']}")
    return seconds


def _bare(conn: Any, sql: str) -> tuple[float, int]:
    start = time.perf_counter()
    found = int(conn.execute(text(sql)).scalar_one())
    return time.perf_counter() - start, found


def baselines(admin: Engine, s: dict[str, str]) -> dict[str, tuple[float, int]]:
    """Bare SQL on the same tables, counting breaks: the issue's FULL OUTER JOIN of the two
    voucher tables, and the raw joins each layer's work amounts to."""
    key = " AND ".join(f"a.{c} = b.{c}" for c in
                       ("admdiv", "st_year", "vt_code", "voucher_no", "version"))
    ref = "v.vt_code || '/' || v.st_year || '/' || v.voucher_no || '/v' || v.version"
    link = ("substr(voucher_ref, 1, length(rtrim(voucher_ref, '0123456789')) - 2)")
    sqls = {
        "baseline": f"SELECT count(*) FROM {s['fin']}.vouchers a FULL OUTER JOIN "
                    f"{s['bank']}.vouchers b ON {key} WHERE a.id IS NULL OR b.id IS NULL OR "
                    "a.amount_fen <> b.amount_fen OR a.state <> b.state",
        "bare_layer2": "SELECT " + " + ".join(
            f"(SELECT count(*) FROM {s[n]}.vouchers v FULL OUTER JOIN {s[n]}.ledger_entries e "
            f"ON e.voucher_ref = {ref} AND e.admdiv = v.admdiv WHERE v.id IS NULL OR "
            "e.id IS NULL OR v.amount_fen <> e.amount_fen)" for n in ("fin", "bank")),
        "bare_layer3": f"SELECT count(*) FROM {s['fin']}.ledger_entries f FULL OUTER JOIN "
                       f"{s['bank']}.ledger_entries b ON f.voucher_ref = b.voucher_ref FULL "
                       f"OUTER JOIN (SELECT *, {link} AS l FROM {s['pboc']}.ledger_entries) p "
                       f"ON p.l = '2301/' || substr(b.voucher_ref, 6, 5) || '2301-' || "
                       f"substr({link.replace('voucher_ref', 'b.voucher_ref')}, 11) "
                       "WHERE f.id IS NULL OR b.id IS NULL OR p.id IS NULL OR "
                       "f.amount_fen <> b.amount_fen OR b.amount_fen <> p.amount_fen",
    }
    results = {}
    with admin.connect() as conn:
        for name, sql in sqls.items():
            results[name + "_default"] = _bare(conn, sql)
        for setting in PG_SESSION:
            conn.execute(text(setting.replace("SET LOCAL", "SET")))
        for name, sql in sqls.items():
            results[name] = _bare(conn, sql)
        conn.rollback()
    return results


def best(*runs: dict[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
    return {k: min((r[k] for r in runs), key=lambda x: x[0]) for k in runs[0]}


def measure_one(url: str, n: int, merge: bool, keep: bool) -> dict[str, Any]:
    admin = create_engine(url, poolclass=NullPool)
    start = time.perf_counter()
    schemas = create_schemas(admin, n)
    generate_s = time.perf_counter() - start
    nodes = {node: create_engine(_node_url(url, schema)) for node, schema in schemas.items()}
    try:
        with admin.connect() as conn:
            rows = {f"{node}.{table}": int(conn.execute(text(
                f"SELECT count(*) FROM {schema}.{table}")).scalar_one())
                for node, schema in schemas.items() for table in ("vouchers", "ledger_entries")}
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        first = baselines(admin, schemas)
        result: dict[str, Any] = {"n": n, "generate_s": round(generate_s, 2), "rows": rows,
                                  "expected": expected_breaks(n)}
        paths = ["auto", "merge"] if merge else ["auto"]
        runs = {path: run_layers(nodes, path) for path in paths}
        result["peak_rss_mb"] = _peak_mb()
        runs["auto"]["seconds"]["side_by_side"] = side_by_side(runs["auto"])
        result["peak_rss_side_by_side_mb"] = _peak_mb()
        base = best(first, baselines(admin, schemas))
        result["baseline"] = {k: {"s": round(v[0], 3), "breaks": v[1]} for k, v in base.items()}
        for path, run in runs.items():
            result[path] = _summary(run, rows, base, expected_breaks(n))
        result["rss_mb_before_layers"] = round(rss_before / 1024, 1)
        return result
    finally:
        for engine in nodes.values():
            engine.dispose()
        if not keep:
            drop_schemas(admin, schemas.values())
        admin.dispose()


def _peak_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _summary(run: dict[str, Any], rows: dict[str, int], base: dict[str, tuple[float, int]],
             expected: dict[str, int]) -> dict[str, Any]:
    read = (rows["fin.vouchers"] + rows["bank.vouchers"]  # layer 1
            + rows["fin.vouchers"] + rows["fin.ledger_entries"]  # layer 2 (finance)
            + rows["fin.ledger_entries"] + rows["bank.ledger_entries"]
            + rows["pboc.ledger_entries"])  # layer 3
    breaks = run["breaks"]
    wrong = {k: (breaks.get(k, 0), v) for k, v in expected.items() if breaks.get(k, 0) != v}
    unexpected = {k: v for k, v in breaks.items()
                  if k not in expected and k != "3.total_mismatch"}
    return {
        "seconds": {k: round(v, 3) for k, v in run["seconds"].items()},
        "total_s": round(run["total_s"], 3),
        "side_by_side_s": (round(run["seconds"]["side_by_side"], 3)
                           if "side_by_side" in run["seconds"] else None),
        "rows_read": read,
        "rows_per_s": round(read / run["total_s"]),
        "ratio_layer1_over_baseline": round(run["seconds"]["layer1"] / base["baseline"][0], 2),
        "ratio_layer1_over_default_baseline": round(
            run["seconds"]["layer1"] / base["baseline_default"][0], 2),
        "ratio_total_over_baseline": round(run["total_s"] / base["baseline"][0], 2),
        "ratio_over_bare_joins": round(run["total_s"] / sum(
            base[k][0] for k in ("baseline", "bare_layer2", "bare_layer3")), 2),
        "breaks": dict(sorted(breaks.items())),
        "all_faults_found": not wrong and not unexpected,
        "wrong_counts": wrong, "unexpected": unexpected,
    }


# --- reporting -------------------------------------------------------------------------------


def report_one(r: dict[str, Any]) -> None:
    b = r["baseline"]
    print(f"== {r['n']:,} vouchers per side (generated in {r['generate_s']} s; rows: "
          + ", ".join(f"{k} {v:,}" for k, v in r["rows"].items()) + ")")
    print(f"  baseline FULL OUTER JOIN of the two voucher tables: {b['baseline']['s']:.3f} s with "
          f"the engine's session settings, {b['baseline_default']['s']:.3f} s with the server's "
          f"({b['baseline']['breaks']:,} breaks); bare layer-2 join "
          f"{b['bare_layer2']['s']:.3f} s, bare layer-3 joins {b['bare_layer3']['s']:.3f} s")
    if "merge" not in r:
        print(f"  {'streaming merge':19} not timed at this size (above --merge-max, "
              "default 10^6: about 30 s a million there)")
    for path in ("auto", "merge"):
        if path not in r:
            continue
        p = r[path]
        s = p["seconds"]
        found = "all" if p["all_faults_found"] else f"NO {p['wrong_counts']} {p['unexpected']}"
        print(f"  {'sql (one database)' if path == 'auto' else 'streaming merge':19} "
              f"layer1 {s['layer1']:.3f} s  layer2 {s['layer2']:.3f} s  layer3 "
              f"{s['layer3']:.3f} s  = {p['total_s']:.3f} s  {p['rows_per_s']:,} rows/s  "
              f"(layer2 on the bank node {s['layer2_bank']:.3f} s)")
        if p["side_by_side_s"] is not None:
            print(f"  {'':19} the three side by side (reconcile.concurrently): "
                  f"{p['side_by_side_s']:.3f} s")
        print(f"  {'':19} layer1/baseline {p['ratio_layer1_over_baseline']}x "
              f"({p['ratio_layer1_over_default_baseline']}x of the server-default baseline), "
              f"total/baseline {p['ratio_total_over_baseline']}x, total/bare joins of the same "
              f"work {p['ratio_over_bare_joins']}x; faults found: {found}")
    print(f"  peak RSS {r['peak_rss_mb']} MB one layer at a time, "
          f"{r['peak_rss_side_by_side_mb']} MB side by side (before the layers ran: "
          f"{r['rss_mb_before_layers']} MB)")


def child(args: argparse.Namespace) -> None:
    result = measure_one(args.url, args.one, args.one <= args.merge_max, args.keep)
    print(json.dumps(result, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reconcile_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="vouchers per side, comma separated (default %(default)s)")
    parser.add_argument("--with-10m", action="store_true", dest="huge",
                        help="add 10^7 (about 15 GB and tens of minutes to generate)")
    parser.add_argument("--merge-max", type=int, default=MERGE_MAX,
                        help="also time the streaming merge up to this size (default "
                             "%(default)s)")
    parser.add_argument("--url", default=URL, help="PostgreSQL URL (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the generated schemas")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        child(args)
        return
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if min(sizes) < 100:
        parser.error("sizes must be at least 100 (one of each fault)")
    if args.huge and HUGE not in sizes:
        sizes.append(HUGE)
    skipped = None if HUGE in sizes else (
        "10^7 skipped: pass --with-10m to run it (about 15 GB of tables and tens of minutes "
        "to generate on this machine)")
    print(f"three-layer reconciliation on PostgreSQL ({_redacted(args.url)}), 1% of the "
          f"vouchers broken for each of {len(FAULTS)} faults; sizes {sizes}", flush=True)
    results = []
    for n in sizes:
        cmd = [sys.executable, "-m", "bench", "reconcile_scale", "--one", str(n), "--url",
               args.url, "--merge-max", str(args.merge_max), *(["--keep"] if args.keep else [])]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            raise SystemExit(f"size {n} failed")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        report_one(result)
        results.append(result)
    print(json.dumps(_final(results, skipped), sort_keys=True))


def _final(results: list[dict[str, Any]], skipped: str | None) -> dict[str, Any]:
    at = {r["n"]: r for r in results}
    million = at.get(1_000_000)
    verdict = None
    if million is not None:
        auto = million["auto"]
        verdict = {
            "total_s": auto["total_s"], "side_by_side_s": auto["side_by_side_s"],
            "target_s": TARGET_SECONDS, "within_target": auto["total_s"] <= TARGET_SECONDS,
            "within_target_side_by_side": auto["side_by_side_s"] <= TARGET_SECONDS,
            "layer1_ratio": auto["ratio_layer1_over_baseline"],
            "total_ratio": auto["ratio_total_over_baseline"], "target_ratio": TARGET_RATIO,
        }
    return {"bench": "reconcile_scale", "sizes": results, "at_1e6": verdict,
            "skipped": skipped}


def _redacted(url: str) -> str:
    return url.split("@")[-1]


if __name__ == "__main__":
    main()
