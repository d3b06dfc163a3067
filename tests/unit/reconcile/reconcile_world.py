"""A small province for the reconciliation engine: finance, bank and treasury nodes, each its own
SQLite file or PostgreSQL schema, filled row by row with what the flows would leave behind.

The ``world`` fixture (registered in this directory's conftest) is parametrized: SQLite
(streaming merge), PostgreSQL with the streaming merge, and PostgreSQL with the sides joined in
SQL — every test that takes it runs on all three.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, insert, text, update
from sqlalchemy.pool import NullPool

from guoku.reconcile import Break, layer1, layer2, layer3
from guoku.store.engine import make_engine
from guoku.store.tables import admdivs, ledger_entries, metadata, parties, voucher_events, vouchers

ADMDIV = "533103"
DAY = "20240615"
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
OLD = "2024-06-15T08:00:00.000000Z"
"""Four hours before NOW: past any grace period."""
RECENT = "2024-06-15T11:58:00.000000Z"
"""Two minutes before NOW: within the default grace period."""
FIN, UNIT, BANK, PBOC = "F533103", "U533103001", "B-ICBC", "P530000"
FUND = "1"
KINDS = {FIN: "finance", UNIT: "unit", BANK: "bank", PBOC: "pboc"}
TABLES = [admdivs, parties, vouchers, voucher_events, ledger_entries]


@dataclass
class Node:
    engine: Engine
    parties: tuple[str, ...]

    def run(self, stmt: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def voucher(self, vt: str, no: str, direction: str, state: str, amount: int, sender: str,
                receiver: str, *, version: int = 1, day: str = DAY,
                updated: str = OLD) -> str:
        self.run(insert(vouchers).values(
            admdiv=ADMDIV, st_year=int(day[:4]), vt_code=vt, voucher_no=no, version=version,
            direction=direction, state=state, amount_fen=amount, vou_date=day,
            sender_party=sender, receiver_party=receiver, xml=b"<v/>", print_count=0,
            is_current=True, created_at=updated, updated_at=updated))
        return f"{vt}/{day[:4]}/{no}/v{version}"

    def post(self, party: str, account: str, ref: str, amount: int, *, day: str = DAY,
             agency: str = UNIT) -> None:
        self.run(insert(ledger_entries).values(
            admdiv=ADMDIV, party=party, account=account, agency_code=agency, fund_type=FUND,
            exp_func="2050202", day=day, amount_fen=amount, voucher_ref=ref, at=OLD))

    def set_voucher(self, no: str, **values: Any) -> None:
        self.run(update(vouchers).where(vouchers.c.voucher_no == no).values(**values))

    def drop_voucher(self, no: str) -> None:
        self.run(delete(vouchers).where(vouchers.c.voucher_no == no))

    def set_posting(self, ref: str, **values: Any) -> None:
        self.run(update(ledger_entries).where(ledger_entries.c.voucher_ref == ref)
                 .values(**values))

    def drop_posting(self, ref: str) -> None:
        self.run(delete(ledger_entries).where(ledger_entries.c.voucher_ref == ref))


@dataclass
class World:
    finance: Node
    bank: Node
    pboc: Node
    method: str
    backend: str
    databases: Databases

    # --- what the flows leave behind -------------------------------------------------------

    def pay(self, no: str, amount: int, vt: str = "8202") -> str:
        """A payment accepted and paid, applied for, cleared and receipted (5.1 / 5.2)."""
        payer = UNIT if vt == "8202" else FIN
        account = "authorized_paid" if vt == "8202" else "direct_paid"
        ref = self.finance.voucher(vt, no, "out", "accepted", amount, payer, BANK)
        self.finance.post(payer, account, ref, amount)
        self.bank.voucher(vt, no, "in", "accepted", amount, payer, BANK)
        self.bank.post(BANK, "advanced", ref, amount)
        self.clear(no, amount)
        return ref

    def clear(self, no: str, amount: int) -> None:
        """The bank's transfer application for payment ``no``, cleared and receipted."""
        transfer = self.bank.voucher("2301", f"2301-{no}", "out", "accepted", amount, BANK, PBOC)
        self.pboc.voucher("2301", f"2301-{no}", "in", "accepted", amount, BANK, PBOC)
        self.pboc.post(PBOC, "cleared", transfer, amount, agency="")
        receipt = self.pboc.voucher("9301", f"9301-{no}", "out", "accepted", amount, PBOC, BANK)
        self.bank.voucher("9301", f"9301-{no}", "in", "accepted", amount, PBOC, BANK)
        self.bank.post(BANK, "reimbursed", receipt, amount, agency="")

    def quota(self, no: str, amount: int) -> str:
        ref = self.finance.voucher("5102", no, "out", "accepted", amount, FIN, BANK)
        self.finance.post(FIN, "quota_issued", ref, amount)
        self.bank.voucher("5102", no, "in", "accepted", amount, FIN, BANK)
        return ref

    def allocate(self, no: str, amount: int) -> str:
        ref = self.finance.voucher("5207", no, "out", "accepted", amount, FIN, PBOC)
        self.finance.post(FIN, "allocated", ref, amount)
        self.pboc.voucher("5207", no, "in", "accepted", amount, FIN, PBOC)
        self.pboc.post(PBOC, "allocated", ref, amount)
        return ref

    def refund(self, no: str, amount: int, vt: str = "8202") -> tuple[str, str]:
        """Payment ``no`` paid (:meth:`pay`), then its money back (5.1 / 5.2 refunds): the
        bank's refund application 2302 accepted by the treasury and receipted (9302), then
        the bank's refund notice (2204 authorized, 2203 direct) received by finance. Returns
        the refs of the application and of the notice."""
        self.pay(no, amount, vt)
        application = self.bank.voucher("2302", f"2302-{no}", "out", "accepted", amount, BANK,
                                        PBOC)
        self.pboc.voucher("2302", f"2302-{no}", "in", "accepted", amount, BANK, PBOC)
        self.bank.post(BANK, "refund_returned", application, amount, agency="")
        self.pboc.post(PBOC, "refund_received", application, amount, agency="")
        for receiver, node in ((BANK, self.bank), (FIN, self.finance)):
            number = f"9302-{receiver}-{no}"
            self.pboc.voucher("9302", number, "out", "accepted", amount, PBOC, receiver)
            node.voucher("9302", number, "in", "accepted", amount, PBOC, receiver)
        notice_vt, account = ("2204", "authorized_refunded") if vt == "8202" else (
            "2203", "direct_refunded")
        notice = self.bank.voucher(notice_vt, f"{notice_vt}-{no}", "out", "accepted", amount,
                                   BANK, FIN)
        self.finance.voucher(notice_vt, f"{notice_vt}-{no}", "in", "accepted", amount, BANK,
                             FIN)
        self.finance.post(FIN, account, notice, amount)
        return application, notice

    def allocation_refund(self, no: str, amount: int) -> str:
        """Allocation ``no`` made, then sent back by the treasury (实拨退款 3208): booked by
        the treasury when sent, by finance on receipt."""
        self.allocate(no, amount)
        ref = self.pboc.voucher("3208", f"3208-{no}", "out", "accepted", amount, PBOC, FIN)
        self.finance.voucher("3208", f"3208-{no}", "in", "accepted", amount, PBOC, FIN)
        self.pboc.post(PBOC, "allocation_refunded", ref, amount)
        self.finance.post(FIN, "allocation_refunded", ref, amount)
        return ref

    def returned(self, no: str, amount: int) -> None:
        """A payment the bank could not make: returned on both sides, booked nowhere."""
        self.finance.voucher("8202", no, "out", "returned", amount, UNIT, BANK)
        self.bank.voucher("8202", no, "in", "returned", amount, UNIT, BANK)

    def revised(self, no: str, amount: int) -> str:
        """Returned, revised (v1 superseded) and paid as version 2."""
        self.finance.voucher("8202", no, "out", "superseded", amount, UNIT, BANK)
        self.bank.voucher("8202", no, "in", "returned", amount, UNIT, BANK)
        ref = self.finance.voucher("8202", no, "out", "accepted", amount, UNIT, BANK, version=2)
        self.finance.post(UNIT, "authorized_paid", ref, amount)
        self.bank.voucher("8202", no, "in", "accepted", amount, UNIT, BANK, version=2)
        self.bank.post(BANK, "advanced", ref, amount)
        self.clear(no, amount)
        return ref

    def populate(self) -> None:
        """A day with every kind of voucher the engine compares, all of it consistent."""
        self.quota("E0001", 1_000_000)
        self.pay("A0001", 12_800)
        self.pay("A0002", 50_000)
        self.pay("D0001", 36_500, vt="5201")
        self.allocate("S0001", 80_000)
        self.refund("A0003", 9_900)
        self.refund("D0002", 4_400, vt="5201")
        self.allocation_refund("S0002", 30_000)
        self.returned("A0009", 300)
        self.revised("A0010", 700)
        self.finance.voucher("8202", "A0008", "out", "draft", 100, UNIT, BANK)
        self.finance.voucher("8202", "A0007", "out", "sent", 200, UNIT, BANK, updated=RECENT)
        self.finance.voucher("8202", "A0006", "out", "delivered", 400, UNIT, BANK)
        self.bank.voucher("8202", "A0006", "in", "received", 400, UNIT, BANK)

    # --- running the engine ----------------------------------------------------------------

    def layer1(self, **kw: Any) -> list[Break]:
        kw.setdefault("now", NOW)
        pairs = ((self.finance, self.bank), (self.bank, self.pboc), (self.finance, self.pboc))
        return [brk for a, b in pairs
                for brk in layer1(a.engine, a.parties, b.engine, b.parties,
                                  method=self.method, **kw)]  # type: ignore[arg-type]

    def layer2(self, **kw: Any) -> list[Break]:
        return [brk for node in (self.finance, self.bank, self.pboc)
                for brk in layer2(node.engine, **kw)]

    def layer3(self, **kw: Any) -> list[Break]:
        return list(layer3(self.finance.engine, self.bank.engine, self.pboc.engine,
                           method=self.method, **kw))  # type: ignore[arg-type]

    def everything(self) -> list[Break]:
        return [*self.layer1(), *self.layer2(), *self.layer3()]


