"""Batch sealing: seal ``--count`` vouchers and verify them, against raw SM2 on the same cores.

Sets up a throwaway CA, a bank's institution key and certificate and its business seal
(业务专用章, made as the key ceremony makes it, picture included), and ``--count`` transfer
applications (2301 申请划款凭证: one seal position, so one signature per voucher).

Sealing is timed from "documents in hand" to "sealed XML bytes back in the parent": canonical
bytes, SM3, SM2 sign, DER SES_Signature, base64, XML (``guoku.security.batch_sealing``).
Verification from the XML bytes to a verdict: ``read_voucher`` (every ``from_xml`` check and the
canonical bytes), the seal signature (signer and seal maker signatures, holder, times,
dataHash); "chain" adds the library's full receive check (``verify_batch`` with a
``VoucherVerifier``: both certificate chains with CRLs against the trust store, seal kind,
sending party) with chains cached per (certificate, time, usage).

The baseline, in the same run on the same cores: raw SM2 sign and verify of ``--count`` fixed
32-byte messages through guoku's crypto adapter. One worker runs in this process; more run in a
``fork`` pool made (and warmed: keys loaded, schemas compiled) before any timing, fed in chunks,
the sealed XML (43 KB a voucher) handed back through shared memory. Vouchers to verify are
*received* before the clock starts, into memory the verifying processes read (shared memory
for the pool, a list in this process): a node's receiver reads them off the network into the
process that verifies them, so a parent copying them to its workers is not part of the cost.
Each figure is the best of ``--repeat`` runs, wall and CPU time (this process and the workers)
apart: the machine may be shared, and CPU time shows the cost whatever else runs. Figures go to
docs/decisions/0009-sealing-throughput.md.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import mmap
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from guoku.domain.document import VoucherDocument
from guoku.domain.seals import SealKind
from guoku.security.batch_sealing import (
    CachingTrustStore,
    SealStamper,
    seal_batch_xml,
    verify_batch,
)
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.security.crypto import SM2PrivateKey, sm3
from guoku.security.seal_image import seal_png
from guoku.security.sealing import VoucherVerifier, property_info
from guoku.security.seals import import_seal, make_seal, sign_with_seal, verify_seal_signature
from guoku.xml.canonical import canonical_bytes, read_voucher
from guoku.xml.codec import from_xml, to_xml
from guoku.xml.samples import sample_document

COUNT: Final = 2000
WORKERS: Final = 2
REPEAT: Final = 3
VERIFY_REPEAT: Final = 3
"""Runs that verify too (each verifies the XML sealed in that run): by default every run."""
VERIFY_MODES: Final = ("signature", "chain", "chain_uncached")
"""Seal signature only; the library's full check with chains cached; the same uncached."""
CHUNKS_PER_WORKER: Final = 25
"""Chunks each pool worker gets (80 vouchers each for 2,000 on 2): results stream back while the
rest is sealed, and the last chunk keeps the other worker waiting for at most ~40 ms."""
MAX_READY_ROUNDS: Final = 50
VT_CODE: Final = "2301"
KIND: Final = SealKind.BANK_BUSINESS
BANK: Final = ("B-ICBC", "中国工商银行云南省分行")
"""The demo province's bank (guoku.province): its seal is the one the demo makes."""
USERNAME: Final = "icbc.sealer"
TARGET_SECONDS_PER_2000: Final = 1.0
TARGET_RATIO: Final = 0.5
LIBRARY_SAMPLE: Final = 200
"""Vouchers sealed one by one through the plain library calls, for comparison."""
NOW: Final = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SEALED_AT: Final = NOW + timedelta(hours=1)
VERIFY_AT: Final = NOW + timedelta(hours=2)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Material:
    """What every worker rebuilds its key, seal and trust store from, once, at start."""

    key_der: bytes
    cert_der: bytes
    seal_der: bytes
    trust_dir: str


