"""Direct payments end to end per second, against the crypto-bound limit of the same run.

One payment is eight vouchers (5201, 5108, 9201, 2301, 9108, 9301 x2, 2208), each entered,
reviewed, sealed, sent in an encrypted and signed envelope, verified by the receiver, accepted,
booked and receipted, through ``guoku.flows.direct_payment.run_many`` on the embedded deployment
(every node in this process, SQLite files, ``guoku.workspace``). Two modes run in one process,
their units interleaved so load on a shared machine hits both alike:

- **batch** (the judged one): a unit is ``run_many`` of ``--batch`` payments, each step of the
  flow done for the whole batch (shared transactions, one signing-server ``batch_seal_sign``
  per step, shared envelopes);
- **single**: a unit is ``run_many`` of one payment, i.e. ``direct_payment.run``.

The limit: the seal signatures and stamp verifications of one unit are *recorded* while the
warm-up units run (the sealer's signing client and USB keys and the verifier's
``verify_seal_signature`` are wrapped, nothing else changes), then replayed alone with the very
inputs recorded — each ``seal_sign`` or ``batch_seal_sign`` call as the flow made it, through
the same signing client (so the limit pays the same audit entry per call as the flow), the
personal stamps on the same USB keys, ``verify_seal_signature`` against the same trust store.
Each timed unit is followed by one unit's worth of that replay; the ratio of the two rates is
the figure the target (at least 50%, embedded, batch mode) is about. The same replay plus the
envelopes' crypto (each envelope sealed and opened again from the recorded inputs) gives a
second, stricter limit. Counts are reported per payment (a unit's count divided by its size):
a batch call of n stamps counts n stamps.

``--profile N`` samples where the time of N more batch units goes (a stdlib sampler: stacks of
the main thread, time-weighted, each sample given to the first matching category of
:data:`CATEGORIES`). ``--deployment pg`` runs the same on PostgreSQL + RabbitMQ with node and
signing-server processes (``guoku.deploy.local``). Figures, and the what-if prototypes that
led to the batch flow and the fixes now in ``src/``: docs/decisions/0014-flow-throughput.md.
"""

from __future__ import annotations

import argparse
import json
import linecache
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, Final

from sqlalchemy import event

from guoku import demo_flows as world
from guoku.bank.core import SimulatedCoreBanking
from guoku.bank.paying import CorePayer
from guoku.domain.money import Amount
from guoku.flows import direct_payment
from guoku.flows.desk import Desk, Province
from guoku.flows.model import Payment
from guoku.library.service import VoucherLibrary
from guoku.security import sealing as sealing_module
from guoku.security import seals as seals_module
from guoku.security.certs import TrustStore
from guoku.security.signing_server import SealRequest
from guoku.transport import envelope as envelope_module
from guoku.transport import messenger as messenger_module
from guoku.workspace import EmbeddedProvince, Workspace, create

BATCH: Final = 50
"""Payments per batch unit: enough that a step's transactions, signing-server call and
envelopes are shared thin (a settle is then 0.1 per payment), few enough for a short run."""
COUNT: Final = 5
"""Timed batch units (250 payments at the default size)."""
SINGLE: Final = 20
"""Timed single payments. With the defaults (422 payments with the warm-up and the profile) the
embedded run took 51 s on the 2-vCPU development machine at load average 2."""
WARMUP: Final = 2
"""Recorded warm-up units per mode: the first warms caches, the others check it is typical."""
PROFILE_COUNT: Final = 1
MAX_PAYMENTS: Final = 5_000
"""A sane bound on one run's payments, about ten times the defaults."""
TARGET_RATIO: Final = 0.5
AMOUNT: Final = "1.00"
CLEARING_BALANCE: Final = "10000000.00"
SAMPLE_INTERVAL_S: Final = 0.0005
C = world.COUNTY
FINANCE, BANK, PBOC = Desk(f"F{C}", C, "fin"), Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")

