"""Node scale-out: vouchers/s node to node with each node as 1, 2 and 4 worker processes.

bank-icbc sends ``--count`` 申请划款凭证 (2301), spread over ``--counties`` counties, to the
central bank. Both nodes run as N workers (``guoku node run --partitions P``) over their one
PostgreSQL database and P partition queues; each worker relays and consumes the partitions it
holds a lease on. The rate is ``--count`` over the time from the first envelope published to the
last delivered receipt applied, read from the sender's database (as ``bench mq_throughput``).
Each worker count starts from a clone of the same sent database, so every run moves the same
vouchers. Printed: the rate at each worker count and its ratio to one worker, and how the
vouchers fall into partitions (the ceiling of any speed-up: a partition is worked by one worker
at a time).

The machine's cores bound what more workers can give: the crypto is CPU-bound, and the
databases and the broker share the same cores. Needs PostgreSQL and RabbitMQ; run it from the
checkout (it uses the fault tests' harness).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tests.fault.harness import Databases, db_name, states, wait_until
from tests.fault.scaleout import (
    SENDER,
    ScaleoutPair,
    build_sent_vouchers,
    counties_of,
    province_toml,
)

from bench.mq_throughput import AMQP_URL, PG_URL, pipeline_seconds
from guoku.node.bootstrap import DEMO_SECRETS
from guoku.node.partitions import partition_of
from guoku.province_config import load_province_file
from guoku.security.provision import provision

COUNT: Final = 2000
COUNTIES: Final = 16
PARTITIONS: Final = 8
WORKERS: Final = (1, 2, 4)
SECONDS_PER_VOUCHER: Final = 0.2


def measure(count: int, counties: int, partitions: int, workers: tuple[int, ...],
            pg_url: str, amqp_url: str) -> dict[str, Any]:
    databases = Databases(pg_url)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="scaleout-bench-") as tmp:
        work = Path(tmp)
        province_file = work / "province.toml"
        province_file.write_text(province_toml(counties))
        province = load_province_file(province_file)
        provision(work / "security", province, DEMO_SECRETS, datetime.now(UTC))
        try:
            template = db_name(f"bt{uuid.uuid4().hex[:8]}", SENDER)
            start = time.perf_counter()
            build_sent_vouchers(work / "security", province, databases.create(template), count)
            build_s = time.perf_counter() - start
            for n in workers:
                runs.append(one_run(work, province_file, databases, template, amqp_url, count,
                                    partitions, n))
        finally:
            databases.close()
    names = counties_of(province)
    share = Counter(partition_of(names[i % len(names)], partitions) for i in range(count))
    base = runs[0]["vouchers_per_s"]
    for run in runs:
        run["ratio_to_1"] = round(run["vouchers_per_s"] / base, 2)
    return {
        "bench": "node_scaleout", "count": count, "counties": counties,
        "partitions": partitions, "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "build_vouchers_per_s": round(count / build_s, 1),
        "vouchers_per_partition": dict(sorted(share.items())),
        "largest_partition_share": round(max(share.values()) / count, 3),
        "runs": runs,
    }


def one_run(work: Path, province_file: Path, databases: Databases, template: str,
            amqp_url: str, count: int, partitions: int, workers: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    logs = work / f"logs-{workers}"
    pair = ScaleoutPair(home=work / "security", province_file=province_file,
                        databases=databases, amqp_url=amqp_url, workdir=logs, run=run,
                        workers=workers, partitions=partitions, sender_template=template)
    load_before = os.getloadavg()[0]
    try:
        pair.start()
        wait_until(lambda: states(pair.engines[SENDER], "out") == {"delivered": count},
                   60 + count * SECONDS_PER_VOUCHER, "every voucher delivered", pair.tails)
        seconds = pipeline_seconds(pair.engines[SENDER], pair.engines["pboc"])
        pair.stop()
    finally:
        pair.close()
    return {"workers": workers, "round_trip_s": round(seconds["round_trip_s"], 2),
            "vouchers_per_s": round(count / seconds["round_trip_s"], 1),
            "load_average_before": round(load_before, 2)}


def report(result: dict[str, Any]) -> None:
    print(f"node scale-out: {result['count']} vouchers bank-icbc -> pboc over "
          f"{result['counties']} counties, {result['partitions']} partitions, "
          f"{result['cores']} cores (load {result['load_average']})")
    print(f"  vouchers per partition {result['vouchers_per_partition']} (largest share "
          f"{result['largest_partition_share']:.1%})")
    for run in result["runs"]:
        print(f"  {run['workers']} worker(s) per node: {run['vouchers_per_s']:8.1f} vouchers/s"
              f"  ({run['round_trip_s']:.1f} s)  x{run['ratio_to_1']:.2f} of 1 worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--counties", type=int, default=COUNTIES)
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    parser.add_argument("--workers", default=",".join(map(str, WORKERS)),
                        help="comma-separated worker counts, the first is the baseline")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--amqp-url", default=AMQP_URL)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.count, args.counties, args.partitions,
                     tuple(int(w) for w in args.workers.split(",")), args.pg_url, args.amqp_url)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        report(result)


if __name__ == "__main__":
    main()