def make_material(base: Path) -> Material:
    """A throwaway CA, the seal maker, the bank's key and certificate, its business seal."""
    ca = CertificateAuthority.create(
        base / "ca", "基准测试 CA", "bench only, thrown away", NOW - timedelta(days=1),
        kdf_iterations=MIN_KDF_ITERATIONS,
    )  # fmt: skip
    maker_key = SM2PrivateKey.generate()
    maker_cert = ca.issue_institution("SEAL-MAKER", "电子印章制作中心", maker_key.public_key(), NOW)
    key = SM2PrivateKey.generate()
    cert = ca.issue_institution(BANK[0], BANK[1], key.public_key(), NOW)
    seal = make_seal(
        f"{BANK[0]}-{KIND.value}", BANK[1], KIND, [cert.der], seal_png(KIND, BANK[1]), NOW,
        NOW + timedelta(days=365), maker_key, maker_cert.der, NOW,
    )  # fmt: skip
    ca.export_trust(base / "trust", NOW)
    return Material(key.pkcs8_der(), cert.der, seal.der, str(base / "trust"))


def build_documents(count: int) -> list[VoucherDocument]:
    return [
        sample_document(VT_CODE, voucher_no=f"S{i:08d}", amount=f"{i % 90_000 + 1}.{i % 100:02d}")
        for i in range(count)
    ]


def messages(count: int) -> list[bytes]:
    """The raw baseline's inputs: ``count`` fixed 32-byte messages."""
    return [sm3(i.to_bytes(4, "big")) for i in range(count)]


# --- what a worker holds and does -------------------------------------------------------------


class Worker:
    """Built once per process from :class:`Material`; never per voucher. As a :class:`Runner`,
    the one-core figures: everything in this process."""

    def __init__(self, material: Material) -> None:
        self.key = SM2PrivateKey.from_pkcs8_der(material.key_der)
        self.public = self.key.public_key()
        seal = import_seal(material.seal_der)
        self.stampers = {KIND: SealStamper(seal, self.key, material.cert_der)}
        trust = TrustStore.from_directory(material.trust_dir)
        self.verifiers = {
            "chain": VoucherVerifier(CachingTrustStore.of(trust)),
            "chain_uncached": VoucherVerifier(trust),
        }

    tag: Final = "1"

    def take_worker_cpu(self) -> float:
        return 0.0  # the work ran in this process, where Best.timed counts it

    def sign(self, msgs: Sequence[bytes]) -> list[bytes]:
        return [self.key.sign(m) for m in msgs]

    def verify_raw(self, pairs: Sequence[tuple[bytes, bytes]]) -> int:
        for message, signature in pairs:
            self.public.verify(signature, message)  # raises if it does not verify
        return len(pairs)

    def seal(self, docs: Sequence[VoucherDocument]) -> list[bytes]:
        return seal_batch_xml(docs, self.stampers, SEALED_AT, USERNAME)

    def receive(self, xmls: list[bytes]) -> list[bytes]:
        """Vouchers arrive in this process: nothing to move."""
        return xmls

    def verify(self, mode: str, xmls: Sequence[bytes]) -> int:
        """Verify every voucher or raise; ``signature`` skips chains, kind and party."""
        if mode != "signature":
            verdicts = verify_batch(xmls, self.verifiers[mode], BANK[0], VERIFY_AT)
            refused = [v.error for v in verdicts if v.error is not None]
            if refused:
                raise refused[0]
            return len(verdicts)
        for xml in xmls:
            received = read_voucher(xml)  # every from_xml check, and the canonical bytes
            for stamp in received.stamps.values():
                verify_seal_signature(stamp, received.canonical, VERIFY_AT)
        return len(xmls)

    def warm(self) -> None:
        """First-call costs (schema compile, certificate and chain caches) out of the timings."""
        xmls = self.seal(build_documents(2))
        for mode in VERIFY_MODES:
            self.verify(mode, xmls)