CATEGORIES: Final = (
    ("waiting for the node processes (pg: LocalProvince.settle)", "deploy/local.py", "settle"),
    ("signing-server audit fsync", "security/signing_store.py", "_sync_to"),
    ("signing-server audit entry", "security/signing_store.py", "append"),
    ("certificate chains + CRLs", "security/certs.py", "validate"),
    ("stamp verification", "security/seals.py", "verify_seal_signature"),
    ("stamp signing", "security/seals.py", "sign_with_seal"),
    ("stamp signing", "security/signing_server.py", "_stamp_all"),
    ("envelope seal", "transport/envelope.py", "seal_envelope"),
    ("envelope open", "transport/envelope.py", "open_envelope"),
    ("XSD validation", "xml/codec.py", "read_xml"),
    ("voucher XML (parse, build, canonical, checks)", "/xml/", ""),
    ("node audit chain (append, batched rows at commit)", "store/audit.py", ""),
    ("business hooks (quota, ledger, payee)", "/books/", ""),
    ("SQL commit", "sqlalchemy/engine/default.py", "do_commit"),
    ("SQL (SQLAlchemy + driver)", "sqlalchemy/", ""),
)
"""(label, path fragment, function or "" for any): the first that any frame matches wins. A
batch's stamps may be made on the signing server's threads: the main thread then waits in
``_stamp_all``, which counts as stamp signing."""
_XSD: Final = next(i for i, (label, *_) in enumerate(CATEGORIES) if label == "XSD validation")
_XSD_LINE: Final = "schema.validate("
"""XSD validation is a C call inside ``read_xml``: a sample counts only on that line."""
OTHER: Final = "other (library logic, flows, pumping)"
CRYPTO_FILE: Final = "security/crypto.py"


# --- one deployment, seen by the flows ------------------------------------------------------


@dataclass
class Bench:
    province: Province
    libraries: list[VoucherLibrary]
    trust: TrustStore
    payer: CorePayer
    day: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%d"))
    envelopes: Callable[[], int] = lambda: 0
    paid: int = 0

    def payment(self) -> Payment:
        self.paid += 1
        return Payment(
            C,
            f"FD{uuid.uuid4().hex[:8]}{self.paid:06d}",
            self.day,
            "U533103001",
            "芒市教育体育局",
            world.SCHOOL,
            Amount.parse(AMOUNT),
            "购买教学用品",
            world._funding(),
        )

    def pay(self, size: int) -> int:
        """``size`` direct payments end to end in one ``run_many``; returns the vouchers issued."""
        payments = [self.payment() for _ in range(size)]
        results = direct_payment.run_many(self.province, payments, FINANCE, BANK, PBOC, self.payer)
        for payment, result in zip(payments, results, strict=True):
            if not result.paid:
                raise RuntimeError(f"payment {payment.voucher_no} was not paid: {result.reason}")
        return sum(len(result.vouchers) for result in results)


def _payer() -> CorePayer:
    core: SimulatedCoreBanking = world._core()
    core.open_account(
        "9" + world.CLEARING,
        "基准测试清算户",
        "中国工商银行芒市支行",
        balance=Amount.parse(CLEARING_BALANCE),
    )
    return CorePayer(core, "9" + world.CLEARING)


@contextmanager
def embedded() -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="guoku-bench-") as tmp:
        ws: Workspace = create(Path(tmp) / "ws", datetime.now(UTC))
        try:
            province = EmbeddedProvince(ws)
            world.register_accounts(province)
            transport = ws.network.transport
            yield Bench(
                province,
                [n.library for n in ws.nodes.values()],
                ws.trust,
                _payer(),
                envelopes=lambda: transport.published,
            )
        finally:
            ws.close()


# --- recording and replaying the crypto -----------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One recorded call: replayable with the same inputs."""

    kind: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any
    weight: int = 1
    """Operations the call stands for: the stamps of a ``batch_seal_sign``, else 1."""


