"""Direct payments end to end per second, against the crypto-bound limit of the same run.

One payment is the whole of ``guoku.flows.direct_payment.run``: eight vouchers (5201, 5108,
9201, 2301, 9108, 9301 x2, 2208), each entered, reviewed, sealed, sent in an encrypted and
signed envelope, verified by the receiver, accepted, booked and receipted, on the embedded
deployment (every node in this process, SQLite files, ``guoku.workspace``).

The limit: the seal signatures and stamp verifications one payment needs are *counted* while
the warm-up payments run (the sealer's signing client and USB keys and the verifier's
``verify_seal_signature`` are wrapped, nothing else changes), then replayed alone with the very
inputs recorded — ``seal_sign`` through the same signing client, the personal stamps on the same
USB keys, ``verify_seal_signature`` against the same trust store. Each timed payment is followed
by one payment's worth of that replay, so load on a shared machine hits both alike. The ratio of
the two rates is the figure the target (at least 50%) is about. The same replay plus the
envelopes' crypto (each envelope sealed and opened again from the recorded inputs) gives a
second, stricter limit.

``--profile N`` samples where the time of N more payments goes (a stdlib sampler: stacks of the
main thread, time-weighted, each sample given to the first matching category of
:data:`CATEGORIES`, plus the time inside the code each prototype below removes).
``--what-if`` prototypes changes of ``src/`` by monkeypatching *this run only* (:data:`WHAT_IFS`)
and measures each, interleaved payment by payment, then a lock-step batch of ``--batch``
payments through the library's batch calls (:func:`pay_batch`); all are labelled ``what-if``
and none is what the product does. ``--deployment pg`` runs the same on PostgreSQL + RabbitMQ
with node and signing-server processes (``guoku.deploy.local``). Figures and the ranked list of
changes: docs/decisions/0014-flow-throughput.md.
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
from collections.abc import Callable, Iterator, Sequence
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
from guoku.flows import desk as desk_module
from guoku.flows import direct_payment
from guoku.flows.desk import Desk, Province, answer, payee_refusal
from guoku.flows.model import (
    DIRECT,
    Payment,
    answering_header,
    payment_details,
    payment_header,
    plan_details,
    plan_header,
    report_details,
)
from guoku.library import service as service_module
from guoku.library.service import VoucherLibrary
from guoku.security import sealing as sealing_module
from guoku.security import seals as seals_module
from guoku.security.certs import TrustStore
from guoku.store import audit as audit_module
from guoku.store import repository as repo
from guoku.transport import messenger as messenger_module
from guoku.workspace import EmbeddedProvince, Workspace, create

COUNT: Final = 20
WARMUP: Final = 3
PROFILE_COUNT: Final = 10
MAX_COUNT: Final = 400
"""``flows.desk.received`` finds a receiver's copy in the first 500 inbound vouchers of a type
(one page): past that many payments the flow itself would fail, so the bench stops short."""
TARGET_RATIO: Final = 0.5
AMOUNT: Final = "1.00"
CLEARING_BALANCE: Final = "10000000.00"
BATCH: Final = 20
SAMPLE_INTERVAL_S: Final = 0.0005
C = world.COUNTY
FINANCE, BANK, PBOC = Desk(f"F{C}", C, "fin"), Desk("B-ICBC", C, "icbc"), Desk("P530000", C, "pboc")

CATEGORIES: Final = (
    ("signing-server audit fsync", "security/signing_store.py", "_sync_to"),
    ("signing-server audit entry", "security/signing_store.py", "append"),
    ("certificate chains + CRLs", "security/certs.py", "validate"),
    ("stamp verification", "security/seals.py", "verify_seal_signature"),
    ("stamp signing", "security/seals.py", "sign_with_seal"),
    ("envelope seal", "transport/envelope.py", "seal_envelope"),
    ("envelope open", "transport/envelope.py", "open_envelope"),
    ("XSD validation", "xml/codec.py", "from_xml"),
    ("voucher XML (parse, build, canonical, checks)", "/xml/", ""),
    ("node audit chain append", "store/audit.py", "append"),
    ("business hooks (quota, ledger, payee)", "/books/", ""),
    ("SQL commit", "sqlalchemy/engine/default.py", "do_commit"),
    ("SQL (SQLAlchemy + sqlite3)", "sqlalchemy/", ""),
)
"""(label, path fragment, function or "" for any): the first that any frame matches wins."""
_XSD: Final = next(i for i, (label, *_) in enumerate(CATEGORIES) if label == "XSD validation")
_XSD_LINE: Final = "schema.validate("
"""XSD validation is a C call inside ``from_xml``: a sample counts only on that line."""
OTHER: Final = "other (library logic, flows, pumping)"
REMOVABLE: Final = (
    ("received_by_key", "flows/desk.py", "received", "", ""),
    ("no_audit_fsync", "security/signing_store.py", "_sync_to", "", ""),
    ("seal_cache", "security/seals.py", "_seal_from", "", ""),
    ("seal_cache", "security/seals.py", "verify_maker_signature", "", ""),
    ("crl_index", "security/certs.py", "_current_crl", "", ""),
    ("parse_once", "xml/codec.py", "from_xml", "_voucher", ""),
    ("prebuilt_audit_sql", "store/audit.py", "append", "", ""),
    ("cached_directory", "store/repository.py", "get_user", "", ""),
    ("cached_directory", "store/repository.py", "get_party", "", ""),
    ("poll_without_lock", "transport/messenger.py", "pending", "", "_seal"),
)
"""The code each what-if prototype removes or shrinks: (prototype, path fragment, function,
not when called by this function, not while this function runs further down the stack). The
share of samples inside it bounds the prototype's gain from above (``prebuilt_audit_sql``
keeps the hashing and the three statements: far less than its share)."""
CRYPTO_FILE: Final = "security/crypto.py"


# --- one deployment, seen by the flows ------------------------------------------------------


@dataclass
class Bench:
    province: Province
    libraries: list[VoucherLibrary]
    trust: TrustStore
    payer: CorePayer
    day: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%d"))
    signing: list[Any] = field(default_factory=list)
    """In-process signing services (embedded only): their audit logs."""
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

    def pay(self) -> int:
        """One direct payment end to end; returns the vouchers it issued."""
        payment = self.payment()
        result = direct_payment.run(self.province, payment, FINANCE, BANK, PBOC, self.payer)
        if not result.paid:
            raise RuntimeError(f"payment {payment.voucher_no} was not paid: {result.reason}")
        return len(result.vouchers)


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
                signing=ws.signing,
                envelopes=lambda: transport.published,
            )
        finally:
            ws.close()


# --- counting and replaying the crypto --------------------------------------------------------


@dataclass
class Ops:
    """The crypto operations of one payment, with their inputs and results, replayable."""

    calls: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any], Any]] = field(
        default_factory=list
    )
    database: Counter[str] = field(default_factory=Counter)
    """SQL statements and transactions of this process's engines (not replayed)."""

    def add(self, label: str, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        self.calls.append((label, func, args, kwargs, result))
        return result

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(kind for kind, *_ in self.calls).items()))

    def stamps(self) -> list[tuple[bytes, bytes]]:
        """(DER seal signature, stamped data) of every stamp made."""
        return [
            (result, kwargs["data"] if kind == "seal_sign" else args[0])
            for kind, _, args, kwargs, result in self.calls
            if kind in ("seal_sign", "personal_sign")
        ]

    def replay(self, kinds: frozenset[str]) -> dict[str, float]:
        """Run the recorded calls of ``kinds`` again; seconds per kind."""
        spent: dict[str, float] = defaultdict(float)
        for kind, func, args, kwargs, _ in self.calls:
            if kind in kinds:
                start = time.perf_counter()
                func(*args, **kwargs)
                spent[kind] += time.perf_counter() - start
        return spent


