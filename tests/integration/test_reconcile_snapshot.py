"""Layer 3 runs its joins side by side on separate PostgreSQL connections; they must still
read one moment of the books: every connection imports the snapshot the first one exported."""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import Connection, func, insert, select

from guoku.reconcile.merge import connect_all, export_snapshot
from guoku.store.engine import make_engine
from guoku.store.migrate import upgrade
from guoku.store.tables import ledger_entries


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one())


def test_connections_reading_an_exported_snapshot_do_not_see_later_commits(
    pg_schema_url: str,
) -> None:
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    posting = {"admdiv": "533103", "party": "F533103", "account": "direct_paid",
               "agency_code": "U1", "fund_type": "1", "exp_func": "2050101",
               "day": "20261123", "amount_fen": 100, "at": "2026-11-23T09:00:00.000000Z"}
    with engine.begin() as conn:
        conn.execute(insert(ledger_entries), {**posting, "voucher_ref": "5201/2026/A/v1"})
    try:
        with ExitStack() as leader:
            snapshot = export_snapshot(leader, engine)
            with engine.begin() as conn:  # committed after the reconciliation began
                conn.execute(insert(ledger_entries), {**posting, "voucher_ref": "5201/2026/B/v1"})
            with ExitStack() as stack:
                shared = connect_all(stack, [engine], snapshot)[0]
                assert _count(shared) == 1
            with ExitStack() as stack:
                fresh = connect_all(stack, [engine])[0]
                assert _count(fresh) == 2
    finally:
        engine.dispose()