class Shared:
    """Bulk bytes between this process and its forked workers through shared memory, not pipes.

    Slot ``i`` (``slot_bytes`` long) carries voucher ``i``: sealed XML back from the workers,
    XML to verify out to them. Made before the fork, so the workers inherit the mapping; a
    voucher too big for its slot travels through the pool's pipe instead.
    """

    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slot_bytes = slot_bytes
        self.memory = mmap.mmap(-1, slots * slot_bytes)

    def put(self, slot: int, data: bytes) -> int | bytes:
        if len(data) > self.slot_bytes:
            return data
        start = slot * self.slot_bytes
        self.memory[start : start + len(data)] = data
        return len(data)

    def get(self, slot: int, ref: int | bytes) -> bytes:
        if isinstance(ref, bytes):
            return ref
        start = slot * self.slot_bytes
        return self.memory[start : start + ref]


_WORKER: Worker | None = None
_SHARED: Shared | None = None


def _init(material: Material, shared: Shared | None = None) -> None:
    global _WORKER, _SHARED
    _WORKER, _SHARED = Worker(material), shared
    _WORKER.warm()


def _worker() -> tuple[Worker, Shared]:
    if _WORKER is None or _SHARED is None:
        raise RuntimeError("pool worker not initialised")
    return _WORKER, _SHARED


def _ready(_: int) -> int:
    time.sleep(0.02)
    return os.getpid()


def _cpu(call: Callable[[], R]) -> tuple[float, R]:
    """``call()``, and the CPU seconds this worker spent on it."""
    start = time.process_time()
    result = call()
    return time.process_time() - start, result


def _sign(items: list[bytes]) -> tuple[float, list[bytes]]:
    return _cpu(lambda: _worker()[0].sign(items))