SEALING: Final = frozenset({"seal_sign", "personal_sign", "verify"})
ENVELOPES: Final = frozenset({"envelope_seal", "envelope_open"})


class _OfficialRecorder:
    def __init__(self, inner: Any, ops: Ops) -> None:
        self.inner, self.ops = inner, ops

    def seal_sign(self, **kwargs: Any) -> bytes:
        result: bytes = self.ops.add("seal_sign", self.inner.seal_sign, **kwargs)
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
    verify, seal_env, open_env = (
        sealing_module.verify_seal_signature,
        messenger_module.seal_envelope,
        messenger_module.open_envelope,
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
        self.removable: dict[str, float] = defaultdict(float)
        self._rules: dict[CodeType, tuple[int, bool, tuple[int, ...]]] = {}
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
            label, crypto, removable = self._classify(frame)
            self.seconds[label] += now - last
            self.crypto_s += (now - last) if crypto else 0.0
            for name in removable:
                self.removable[name] += now - last
            last = now

    def _rule(self, code: CodeType) -> tuple[int, bool, tuple[int, ...]]:
        """(first category of this code object or len(CATEGORIES), is crypto primitives,
        the :data:`REMOVABLE` rules it matches)."""
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
            removable = tuple(
                i
                for i, (_, where, func, _, _) in enumerate(REMOVABLE)
                if where in path and func == code.co_name
            )
            found = self._rules[code] = (index, path.endswith(CRYPTO_FILE), removable)
        return found

    def _classify(self, frame: FrameType | None) -> tuple[str, bool, set[str]]:
        best, crypto = len(CATEGORIES), False
        removable: set[str] = set()
        below: set[str] = set()  # functions nearer the leaf than the current frame
        while frame is not None:
            index, is_crypto, rules = self._rule(frame.f_code)
            crypto = crypto or is_crypto
            for rule in rules:
                name, _, _, unless_caller, unless_below = REMOVABLE[rule]
                caller = frame.f_back.f_code.co_name if frame.f_back else ""
                if caller != unless_caller and unless_below not in below:
                    removable.add(name)
            below.add(frame.f_code.co_name)
            if index < best and (
                index != _XSD
                or _XSD_LINE in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            ):
                best = index
            frame = frame.f_back
        return (CATEGORIES[best][0] if best < len(CATEGORIES) else OTHER), crypto, removable

    def removable_shares(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        return {name: round(self.removable.get(name, 0.0) / total, 4) for name in WHAT_IFS}

    def shares(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])
        return {label: round(s / total, 4) for label, s in ranked}


# --- what-if prototypes (this run only; src/ is not changed) --------------------------------


@contextmanager
def no_audit_fsync(bench: Bench) -> Iterator[None]:
    """Signing-server audit entries without one fsync each (a group-commit flusher would do)."""
    with ExitStack() as stack:
        for log in (service._audit for service in bench.signing):
            stack.enter_context(_patched(log, "_sync", False))
        yield


@contextmanager
def seal_cache(_: Bench) -> Iterator[None]:
    """Parse an embedded seal and verify its maker's signature once per seal DER."""
    parse, maker = seals_module._seal_from, seals_module.Seal.verify_maker_signature
    parsed: dict[bytes, seals_module.Seal] = {}
    verified: set[bytes] = set()

    def parse_once(value: Any) -> seals_module.Seal:
        der = value.dump()
        if der not in parsed:
            parsed[der] = parse(value)
        return parsed[der]

    def maker_once(seal: seals_module.Seal) -> None:
        if seal.der not in verified:
            maker(seal)
            verified.add(seal.der)

    with (
        _patched(seals_module, "_seal_from", parse_once),
        _patched(seals_module.Seal, "verify_maker_signature", maker_once),
    ):
        yield


@contextmanager
def crl_index(_: Bench) -> Iterator[None]:
    """The newest CRL per issuer remembered, instead of comparing every CRL's issuer name."""
    current = TrustStore._current_crl
    best: dict[tuple[int, str], Any] = {}

    def remembered(store: TrustStore, issuer: Any, at: datetime) -> Any:
        key = (id(store), issuer.fingerprint)
        crl = best.get(key)
        if crl is None or crl.next_update is None or crl.next_update < at:
            crl = best[key] = current(store, issuer, at)
        return crl

    with _patched(TrustStore, "_current_crl", remembered):
        yield


@contextmanager
def received_by_key(_: Bench) -> Iterator[None]:
    """``flows.desk.received`` by the voucher's key (an index lookup), not a 500-row page."""

    def by_key(province: Province, desk: Desk, sent: repo.VoucherRow) -> repo.VoucherRow:
        with province.library(desk.party).engine.connect() as conn:
            row = repo.find_voucher(
                conn, sent.admdiv, sent.st_year, sent.vt_code, sent.voucher_no, sent.version, "in"
            )
        if row is None:
            raise RuntimeError(f"{desk.party} has not received {sent.ref}")
        return row

    with _patched(desk_module, "received", by_key):
        yield


@contextmanager
def parse_once(_: Bench) -> Iterator[None]:
    """A node parses and XSD-checks a voucher's XML once: when it writes it (``to_xml``) or
    receives it (``from_xml`` in the inbound path, untouched). Its own later reads of the stored
    bytes — sealing, the ledger, payee and quota hooks — reuse that document."""
    from guoku.books import ledger, payee_hooks, quota_hooks
    from guoku.library import inbound

    to_xml, from_xml = service_module.to_xml, inbound.from_xml
    known: dict[bytes, Any] = {}

    def remember(data: bytes, doc: Any) -> None:
        if len(known) >= 4096:
            known.clear()
        known[data] = doc

    def written(doc: Any) -> bytes:
        data: bytes = to_xml(doc)
        remember(data, doc)
        return data

    def received(data: bytes) -> Any:
        doc = from_xml(data)
        remember(data, doc)
        return doc

    def stored(data: bytes) -> Any:
        return known.get(data) or from_xml(data)

    with ExitStack() as stack:
        stack.enter_context(_patched(service_module, "to_xml", written))
        stack.enter_context(_patched(inbound, "from_xml", received))
        for module in (service_module, ledger, payee_hooks, quota_hooks):
            stack.enter_context(_patched(module, "from_xml", stored))
        yield


@contextmanager
def prebuilt_audit_sql(_: Bench) -> Iterator[None]:
    """The node audit append with statements built once and values passed as parameters
    (SQLAlchemy then reuses the compiled form instead of coercing ``.values(**kw)`` anew)."""
    from sqlalchemy import bindparam, insert, select, update

    from guoku.domain.audit import AuditEntry, entry_hash
    from guoku.security.crypto import sm3
    from guoku.store.tables import audit_head, audit_log

    head_q = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    insert_q = insert(audit_log)
    update_q = (
        update(audit_head)
        .where(audit_head.c.id == 1)
        .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
    )

    def append(conn: Any, **values: Any) -> Any:
        head = conn.execute(head_q.with_for_update()).one()
        entry = AuditEntry(
            seq=int(head.seq) + 1,
            admdiv=values["admdiv"],
            at=values["at"],
            actor=values["actor"],
            post=values.get("post"),
            action=values["action"],
            voucher_ref=values.get("voucher_ref"),
            state_before=values.get("state_before"),
            state_after=values.get("state_after"),
            outcome=values.get("outcome", "ok"),
            detail=json.dumps(dict(values.get("detail") or {}), sort_keys=True, ensure_ascii=False),
        )
        digest = entry_hash(entry, head.hash, sm3)
        conn.execute(
            insert_q,
            {
                **{k: getattr(entry, k) for k in entry.__dataclass_fields__},
                "prev_hash": head.hash,
                "hash": digest,
            },
        )
        conn.execute(update_q, {"new_seq": entry.seq, "new_hash": digest})
        return entry

    with _patched(audit_module, "append", append):
        yield


@contextmanager
def poll_without_lock(_: Bench) -> Iterator[None]:
    """``Messenger.pending`` first asks, outside any transaction, whether anything waits in the
    outbox; an idle poll then costs one SELECT instead of BEGIN IMMEDIATE (the write lock),
    SELECT and ROLLBACK."""
    pending = messenger_module.Messenger.pending

    def polled(messenger: messenger_module.Messenger, limit: int = 20) -> Any:
        raw = messenger.library.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 1")
            waiting = cursor.fetchone() is not None
            cursor.close()
        finally:
            raw.close()
        return pending(messenger, limit) if waiting else []

    with _patched(messenger_module.Messenger, "pending", polled):
        yield


@contextmanager
def cached_directory(_: Bench) -> Iterator[None]:
    """Parties and users (with their posts) read once per process instead of three SELECTs per
    library call and one per hook; a real cache needs invalidation when an admin changes them."""
    get_party, get_user = repo.get_party, repo.get_user
    parties: dict[tuple[int, str], Any] = {}
    users: dict[tuple[int, str], Any] = {}

    def party(conn: Any, code: str) -> Any:
        key = (id(conn.engine), code)
        if key not in parties:
            parties[key] = get_party(conn, code)
        return parties[key]

    def user(conn: Any, username: str) -> Any:
        key = (id(conn.engine), username)
        if key not in users:
            users[key] = get_user(conn, username)
        return users[key]

    with _patched(repo, "get_party", party), _patched(repo, "get_user", user):
        yield


def pay_batch(bench: Bench, size: int) -> int:
    """What-if: ``size`` direct payments in lock step — the steps of ``direct_payment.run``,
    each done for the whole batch with the library's batch calls (create_many, check_many,
    seal_many, send_many) and one settle per step. Returns the vouchers issued."""
    province, payments = bench.province, [bench.payment() for _ in range(size)]

    def issue_all(
        desk: Desk,
        vt_code: str,
        receiver: str,
        entries: list[tuple[dict[str, str], Sequence[dict[str, str]]]],
    ) -> list[Any]:
        lib = province.library(desk.party)
        rows = lib.create_many(desk.entry, vt_code, entries, receiver=receiver)
        ids = [r.id for r in rows]
        lib.check_many(desk.review, ids)
        lib.seal_many(desk.sealer, ids)
        return lib.send_many(desk.sealer, ids)

    vouchers = issue_all(
        FINANCE,
        "5201",
        BANK.party,
        [(payment_header(p, "5201", DIRECT), payment_details(p)) for p in payments],
    )
    quotas = issue_all(
        FINANCE,
        "5108",
        PBOC.party,
        [(plan_header(p, "5108", f"5108-{p.voucher_no}"), plan_details(p)) for p in payments],
    )
    province.settle()
    paid = []
    for p, voucher in zip(payments, vouchers, strict=True):
        if payee_refusal(province, BANK, voucher) is not None:
            raise RuntimeError(f"payee check refused {p.voucher_no}")
        outcome = bench.payer.pay(voucher.ref, p.payee.account_no, p.payee.name, p.amount)
        if not outcome.paid:
            raise RuntimeError(f"payment {p.voucher_no} was not paid: {outcome.reason}")
        answer(province, BANK, voucher)
        paid.append(
            {
                "XPayAmt": p.amount.wire(),
                "XPayDate": p.vou_date,
                "XAgentBusinessNo": outcome.business_no,
            }
        )
    receipts = issue_all(
        BANK,
        "9201",
        FINANCE.party,
        [
            (answering_header(v, p, "9201", p.vou_date, **x), ())
            for p, v, x in zip(payments, vouchers, paid, strict=True)
        ],
    )
    transfers = issue_all(
        BANK,
        "2301",
        PBOC.party,
        [
            (answering_header(v, p, "2301", p.vou_date), report_details([v], p.unit_code))
            for p, v in zip(payments, vouchers, strict=True)
        ],
    )
    province.settle()
    for quota, transfer in zip(quotas, transfers, strict=True):
        answer(province, PBOC, quota)
        answer(province, PBOC, transfer)
    notices = issue_all(
        PBOC,
        "9108",
        FINANCE.party,
        [
            (answering_header(q, p, "9108", p.vou_date), ())
            for p, q in zip(payments, quotas, strict=True)
        ],
    )
    to = {}
    for receiver in (FINANCE.party, BANK.party):
        entries = []
        for p, t in zip(payments, transfers, strict=True):
            header = answering_header(t, p, "9301", p.vou_date)
            header["VoucherNo"] = f"9301-{receiver}-{t.voucher_no}"[:42]
            entries.append((header, ()))
        to[receiver] = issue_all(PBOC, "9301", receiver, entries)
    province.settle()
    for receipt in to[BANK.party]:
        answer(province, BANK, receipt)
    credits = issue_all(
        BANK,
        "2208",
        FINANCE.party,
        [
            (answering_header(v, p, "2208", p.vou_date, **x), ())
            for p, v, x in zip(payments, vouchers, paid, strict=True)
        ],
    )
    province.settle()
    for row in (*receipts, *notices, *to[FINANCE.party], *credits):
        answer(province, FINANCE, row)
    province.settle()
    return 8 * size


WHAT_IFS: Final[dict[str, Callable[[Bench], Any]]] = {
    "received_by_key": received_by_key,
    "no_audit_fsync": no_audit_fsync,
    "seal_cache": seal_cache,
    "crl_index": crl_index,
    "parse_once": parse_once,
    "prebuilt_audit_sql": prebuilt_audit_sql,
    "cached_directory": cached_directory,
    "poll_without_lock": poll_without_lock,
}
"""First ``received_by_key``: the others are measured on top of it."""


@contextmanager
def applied(bench: Bench, names: Sequence[str]) -> Iterator[None]:
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(WHAT_IFS[name](bench))
        yield


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Shape:
    """What one payment is made of, counted on the warm-up payments."""

    vouchers: int
    envelopes: int
    ops: dict[str, int]
    database: dict[str, int]
    """SQL statements and transactions (this process only: on ``pg`` the nodes' are not)."""
    stable: bool
    """Every warm-up payment after the first counted the same."""


def warm_up(bench: Bench, warmup: int, verified_by_receivers: bool) -> tuple[Shape, Ops]:
    """Warm-up payments, each recorded; returns the last one's shape and operations."""
    shapes: list[tuple[int, int, dict[str, int], dict[str, int]]] = []
    for _ in range(max(warmup, 1)):
        before = bench.envelopes()
        with recording(bench) as ops:
            vouchers = bench.pay()
        if not verified_by_receivers:  # other processes verify: each stamp once, as embedded
            for der, data in ops.stamps():
                ops.calls.append(
                    (
                        "verify",
                        seals_module.verify_seal_signature,
                        (der, data, None, bench.trust),
                        {},
                        None,
                    )
                )
        shapes.append((vouchers, bench.envelopes() - before, ops.counts(), dict(ops.database)))
    vouchers, envelopes, counts, database = shapes[-1]
    return Shape(
        vouchers, envelopes, counts, database, all(s[:3] == shapes[-1][:3] for s in shapes[1:])
    ), ops


@dataclass
class Run:
    payment_s: list[float] = field(default_factory=list)
    payment_cpu_s: list[float] = field(default_factory=list)
    vouchers: int = 0
    crypto_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    crypto_cpu_s: float = 0.0
    """CPU seconds of the sealing replay (signatures, USB stamps, verifications)."""

    def figures(self) -> dict[str, Any]:
        count, total = len(self.payment_s), sum(self.payment_s)
        sealing = sum(self.crypto_s.get(k, 0.0) for k in SEALING)
        envelopes = sum(self.crypto_s.get(k, 0.0) for k in ENVELOPES)
        figures: dict[str, Any] = {
            "payments": count,
            "payments_per_s": round(count / total, 3),
            "vouchers_per_s": round(self.vouchers / total, 2),
            "payment_ms_median": round(statistics.median(self.payment_s) * 1000, 1),
            "payment_cpu_ms_median": round(statistics.median(self.payment_cpu_s) * 1000, 1),
            "crypto_ms_per_payment": {
                k: round(v * 1000 / count, 2) for k, v in sorted(self.crypto_s.items())
            },
            "crypto_bound_payments_per_s": round(count / sealing, 3),
            "ratio": round(sealing / total, 4),
            "ratio_cpu": round(self.crypto_cpu_s / sum(self.payment_cpu_s), 4),
        }
        if envelopes:
            figures["crypto_bound_with_envelopes_payments_per_s"] = round(
                count / (sealing + envelopes), 3
            )
            figures["ratio_with_envelopes"] = round((sealing + envelopes) / total, 4)
        return figures


def timed_payment(bench: Bench, ops: Ops, run: Run) -> None:
    """One payment, then one payment's worth of its crypto alone."""
    start, cpu = time.perf_counter(), time.process_time()
    run.vouchers += bench.pay()
    run.payment_s.append(time.perf_counter() - start)
    run.payment_cpu_s.append(time.process_time() - cpu)
    cpu = time.process_time()
    spent = ops.replay(SEALING)
    run.crypto_cpu_s += time.process_time() - cpu
    spent.update(ops.replay(ENVELOPES))
    for kind, seconds in spent.items():
        run.crypto_s[kind] += seconds


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def batched(bench: Bench, ops: Ops, size: int, names: Sequence[str]) -> dict[str, Any]:
    """:func:`pay_batch` of ``size`` payments under every prototype, against the same limit."""
    with applied(bench, names):
        pay_batch(bench, 2)  # warm: the batch calls' code paths
        before = bench.envelopes()
        start, cpu = time.perf_counter(), time.process_time()
        vouchers = pay_batch(bench, size)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        envelopes = bench.envelopes() - before
        start, crypto_cpu = time.perf_counter(), time.process_time()
        for _ in range(size):
            ops.replay(SEALING)
        crypto, crypto_cpu = time.perf_counter() - start, time.process_time() - crypto_cpu
    return {
        "payments": size,
        "payments_per_s": round(size / wall, 3),
        "vouchers_per_s": round(vouchers / wall, 2),
        "envelopes_per_payment": round(envelopes / size, 2),
        "crypto_bound_payments_per_s": round(size / crypto, 3),
        "ratio": round(crypto / wall, 4),
        "ratio_cpu": round(crypto_cpu / cpu, 4),
    }


def what_if(
    bench: Bench, ops: Ops, count: int, names: Sequence[str], batch: int, profile: int
) -> dict[str, Any]:
    """The prototypes, round-robin payment by payment: ``received_by_key`` (a bug fix: the
    unfixed lookup grows with every payment) against the unpatched code, every other one on top
    of it, then all together; a lock-step batch and a profile under all of them."""
    first = names[0]
    scenarios: dict[str, tuple[tuple[str, ...], str]] = {
        "baseline": ((), "baseline"),
        first: ((first,), "baseline"),
    }
    scenarios.update({name: ((first, name), first) for name in names[1:]})
    scenarios["all"] = (tuple(names), "baseline")
    runs = {name: Run() for name in scenarios}
    for _ in range(count):
        for name, (patches, _) in scenarios.items():
            with applied(bench, patches):
                timed_payment(bench, ops, runs[name])
    result: dict[str, Any] = {}
    for name, run in runs.items():
        base = runs[scenarios[name][1]]
        figures = run.figures()
        figures["relative_to"] = scenarios[name][1]
        figures["speedup_median"] = round(
            statistics.median(base.payment_s) / statistics.median(run.payment_s), 2
        )
        figures["speedup_cpu_median"] = round(
            statistics.median(base.payment_cpu_s) / statistics.median(run.payment_cpu_s), 2
        )
        result[name] = figures
    if batch:
        result["batched"] = batched(bench, ops, batch, names)
    if profile:
        with applied(bench, names):
            result["profile_all"] = profiled(bench, profile)
    return result


def profiled(bench: Bench, count: int) -> dict[str, Any]:
    with Sampler() as sampler:
        start = time.perf_counter()
        for _ in range(count):
            bench.pay()
        elapsed = time.perf_counter() - start
    return {
        "payments": count,
        "ms_per_payment": round(elapsed * 1000 / count, 1),
        "shares": sampler.shares(),
        "removable_shares": sampler.removable_shares(),
        "crypto_primitives_share": round(
            sampler.crypto_s / (sum(sampler.seconds.values()) or 1.0), 4
        ),
    }


def measure(
    bench: Bench,
    deployment: str,
    count: int,
    warmup: int,
    profile: int,
    what_ifs: Sequence[str],
    batch: int = 0,
) -> dict[str, Any]:
    shape, ops = warm_up(bench, warmup, verified_by_receivers=deployment == "embedded")
    run = Run()
    for _ in range(count):
        timed_payment(bench, ops, run)
    result: dict[str, Any] = {
        "bench": "flow_direct",
        "deployment": deployment,
        "count": count,
        "warmup": warmup,
        "per_payment": {
            "vouchers": shape.vouchers,
            "envelopes": shape.envelopes,
            "operations": shape.ops,
            "database": shape.database,
            "counts_stable": shape.stable,
        },
        **run.figures(),
    }
    result["target"] = {
        "ratio": TARGET_RATIO,
        "pass": result["ratio"] >= TARGET_RATIO if deployment == "embedded" else None,
    }
    result["idle_settle_ms"] = round(
        statistics.median(_seconds(bench.province.settle) for _ in range(3)) * 1000, 1
    )
    if profile:
        result["profile"] = profiled(bench, profile)
    if what_ifs:
        result["what_if"] = what_if(bench, ops, count, what_ifs, batch, profile)
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
    shape = result["per_payment"]
    ops = shape["operations"]
    print(
        f"deployment {result['deployment']}: {result['count']} direct payments after "
        f"{result['warmup']} warm-up; one payment = {shape['vouchers']} vouchers, "
        f"{shape['envelopes']} envelopes, "
        f"{ops.get('seal_sign', 0)} signing-server stamps + {ops.get('personal_sign', 0)} "
        f"USB-key stamps, {ops.get('verify', 0)} stamp verifications"
        + ("" if shape["counts_stable"] else " (counts varied between warm-up payments)")
    )
    print(
        f"  database (this process) {shape['database'].get('statements', 0)} SQL statements in "
        f"{shape['database'].get('transactions', 0)} transactions per payment"
    )
    print(
        f"  end to end           {result['payments_per_s']:>8.2f} payments/s  "
        f"{result['vouchers_per_s']:>8.2f} vouchers/s  (median {result['payment_ms_median']} "
        f"ms per payment, {result['payment_cpu_ms_median']} ms of it CPU)"
    )
    crypto = ", ".join(f"{k} {v} ms" for k, v in result["crypto_ms_per_payment"].items())
    print(f"  crypto per payment   {crypto}")
    print(
        f"  crypto-bound limit   {result['crypto_bound_payments_per_s']:>8.2f} payments/s "
        "(seal_sign + USB stamps + verify_seal_signature alone, same inputs, same run)"
    )
    if "ratio_with_envelopes" in result:
        print(
            f"  with envelopes too   {result['crypto_bound_with_envelopes_payments_per_s']:>8.2f}"
            f" payments/s  (ratio {result['ratio_with_envelopes']:.1%})"
        )
    verdict = {True: "PASS", False: "FAIL", None: "(not judged here)"}[result["target"]["pass"]]
    print(
        f"  ratio                {result['ratio']:.1%} of the crypto-bound limit  "
        f"target: >= {TARGET_RATIO:.0%} on the embedded deployment -> {verdict}  "
        f"(CPU time of this process alone: {result['ratio_cpu']:.1%})"
    )
    print(
        f"  settling             {ops.get('settle', 0)} settles per payment; an idle settle "
        f"takes {result['idle_settle_ms']} ms"
    )
    if "profile" in result:
        _print_profile("", result["profile"])
    if "what_if" in result:
        print(
            "what-if (prototypes monkeypatched in this run only; src/ unchanged): median "
            "speedup wall / CPU against the scenario named, limit and ratio under the same "
            "patches:"
        )
    for name, fig in result.get("what_if", {}).items():
        if name == "batched":
            print(
                f"  what-if batched: {fig['payments']} payments in lock step with the batch "
                f"calls, every prototype on: {fig['payments_per_s']:.2f} payments/s, "
                f"{fig['envelopes_per_payment']} envelopes per payment, limit "
                f"{fig['crypto_bound_payments_per_s']:.2f}, ratio {fig['ratio']:.1%} "
                f"(CPU {fig['ratio_cpu']:.1%})"
            )
        elif name == "profile_all":
            _print_profile("with every prototype on, ", fig)
        else:
            print(
                f"  what-if {name:18} {fig['payments_per_s']:>6.2f} payments/s  "
                f"{fig['speedup_median']:>4.2f}x / {fig['speedup_cpu_median']:>4.2f}x vs "
                f"{fig['relative_to']:16} limit {fig['crypto_bound_payments_per_s']:>6.2f}  "
                f"ratio {fig['ratio']:.1%}  with envelopes "
                f"{fig.get('ratio_with_envelopes', 0):.1%}"
            )
    print(json.dumps(result, sort_keys=True, ensure_ascii=False))


def _print_profile(context: str, prof: dict[str, Any]) -> None:
    print(
        f"profile, {context}{prof['payments']} more payments ({prof['ms_per_payment']} ms each "
        "while sampled), share of wall time:"
    )
    for label, share in prof["shares"].items():
        print(f"  {share:>6.1%}  {label}")
    print(f"  (of all of it, in SM2/SM3/SM4 primitives: {prof['crypto_primitives_share']:.1%})")
    if not context:  # under the prototypes the code they replace no longer runs
        removable = ", ".join(f"{k} {v:.1%}" for k, v in prof["removable_shares"].items())
        print(f"  inside the code each what-if prototype removes (bounds its gain): {removable}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench flow_direct",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=COUNT, help=f"payments (default {COUNT})")
    parser.add_argument(
        "--warmup", type=int, default=WARMUP, help=f"warm-up payments, recorded (default {WARMUP})"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=PROFILE_COUNT,
        metavar="N",
        help=f"sample N more payments (default {PROFILE_COUNT}; 0 = off)",
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="measure the prototypes of WHAT_IFS (monkeypatched, this run only)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        metavar="K",
        help=f"with --what-if: also K payments in lock step (default {BATCH})",
    )
    parser.add_argument("--deployment", choices=("embedded", "pg"), default="embedded")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    if not 0 < args.count <= MAX_COUNT or args.warmup + args.count + args.profile > MAX_COUNT:
        parser.error(
            f"count, warm-up and profile payments together must stay within "
            f"{MAX_COUNT} (see MAX_COUNT)"
        )
    if args.deployment == "pg":
        if args.what_if:
            parser.error("--what-if patches in-process code: embedded deployment only")
        with deployed(args.pg_url, args.amqp_url) as bench:
            report(measure(bench, "pg", args.count, args.warmup, args.profile, ()))
        return
    names = tuple(WHAT_IFS) if args.what_if else ()
    extra = args.count * (len(names) + 2) + args.batch + 2 + args.profile if args.what_if else 0
    if args.warmup + args.count + args.profile + extra > MAX_COUNT:
        parser.error(
            f"--what-if runs {len(names) + 2} more payments per --count and --batch "
            f"more: lower them (see MAX_COUNT)"
        )
    with embedded() as bench:
        report(
            measure(
                bench,
                "embedded",
                args.count,
                args.warmup,
                args.profile,
                names,
                args.batch if args.what_if else 0,
            )
        )


if __name__ == "__main__":
    main()