@dataclass
class Ops:
    """The crypto operations of one unit, with their inputs and results, replayable."""

    calls: list[Call] = field(default_factory=list)
    database: Counter[str] = field(default_factory=Counter)
    """SQL statements and transactions of this process's engines (not replayed)."""

    def add(self, kind: str, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.weighed(kind, 1, func, *args, **kwargs)

    def weighed(
        self, kind: str, weight: int, func: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        result = func(*args, **kwargs)
        self.calls.append(Call(kind, func, args, kwargs, result, weight))
        return result

    def counts(self) -> dict[str, int]:
        """Operations per kind: a batch call counts as many as it stands for."""
        counted: Counter[str] = Counter()
        for call in self.calls:
            counted[call.kind] += call.weight
        return dict(sorted(counted.items()))

    def calls_made(self) -> dict[str, int]:
        """Calls per kind: a batch call counts once."""
        return dict(sorted(Counter(call.kind for call in self.calls).items()))

    def stamps(self) -> Iterator[tuple[bytes, bytes]]:
        """(DER seal signature, stamped data) of every stamp made, each stamp of a batch too."""
        for call in self.calls:
            if call.kind == "personal_sign":
                yield call.result, call.args[0]
            elif call.kind == "seal_sign" and call.kwargs:
                yield call.result, call.kwargs["data"]
            elif call.kind == "seal_sign":
                requests: Sequence[SealRequest] = call.args[0]
                for der, request in zip(call.result, requests, strict=True):
                    yield der, request.data

    def replay(self, kinds: frozenset[str]) -> dict[str, float]:
        """Run the recorded calls of ``kinds`` again, each as it was made; seconds per kind."""
        spent: dict[str, float] = defaultdict(float)
        for call in self.calls:
            if call.kind in kinds:
                start = time.perf_counter()
                call.func(*call.args, **call.kwargs)
                spent[call.kind] += time.perf_counter() - start
        return spent


SEALING: Final = frozenset({"seal_sign", "personal_sign", "verify"})
ENVELOPES: Final = frozenset({"envelope_seal", "envelope_open"})


class _OfficialRecorder:
    """The sealer's signing client, recording its stamps (one call or a batch)."""

    def __init__(self, inner: Any, ops: Ops) -> None:
        self.inner, self.ops = inner, ops

    def seal_sign(self, **kwargs: Any) -> bytes:
        result: bytes = self.ops.add("seal_sign", self.inner.seal_sign, **kwargs)
        return result

    def batch_seal_sign(self, requests: Sequence[SealRequest]) -> list[bytes]:
        """Recorded as the ``seal_sign`` of ``len(requests)`` stamps, replayed as one batch."""
        items = tuple(requests)
        result: list[bytes] = self.ops.weighed(
            "seal_sign", len(items), self.inner.batch_seal_sign, items
        )
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _PersonalRecorder:
    def __init__(self, inner: Any, ops: Ops) -> None:
        self.inner, self.ops = inner, ops

    def seal_sign(self, data: bytes, now: datetime, property_info: str) -> bytes:
        result: bytes = self.ops.add(
            "personal_sign", self.inner.seal_sign, data, now, property_info
        )
        return result


@contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, saved)


@contextmanager
def recording(bench: Bench) -> Iterator[Ops]:
    """Record every seal signature, stamp verification and envelope of what runs inside."""
    ops = Ops()
    # the functions as defined; the sealer and the messenger call them by the names patched below
    verify, seal_env, open_env = (
        seals_module.verify_seal_signature,
        envelope_module.seal_envelope,
        envelope_module.open_envelope,
    )
    with ExitStack() as stack:
        for lib in bench.libraries:
            sealer = lib.sealer
            assert isinstance(sealer, sealing_module.VoucherSealer)
            personal = sealer.personal
            stack.enter_context(
                _patched(sealer, "official", _OfficialRecorder(sealer.official, ops))
            )
            stack.enter_context(
                _patched(
                    sealer, "personal", lambda user, p=personal: _PersonalRecorder(p(user), ops)
                )
            )
        stack.enter_context(
            _patched(
                sealing_module,
                "verify_seal_signature",
                lambda *a, **k: ops.add("verify", verify, *a, **k),
            )
        )
        stack.enter_context(
            _patched(
                messenger_module,
                "seal_envelope",
                lambda *a, **k: ops.add("envelope_seal", seal_env, *a, **k),
            )
        )
        stack.enter_context(
            _patched(
                messenger_module,
                "open_envelope",
                lambda *a, **k: ops.add("envelope_open", open_env, *a, **k),
            )
        )
        settle = bench.province.settle
        stack.enter_context(_patched(bench.province, "settle", lambda: ops.add("settle", settle)))
        for engine in {id(lib.engine): lib.engine for lib in bench.libraries}.values():
            stack.enter_context(
                _listening(
                    engine, "before_cursor_execute", lambda *_: ops.database.update(["statements"])
                )
            )
            stack.enter_context(
                _listening(engine, "begin", lambda *_: ops.database.update(["transactions"]))
            )
        yield ops


@contextmanager
def _listening(target: Any, name: str, listener: Callable[..., None]) -> Iterator[None]:
    event.listen(target, name, listener)
    try:
        yield
    finally:
        event.remove(target, name, listener)


# --- the profile --------------------------------------------------------------------------


class Sampler:
    """Samples the main thread's stack every :data:`SAMPLE_INTERVAL_S`; each sample weighs the
    time since the previous one (a C call holding the GIL is charged to its caller)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.crypto_s = 0.0
        self._rules: dict[CodeType, tuple[int, bool]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._main = threading.main_thread().ident

    def __enter__(self) -> Sampler:
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(SAMPLE_INTERVAL_S)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._switch)

    def _loop(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(SAMPLE_INTERVAL_S)
            frame = sys._current_frames().get(self._main or 0)
            now = time.perf_counter()
            label, crypto = self._classify(frame)
            self.seconds[label] += now - last
            self.crypto_s += (now - last) if crypto else 0.0
            last = now

    def _rule(self, code: CodeType) -> tuple[int, bool]:
        """(first category of this code object or len(CATEGORIES), is crypto primitives)."""
        found = self._rules.get(code)
        if found is None:
            path = code.co_filename.replace("\\", "/")
            index = next(
                (
                    i
                    for i, (_, where, func) in enumerate(CATEGORIES)
                    if where in path and func in ("", code.co_name)
                ),
                len(CATEGORIES),
            )
            found = self._rules[code] = (index, path.endswith(CRYPTO_FILE))
        return found

    def _classify(self, frame: FrameType | None) -> tuple[str, bool]:
        best, crypto = len(CATEGORIES), False
        while frame is not None:
            index, is_crypto = self._rule(frame.f_code)
            crypto = crypto or is_crypto
            if index < best and (
                index != _XSD
                or _XSD_LINE in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            ):
                best = index
            frame = frame.f_back
        return (CATEGORIES[best][0] if best < len(CATEGORIES) else OTHER), crypto

    def shares(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])
        return {label: round(s / total, 4) for label, s in ranked}


# --- measuring ------------------------------------------------------------------------------


def _per(counts: Mapping[str, int], size: int) -> dict[str, float]:
    return {kind: round(n / size, 3) for kind, n in counts.items()}


@dataclass
class Shape:
    """What one payment of a mode is made of, counted on its warm-up units."""

    vouchers: float
    envelopes: float
    ops: dict[str, float]
    """Operations per payment: a unit's count divided by its size."""
    calls: dict[str, int]
    """Recorded calls per unit: a ``batch_seal_sign`` is one ``seal_sign`` call."""
    database: dict[str, float]
    """SQL statements and transactions per payment (this process only: on ``pg`` the nodes'
    are not)."""
    stable: bool
    """Every warm-up unit after the first counted the same."""

    def to_json(self) -> dict[str, Any]:
        return {
            "vouchers": self.vouchers,
            "envelopes": self.envelopes,
            "operations": self.ops,
            "calls_per_unit": self.calls,
            "database": self.database,
            "counts_stable": self.stable,
        }


def warm_up(bench: Bench, size: int, warmup: int, verified_by_receivers: bool) -> tuple[Shape, Ops]:
    """Warm-up units of ``size`` payments, each recorded; the last one's shape and operations."""
    seen: list[tuple[int, int, dict[str, int], dict[str, int]]] = []
    for _ in range(max(warmup, 1)):
        before = bench.envelopes()
        with recording(bench) as ops:
            vouchers = bench.pay(size)
        if not verified_by_receivers:  # other processes verify: each stamp once, as embedded
            for der, data in list(ops.stamps()):
                ops.add("verify", _unchecked_verify, der, data, bench.trust)
        seen.append((vouchers, bench.envelopes() - before, ops.counts(), dict(ops.database)))
    vouchers, envelopes, counts, database = seen[-1]
    shape = Shape(
        round(vouchers / size, 3),
        round(envelopes / size, 3),
        _per(counts, size),
        ops.calls_made(),
        _per(database, size),
        all(s[:3] == seen[-1][:3] for s in seen[1:]),
    )
    return shape, ops


def _unchecked_verify(der: bytes, data: bytes, trust: TrustStore) -> object:
    """A receiver's verification of one stamp, as ``VoucherVerifier`` calls it."""
    return seals_module.verify_seal_signature(der, data, None, trust)


@dataclass
class Run:
    """The timed units of one mode, each followed by one unit's crypto replayed alone."""

    size: int
    unit_s: list[float] = field(default_factory=list)
    unit_cpu_s: list[float] = field(default_factory=list)
    vouchers: int = 0
    crypto_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    crypto_cpu_s: float = 0.0
    """CPU seconds of the sealing replay (signatures, USB stamps, verifications)."""

    def timed(self, bench: Bench, ops: Ops) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        self.vouchers += bench.pay(self.size)
        self.unit_s.append(time.perf_counter() - start)
        self.unit_cpu_s.append(time.process_time() - cpu)
        cpu = time.process_time()
        spent = ops.replay(SEALING)
        self.crypto_cpu_s += time.process_time() - cpu
        spent.update(ops.replay(ENVELOPES))
        for kind, seconds in spent.items():
            self.crypto_s[kind] += seconds

    def figures(self) -> dict[str, Any]:
        payments, total = len(self.unit_s) * self.size, sum(self.unit_s)
        sealing = sum(self.crypto_s.get(k, 0.0) for k in SEALING)
        envelopes = sum(self.crypto_s.get(k, 0.0) for k in ENVELOPES)
        figures: dict[str, Any] = {
            "payments": payments,
            "payments_per_s": round(payments / total, 3),
            "vouchers_per_s": round(self.vouchers / total, 2),
            "payment_ms_median": round(statistics.median(self.unit_s) * 1000 / self.size, 2),
            "payment_cpu_ms_median": round(
                statistics.median(self.unit_cpu_s) * 1000 / self.size, 2
            ),
            "crypto_ms_per_payment": {
                k: round(v * 1000 / payments, 2) for k, v in sorted(self.crypto_s.items())
            },
            "crypto_bound_payments_per_s": round(payments / sealing, 3),
            "ratio": round(sealing / total, 4),
            "ratio_cpu": round(self.crypto_cpu_s / sum(self.unit_cpu_s), 4),
        }
        if envelopes:
            figures["crypto_bound_with_envelopes_payments_per_s"] = round(
                payments / (sealing + envelopes), 3
            )
            figures["ratio_with_envelopes"] = round((sealing + envelopes) / total, 4)
        return figures


def interleaved(units: Mapping[str, int]) -> list[str]:
    """The modes' units in one order, each mode's spread evenly over the run (5 batch units
    and 20 single ones: a batch unit, then four single ones, and so on)."""
    slots = [
        ((i + 0.5) / n, order, mode)
        for order, (mode, n) in enumerate(units.items())
        for i in range(n)
    ]
    return [mode for *_, mode in sorted(slots)]


def profiled(bench: Bench, size: int, units: int) -> dict[str, Any]:
    with Sampler() as sampler:
        start = time.perf_counter()
        for _ in range(units):
            bench.pay(size)
        elapsed = time.perf_counter() - start
    return {
        "payments": size * units,
        "ms_per_payment": round(elapsed * 1000 / (size * units), 1),
        "shares": sampler.shares(),
        "crypto_primitives_share": round(
            sampler.crypto_s / (sum(sampler.seconds.values()) or 1.0), 4
        ),
    }


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def measure(
    bench: Bench, deployment: str, modes: Mapping[str, tuple[int, int]], warmup: int, profile: int
) -> dict[str, Any]:
    """``modes``: name -> (payments per unit, timed units); ``batch`` is the judged one."""
    recorded = {
        mode: warm_up(bench, size, warmup, verified_by_receivers=deployment == "embedded")
        for mode, (size, _) in modes.items()
    }
    runs = {mode: Run(size) for mode, (size, _) in modes.items()}
    for mode in interleaved({mode: units for mode, (_, units) in modes.items()}):
        runs[mode].timed(bench, recorded[mode][1])
    result: dict[str, Any] = {
        "bench": "flow_direct",
        "deployment": deployment,
        "warmup_units": warmup,
        "modes": {
            mode: {
                "payments_per_unit": size,
                "units": units,
                "per_payment": recorded[mode][0].to_json(),
                **runs[mode].figures(),
            }
            for mode, (size, units) in modes.items()
        },
    }
    judged = result["modes"]["batch"]["ratio"]
    result["target"] = {
        "ratio": TARGET_RATIO,
        "mode": "batch",
        "pass": judged >= TARGET_RATIO if deployment == "embedded" else None,
    }
    result["idle_settle_ms"] = round(
        statistics.median(_seconds(bench.province.settle) for _ in range(3)) * 1000, 1
    )
    if profile:
        result["profile"] = profiled(bench, modes["batch"][0], profile)
    return result


# --- PostgreSQL + RabbitMQ ------------------------------------------------------------------


@contextmanager
def deployed(pg_url: str, amqp_url: str) -> Iterator[Bench]:
    """A province of processes (``guoku.deploy.local``) in fresh schemas and queues; every
    cleanup step runs even when one before it fails (the broker may be restarting)."""
    from sqlalchemy import create_engine, text

    from guoku.deploy.local import LocalProvince
    from guoku.node.bootstrap import DEMO_SECRETS
    from guoku.province import demo_province
    from guoku.security.provision import provision
    from guoku.store.tables import outbox

    tag = uuid.uuid4().hex[:8]
    spec = demo_province()
    admin = create_engine(pg_url)
    schemas = {n.name: f"b_{tag}_{n.name.replace('-', '_')}" for n in spec.nodes}

    def drop_schemas() -> None:
        with admin.begin() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    with tempfile.TemporaryDirectory(prefix="guoku-bench-") as tmp, ExitStack() as cleanup:
        root = Path(tmp)
        provision(root / "security", spec, DEMO_SECRETS, datetime.now(UTC))
        cleanup.callback(drop_schemas)
        with admin.begin() as conn:
            for schema in schemas.values():
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in pg_url else "?"
        urls = {n: f"{pg_url}{sep}options=-csearch_path%3D{s}" for n, s in schemas.items()}
        province = LocalProvince(
            root / "security", spec, urls, amqp_url, f"guoku-bench-{tag}", root / "logs"
        )
        cleanup.callback(province.delete_queues)
        cleanup.callback(province.down)  # callbacks run last first: processes stop first
        province.up()
        world.register_accounts(province)
        engines = [a.node.engine for a in province.assembled.values()]

        def envelopes() -> int:
            total = 0
            for engine in engines:
                with engine.connect() as conn:
                    total += int(
                        conn.execute(
                            text(f"SELECT count(DISTINCT envelope_id) FROM {outbox.name}")
                        ).scalar_one()
                    )
            return total

        yield Bench(
            province,
            [a.node.library for a in province.assembled.values()],
            TrustStore.from_directory(root / "security" / "trust"),
            _payer(),
            envelopes=envelopes,
        )


# --- output ---------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    modes = result["modes"]
    print(
        f"deployment {result['deployment']}: {result['warmup_units']} recorded warm-up units "
        "per mode, then "
        + " and ".join(
            f"{m['units']} single payments"
            if m["payments_per_unit"] == 1
            else f"{m['units']} {name} units of {m['payments_per_unit']} payments"
            for name, m in modes.items()
        )
        + ", interleaved"
    )
    for name, figures in modes.items():
        _print_mode(name, figures)
    judged = result["target"]["pass"]
    others = ", ".join(f"{n} {m['ratio']:.1%}" for n, m in modes.items() if n != "batch")
    print(
        f"target: batch-mode ratio {modes['batch']['ratio']:.1%} >= {TARGET_RATIO:.0%} on the "
        "embedded deployment -> "
        + ("not judged on this deployment" if judged is None else "PASS" if judged else "FAIL")
        + (f"  (not judged: {others})" if others else "")
    )
    print(
        f"settling: an idle settle takes {result['idle_settle_ms']} ms "
        f"(settles per payment: "
        + ", ".join(
            f"{n} {m['per_payment']['operations'].get('settle', 0):g}" for n, m in modes.items()
        )
        + ")"
    )
    if "profile" in result:
        _print_profile(result["profile"])
    print(json.dumps(result, sort_keys=True, ensure_ascii=False))


def _print_mode(name: str, m: dict[str, Any]) -> None:
    shape = m["per_payment"]
    ops, calls = shape["operations"], shape["calls_per_unit"]
    print(
        f"mode {name} (run_many of {m['payments_per_unit']}): one payment = "
        f"{shape['vouchers']:g} vouchers, {shape['envelopes']:g} envelopes, "
        f"{ops.get('seal_sign', 0):g} signing-server stamps "
        f"({calls.get('seal_sign', 0)} signing-server calls per unit) + "
        f"{ops.get('personal_sign', 0):g} USB-key stamps, {ops.get('verify', 0):g} stamp "
        "verifications"
        + ("" if shape["counts_stable"] else " (counts varied between warm-up units)")
    )
    print(
        f"  database (this process) {shape['database'].get('statements', 0):g} SQL statements "
        f"in {shape['database'].get('transactions', 0):g} transactions per payment"
    )
    print(
        f"  end to end           {m['payments_per_s']:>8.2f} payments/s  "
        f"{m['vouchers_per_s']:>8.2f} vouchers/s  (median {m['payment_ms_median']} ms per "
        f"payment, {m['payment_cpu_ms_median']} ms of it CPU)"
    )
    crypto = ", ".join(f"{k} {v} ms" for k, v in m["crypto_ms_per_payment"].items())
    print(f"  crypto per payment   {crypto}")
    print(
        f"  crypto-bound limit   {m['crypto_bound_payments_per_s']:>8.2f} payments/s "
        "(the unit's seal_sign calls + USB stamps + verify_seal_signature alone, same inputs, "
        "same run)"
    )
    if "ratio_with_envelopes" in m:
        print(
            f"  with envelopes too   {m['crypto_bound_with_envelopes_payments_per_s']:>8.2f}"
            f" payments/s  (ratio {m['ratio_with_envelopes']:.1%})"
        )
    print(
        f"  ratio                {m['ratio']:.1%} of the crypto-bound limit  "
        f"(CPU time of this process alone: {m['ratio_cpu']:.1%})"
    )


def _print_profile(prof: dict[str, Any]) -> None:
    print(
        f"profile, {prof['payments']} more payments in batch units ({prof['ms_per_payment']} ms "
        "each while sampled), share of wall time:"
    )
    for label, share in prof["shares"].items():
        print(f"  {share:>6.1%}  {label}")
    print(f"  (of all of it, in SM2/SM3/SM4 primitives: {prof['crypto_primitives_share']:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench flow_direct",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        metavar="K",
        help=f"payments per batch unit (default {BATCH})",
    )
    parser.add_argument(
        "--count", type=int, default=COUNT, help=f"timed batch units (default {COUNT})"
    )
    parser.add_argument(
        "--single",
        type=int,
        default=SINGLE,
        metavar="N",
        help=f"timed single payments (default {SINGLE}; 0 = batch mode only)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP,
        help=f"recorded warm-up units per mode (default {WARMUP})",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=PROFILE_COUNT,
        metavar="N",
        help=f"sample N more batch units (default {PROFILE_COUNT}; 0 = off)",
    )
    parser.add_argument("--deployment", choices=("embedded", "pg"), default="embedded")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    if args.batch < 1 or args.count < 1 or args.single < 0 or args.warmup < 1 or args.profile < 0:
        parser.error("--batch, --count and --warmup must be at least 1, the others at least 0")
    modes = {"batch": (args.batch, args.count)}
    if args.single:
        modes["single"] = (1, args.single)
    total = sum(size * (units + args.warmup) for size, units in modes.values())
    if total + args.batch * args.profile > MAX_PAYMENTS:
        parser.error(f"a run of more than {MAX_PAYMENTS} payments (MAX_PAYMENTS): lower them")
    with ExitStack() as stack:
        if args.deployment == "pg":
            bench = stack.enter_context(deployed(args.pg_url, args.amqp_url))
        else:
            bench = stack.enter_context(embedded())
        report(measure(bench, args.deployment, modes, args.warmup, args.profile))


if __name__ == "__main__":
    main()