NODES = {"finance": (FIN, UNIT), "bank": (BANK,), "pboc": (PBOC,)}


def _prepare(engine: Engine) -> None:
    metadata.create_all(engine, tables=TABLES)
    with engine.begin() as conn:
        conn.execute(insert(admdivs), [
            {"code": "530000", "name": "云南省", "level": "province", "parent_code": None},
            {"code": ADMDIV, "name": "芒市", "level": "county", "parent_code": "530000"}])
        conn.execute(insert(parties), [
            {"code": code, "kind": kind, "name": code, "admdiv": ADMDIV}
            for code, kind in KINDS.items()])


@dataclass
class Databases:
    """Makes one empty node database at a time: a SQLite file, or a PostgreSQL schema."""

    tmp_path: Path
    pg_url: str | None
    engines: list[Engine] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)

    def node(self, name: str, parties: tuple[str, ...]) -> Node:
        if self.pg_url is None:
            engine = make_engine(f"sqlite:///{self.tmp_path / name}.db")  # as a node: WAL
        else:
            schema = f"rc_{uuid.uuid4().hex[:10]}_{name.replace('-', '_')}"
            with self._admin().begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            self.schemas.append(schema)
            sep = "&" if "?" in self.pg_url else "?"
            engine = create_engine(f"{self.pg_url}{sep}options=-csearch_path%3D{schema}")
        self.engines.append(engine)
        _prepare(engine)
        return Node(engine, parties)

    def _admin(self) -> Engine:
        assert self.pg_url is not None
        return create_engine(self.pg_url, poolclass=NullPool)

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        if self.schemas:
            admin = self._admin()
            with admin.begin() as conn:
                for schema in self.schemas:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


WAYS = [("sqlite", "merge"), ("postgres", "merge"), ("postgres", "sql")]


@contextmanager
def make_world(tmp_path: Path, pg_url: str | None, method: str) -> Iterator[World]:
    """Finance, bank and treasury nodes: SQLite files, or schemas of ``pg_url``'s database."""
    dbs = Databases(tmp_path, pg_url)
    try:
        nodes = [dbs.node(name, parts) for name, parts in NODES.items()]
        yield World(*nodes, method=method, backend="sqlite" if pg_url is None else "postgres",
                    databases=dbs)
    finally:
        dbs.close()


@pytest.fixture(params=WAYS, ids=["sqlite", "postgres-merge", "postgres-sql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    backend, method = request.param
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    with make_world(tmp_path, pg_url, method) as w:
        yield w