def _verify_raw(items: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    return _cpu(lambda: _worker()[0].verify_raw(items))


def _seal(items: list[tuple[int, VoucherDocument]]) -> tuple[float, list[tuple[int, int | bytes]]]:
    def seal() -> list[tuple[int, int | bytes]]:
        worker, shared = _worker()
        xmls = worker.seal([doc for _, doc in items])
        return [(slot, shared.put(slot, xml)) for (slot, _), xml in zip(items, xmls, strict=True)]

    return _cpu(seal)


def _verify(mode: str, items: list[tuple[int, int | bytes]]) -> tuple[float, int]:
    worker, shared = _worker()
    return _cpu(lambda: worker.verify(mode, [shared.get(slot, ref) for slot, ref in items]))


# --- timing -----------------------------------------------------------------------------------


class Runner(Protocol):
    @property
    def tag(self) -> str: ...

    def take_worker_cpu(self) -> float:
        """CPU seconds spent in worker processes since the last call."""

    def sign(self, msgs: list[bytes]) -> list[bytes]: ...

    def verify_raw(self, pairs: list[tuple[bytes, bytes]]) -> int: ...

    def seal(self, docs: list[VoucherDocument]) -> list[bytes]: ...

    def receive(self, xmls: list[bytes]) -> Any:
        """Put received vouchers where the verifying processes read them (not timed)."""

    def verify(self, mode: str, xmls: Any) -> int:
        """Verify what :meth:`receive` returned."""


@dataclass
class InPool:
    """``workers`` forked processes, each fed :data:`CHUNKS_PER_WORKER` chunks in turn."""

    pool: Pool
    shared: Shared
    workers: int
    worker_cpu: float = 0.0

    @property
    def tag(self) -> str:
        return str(self.workers)

    def take_worker_cpu(self) -> float:
        spent, self.worker_cpu = self.worker_cpu, 0.0
        return spent

    def _add(self, part: tuple[float, R]) -> R:
        self.worker_cpu += part[0]
        return part[1]

    def _chunks(self, items: list[T]) -> list[list[T]]:
        size = max(1, -(-len(items) // (self.workers * CHUNKS_PER_WORKER)))
        return [items[i : i + size] for i in range(0, len(items), size)]

    def sign(self, msgs: list[bytes]) -> list[bytes]:
        parts = self.pool.map(_sign, self._chunks(msgs), chunksize=1)
        return [signature for part in parts for signature in self._add(part)]

    def verify_raw(self, pairs: list[tuple[bytes, bytes]]) -> int:
        return sum(map(self._add, self.pool.map(_verify_raw, self._chunks(pairs), chunksize=1)))

    def seal(self, docs: list[VoucherDocument]) -> list[bytes]:
        """Each chunk's XML is copied out as soon as it is back, while the rest is sealed."""
        sealed: list[bytes] = []
        for part in self.pool.imap(_seal, self._chunks(list(enumerate(docs))), chunksize=1):
            sealed += [self.shared.get(slot, ref) for slot, ref in self._add(part)]
        return sealed

    def receive(self, xmls: list[bytes]) -> list[tuple[int, int | bytes]]:
        """Each voucher into its slot of the shared memory the workers read."""
        return [(slot, self.shared.put(slot, xml)) for slot, xml in enumerate(xmls)]

    def verify(self, mode: str, xmls: list[tuple[int, int | bytes]]) -> int:
        """Only the slots and lengths go out; each worker reads the XML from shared memory."""
        task = functools.partial(_verify, mode)
        return sum(map(self._add, self.pool.imap_unordered(task, self._chunks(xmls))))


@dataclass
class Best:
    """Best (lowest) wall and CPU seconds seen per figure over the repeats.

    CPU seconds (this process and the workers) say what the work costs whatever else the machine
    is doing; wall seconds are what the targets are about.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, runner: Runner, call: Callable[..., R], *args: Any) -> R:
        runner.take_worker_cpu()
        wall, cpu = time.perf_counter(), time.process_time()
        result = call(*args)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cpu += runner.take_worker_cpu()
        self.seconds[name] = min(wall, self.seconds.get(name, float("inf")))
        self.cpu[name] = min(cpu, self.cpu.get(name, float("inf")))
        return result


def run(
    runner: Runner, docs: list[VoucherDocument], repeats: tuple[int, int], best: Best
) -> list[bytes]:
    """Raw sign, seal, raw verify, verify: interleaved, so a busy moment hits them alike.

    ``repeats``: runs of the fast figures, and how many of those runs also verify (slow).
    """
    count, tag = len(docs), runner.tag
    msgs = messages(count)
    sealed: list[bytes] = []
    for run_no in range(repeats[0]):
        signatures = best.timed(f"raw_sign/{tag}", runner, runner.sign, msgs)
        sealed = best.timed(f"seal/{tag}", runner, runner.seal, docs)
        pairs = list(zip(msgs, signatures, strict=True))
        checked = best.timed(f"raw_verify/{tag}", runner, runner.verify_raw, pairs)
        _check(len(sealed) == checked == count, "a result is missing")
        received = runner.receive(sealed) if run_no < repeats[1] else None
        for mode in VERIFY_MODES if run_no < repeats[1] else ():
            checked = best.timed(f"verify_{mode}/{tag}", runner, runner.verify, mode, received)
            _check(checked == count, f"{mode}: {checked} of {count} verified")
    return sealed


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def library_path(material: Material, docs: list[VoucherDocument]) -> float:
    """Vouchers/s sealed one at a time with the plain calls (no batch module), one core."""
    key = SM2PrivateKey.from_pkcs8_der(material.key_der)
    seal = import_seal(material.seal_der)
    position = docs[0].vtype.seal_positions[0]
    info = property_info(position, USERNAME)
    start = time.perf_counter()
    for doc in docs:
        data = canonical_bytes(doc)
        der = sign_with_seal(seal, key, material.cert_der, data, SEALED_AT, info)
        to_xml(doc.with_stamps({position.no: base64.b64encode(der).decode("ascii")}))
    return len(docs) / (time.perf_counter() - start)


def measure(count: int, workers: int, repeats: tuple[int, int]) -> dict[str, Any]:
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="seal-bench-") as tmp:
        material = make_material(Path(tmp))
        docs = build_documents(count)
        local = Worker(material)
        local.warm()
        best = Best()
        sealed = run(local, docs, repeats, best)
        tags = ["1"]
        if workers > 1:
            shared = Shared(count, max(map(len, sealed)) * 5 // 4)
            context = multiprocessing.get_context("fork")
            with context.Pool(workers, _init, (material, shared)) as pool:
                _wait_until_ready(pool, workers)
                sealed = run(InPool(pool, shared, workers), docs, repeats, best)
            shared.memory.close()
            tags.append(str(workers))
        _check(to_xml(from_xml(sealed[0])) == sealed[0], "batch XML differs from to_xml's")
        library_rate = library_path(material, docs[:LIBRARY_SAMPLE])
        seal_bytes = len(material.seal_der)
    result = summarise(count, workers, repeats, best, tags, sealed, seal_bytes, library_rate)
    result["load_average"] = {"before": load_before, "after": _load()}
    return result


def _load() -> float | None:
    """1-minute load average: above the core count, other work shared the cores."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _wait_until_ready(pool: Pool, workers: int) -> None:
    """Until every worker has answered, so has run its initializer (keys, schemas, caches)."""
    for _ in range(MAX_READY_ROUNDS):
        if len(set(pool.map(_ready, range(workers * 4), chunksize=1))) == workers:
            return
    raise RuntimeError(f"not all {workers} pool workers answered")


def summarise(
    count: int, workers: int, repeats: tuple[int, int], best: Best, tags: list[str],
    sealed: list[bytes], seal_bytes: int, library_rate: float,
) -> dict[str, Any]:  # fmt: skip
    s, cpu = best.seconds, best.cpu
    by_workers: dict[str, dict[str, Any]] = {}
    for tag in tags:
        row: dict[str, Any] = {
            "raw_sign_per_s": round(count / s[f"raw_sign/{tag}"]),
            "raw_verify_per_s": round(count / s[f"raw_verify/{tag}"]),
            "seal_s": round(s[f"seal/{tag}"], 3),
            "seal_per_s": round(count / s[f"seal/{tag}"]),
            "seal_ratio": round(s[f"raw_sign/{tag}"] / s[f"seal/{tag}"], 3),
            "raw_sign_cpu_us": round(cpu[f"raw_sign/{tag}"] / count * 1e6),
            "raw_verify_cpu_us": round(cpu[f"raw_verify/{tag}"] / count * 1e6),
            "seal_cpu_us": round(cpu[f"seal/{tag}"] / count * 1e6),
            "seal_ratio_cpu": round(cpu[f"raw_sign/{tag}"] / cpu[f"seal/{tag}"], 3),
        }
        for mode in VERIFY_MODES:
            name = f"verify_{mode}/{tag}"
            row[f"verify_{mode}_s"] = round(s[name], 3)
            row[f"verify_{mode}_per_s"] = round(count / s[name])
            row[f"verify_{mode}_ratio"] = round(s[f"raw_verify/{tag}"] / s[name], 3)
            row[f"verify_{mode}_cpu_us"] = round(cpu[name] / count * 1e6)
            row[f"verify_{mode}_ratio_cpu"] = round(cpu[f"raw_verify/{tag}"] / cpu[name], 3)
        by_workers[tag] = row
    top = by_workers[tags[-1]]
    limit = TARGET_SECONDS_PER_2000 * count / COUNT
    return {
        "bench": "seal_batch",
        "count": count,
        "workers": workers,
        "repeat": repeats[0],
        "verify_repeat": repeats[1],
        "cpus": os.cpu_count(),
        "vt_code": VT_CODE,
        "seal_positions": 1,
        "seal_kind": KIND.value,
        "seal_bytes": seal_bytes,
        "mean_xml_bytes": round(sum(map(len, sealed)) / len(sealed)),
        "library_one_by_one_per_s": round(library_rate),
        "by_workers": by_workers,
        "seal_s": top["seal_s"],
        "seal_per_s": top["seal_per_s"],
        "raw_sign_per_s": top["raw_sign_per_s"],
        "seal_ratio": top["seal_ratio"],
        "verify_per_s": top["verify_chain_per_s"],
        "raw_verify_per_s": top["raw_verify_per_s"],
        "verify_ratio": top["verify_chain_ratio"],
        "targets": {
            "seal_seconds": {
                "limit": round(limit, 3),
                "value": top["seal_s"],
                "pass": (top["seal_s"] <= limit) if workers >= WORKERS else None,
            },
            "seal_ratio": {"limit": TARGET_RATIO, "value": top["seal_ratio"],
                           "pass": top["seal_ratio"] >= TARGET_RATIO},
            "verify_ratio": {"limit": TARGET_RATIO, "value": top["verify_chain_ratio"],
                             "pass": top["verify_chain_ratio"] >= TARGET_RATIO},
        },
    }  # fmt: skip


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def report(result: dict[str, Any]) -> None:
    count = result["count"]
    print(
        f"seal_batch: {count} vouchers {result['vt_code']} (1 seal position: {result['seal_kind']},"
        f" one SM2 signature each), seal {result['seal_bytes']:,} bytes, sealed XML "
        f"{result['mean_xml_bytes']:,} bytes; best of {result['repeat']} (verify: "
        f"{result['verify_repeat']}); "
        f"{platform.python_implementation()} {platform.python_version()}, {result['cpus']} CPUs"
    )
    for tag, row in result["by_workers"].items():
        cores = "1 core (in process)" if tag == "1" else f"{tag} worker processes"
        print(f"-- {cores}")
        print(f"  raw SM2 sign (32-byte messages)   {row['raw_sign_per_s']:>8,} /s")
        print(
            f"  batch seal (to sealed XML)        {row['seal_per_s']:>8,} /s  "
            f"{count} in {row['seal_s']:.3f} s  = {row['seal_ratio']:.0%} of raw sign "
            f"(CPU time: {row['seal_cpu_us']} vs {row['raw_sign_cpu_us']} us, "
            f"{row['seal_ratio_cpu']:.0%})"
        )
        print(f"  raw SM2 verify                    {row['raw_verify_per_s']:>8,} /s")
        for mode, label in (
            ("signature", "verify: from_xml + seal signature"),
            ("chain", "verify: + chains (cached), kind, party"),
            ("chain_uncached", "verify: + chains (uncached)"),
        ):
            print(
                f"  {label:38} {row[f'verify_{mode}_per_s']:>6,} /s  "
                f"{count} in {row[f'verify_{mode}_s']:.3f} s  "
                f"= {row[f'verify_{mode}_ratio']:.0%} of raw verify "
                f"(CPU time: {row[f'verify_{mode}_cpu_us']} vs {row['raw_verify_cpu_us']} us, "
                f"{row[f'verify_{mode}_ratio_cpu']:.0%})"
            )
    print(f"plain library calls one by one, 1 core: {result['library_one_by_one_per_s']:,} /s")
    load = result["load_average"]
    print(f"load average (1 min) before {load['before']}, after {load['after']}")
    targets = result["targets"]
    seconds = targets["seal_seconds"]
    print(
        f"target: {count} sealed in <= {seconds['limit']} s on {WORKERS} cores: "
        f"{seconds['value']:.3f} s {_verdict(seconds['pass'])}"
    )
    for name, what in (("seal_ratio", "sign"), ("verify_ratio", "verify")):
        target = targets[name]
        print(
            f"target: {name.split('_')[0]} >= {target['limit']:.0%} of raw SM2 {what} on the same "
            f"cores: {target['value']:.0%} {_verdict(target['pass'])}"
        )
    print(json.dumps(result, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench seal_batch", description=__doc__)
    parser.add_argument("--count", type=int, default=COUNT, help=f"vouchers (default {COUNT})")
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help=f"processes (default {WORKERS})"
    )
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help=f"runs, best kept (default {REPEAT})"
    )
    parser.add_argument(
        "--verify-repeat", type=int, default=VERIFY_REPEAT,
        help=f"of those runs, how many verify too (default {VERIFY_REPEAT})",
    )  # fmt: skip
    args = parser.parse_args()
    if min(args.count, args.workers, args.repeat, args.verify_repeat) < 1:
        parser.error("--count, --workers, --repeat and --verify-repeat must be positive")
    report(measure(args.count, args.workers, (args.repeat, min(args.repeat, args.verify_repeat))))


if __name__ == "__main__":
    main()
