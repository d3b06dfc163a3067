"""The quota ledger (额度台账) in the node database, inside the caller's transaction.

Every function takes the caller's ``Connection`` and writes nothing outside its transaction, so a
payment voucher and its hold commit or roll back together. The rules live in
:mod:`guoku.domain.quota`; this module only finds, locks and writes rows:

1. lock the key's balance row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every writer
   already holds the database lock since ``BEGIN IMMEDIATE``, see ``store.engine``);
2. look for an entry of the same (voucher, operation): a redelivery returns it, applied once;
3. let the domain apply the operation to the locked balance (typed refusal: nothing written);
4. update the balance row and append the entry.

Because the idempotency look-up happens after the lock, two deliveries of one operation racing
each other are serialized on the row and the second finds the first's entry. Why a row lock and
not a conditional ``UPDATE``: docs/decisions/0012-quota-ledger.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from guoku.domain.errors import Conflict, NotFound
from guoku.domain.money import Amount
from guoku.domain.quota import (
    OUTCOME_OPS,
    HoldNotOpen,
    HoldState,
    LedgerMismatch,
    Outcome,
    PaymentHold,
    QuotaBalance,
    QuotaEntry,
    QuotaKey,
    QuotaOp,
    QuotaReplayMismatch,
    apply,
    check_ref,
    check_request,
    hold_of,
    replay,
)
from guoku.store.tables import quota_balances, quota_entries


@dataclass(frozen=True, slots=True)
class Posted:
    """An entry as stored: its row id and time, and whether this call found it already there."""

    entry: QuotaEntry
    id: int
    at: str
    replayed: bool = False


# --- operations ------------------------------------------------------------------------------


def issue(conn: Connection, key: QuotaKey, amount: Amount, voucher_ref: str, at: str) -> Posted:
    """额度下达: add ``amount`` to the key's issued quota, from quota notice ``voucher_ref``."""
    return _book(conn, key, QuotaOp.ISSUE, amount, voucher_ref, at)


def reduce(conn: Connection, key: QuotaKey, amount: Amount, voucher_ref: str, at: str) -> Posted:
    """额度调减: take back unused quota; refused with QuotaExceeded beyond what is available."""
    return _book(conn, key, QuotaOp.REDUCE, amount, voucher_ref, at)


def hold(conn: Connection, key: QuotaKey, amount: Amount, voucher_ref: str, at: str) -> Posted:
    """Reserve ``amount`` for payment ``voucher_ref``; QuotaExceeded when not available."""
    return _book(conn, key, QuotaOp.HOLD, amount, voucher_ref, at)


def settle(conn: Connection, payment_ref: str, at: str) -> Posted:
    """The payment was paid: its whole hold becomes spent."""
    posted = record_outcome(conn, payment_ref, Outcome.PAID, at)
    assert posted is not None
    return posted


def release(
    conn: Connection, payment_ref: str, at: str, outcome: Outcome = Outcome.RETURNED
) -> Posted:
    """The payment was returned, failed or voided: its hold goes back to the available quota."""
    if OUTCOME_OPS[outcome] is not QuotaOp.RELEASE:
        raise ValueError(f"{outcome} does not release a hold")
    posted = record_outcome(conn, payment_ref, outcome, at)
    assert posted is not None
    return posted


def record_outcome(conn: Connection, payment_ref: str, outcome: Outcome, at: str) -> Posted | None:
    """Book what became of payment ``payment_ref``; None when the outcome books nothing.

    Indeterminate keeps the hold (None); paid settles it; returned, failed and voided release it.
    The same definite outcome twice returns the first entry (``replayed``); the opposite one is
    refused with HoldNotOpen.
    """
    key = _payment_key(conn, payment_ref)
    row_id, balance = _lock(conn, key)
    current = _payment(conn, payment_ref)
    _, op = current.close(outcome)
    if op is None:
        done = OUTCOME_OPS[outcome]
        if done is None:
            return None
        posted = _find(conn, payment_ref, done)
        assert posted is not None, f"{payment_ref} is {current.state} without its entry"
        return replace(posted, replayed=True)
    entry = apply(key, balance, op, current.amount, payment_ref)
    return _write(conn, row_id, entry, at)


def refund(conn: Connection, payment_ref: str, amount: Amount, refund_ref: str, at: str) -> Posted:
    """退款: refund voucher ``refund_ref`` gives back ``amount`` spent by payment ``payment_ref``.

    Never more than that payment spent and was not refunded yet (RefundExceedsSpent).
    """
    check_request(QuotaOp.REFUND, amount, refund_ref, payment_ref)
    key = _payment_key(conn, payment_ref)
    row_id, balance = _lock(conn, key)
    found = _replayed(conn, key, QuotaOp.REFUND, amount, refund_ref, payment_ref)
    if found is not None:
        return found
    _payment(conn, payment_ref).refund(amount, refund_ref)
    entry = apply(key, balance, QuotaOp.REFUND, amount, refund_ref, payment_ref=payment_ref)
    return _write(conn, row_id, entry, at)


# --- queries ---------------------------------------------------------------------------------


def balance(conn: Connection, key: QuotaKey) -> QuotaBalance:
    """The key's balance now (empty when nothing was ever issued); no lock."""
    row = conn.execute(
        select(
            quota_balances.c.issued_fen, quota_balances.c.held_fen, quota_balances.c.spent_fen
        ).where(*_is_key(quota_balances, key))
    ).first()
    if row is None:
        return QuotaBalance.empty()
    return QuotaBalance.of_fen(int(row.issued_fen), int(row.held_fen), int(row.spent_fen))


def history(conn: Connection, key: QuotaKey) -> list[Posted]:
    """The key's entries in the order they were booked."""
    rows = conn.execute(
        select(quota_entries).where(*_is_key(quota_entries, key)).order_by(quota_entries.c.id)
    ).all()
    return [_posted(r) for r in rows]


def payment(conn: Connection, payment_ref: str) -> PaymentHold:
    """The hold of payment ``payment_ref``: amount, held/paid/released, refunded so far."""
    _payment_key(conn, payment_ref)
    return _payment(conn, payment_ref)


def verify(conn: Connection, key: QuotaKey) -> QuotaBalance:
    """Check that the key's entries add up to its balance row; LedgerMismatch names the first
    entry (or the row) that does not."""
    total = replay(p.entry for p in history(conn, key))
    stored = balance(conn, key)
    if total != stored:
        raise LedgerMismatch(
            f"the entries of {key} add up to {total}, the balance says {stored}", key=str(key)
        )
    return stored


# --- internals -------------------------------------------------------------------------------


def _book(
    conn: Connection, key: QuotaKey, op: QuotaOp, amount: Amount, voucher_ref: str, at: str
) -> Posted:
    check_request(op, amount, voucher_ref)
    row_id, current = _lock(conn, key, create_at=at if op is QuotaOp.ISSUE else None)
    found = _replayed(conn, key, op, amount, voucher_ref, None)
    if found is not None:
        if op is QuotaOp.HOLD and _payment(conn, voucher_ref).state is HoldState.RELEASED:
            raise HoldNotOpen(
                f"payment {voucher_ref} held quota once and released it; a payment sent again "
                f"(restored after void) holds under a new reference, e.g. with an attempt suffix",
                voucher_ref=voucher_ref,
            )
        return found
    entry = apply(key, current, op, amount, voucher_ref)
    return _write(conn, row_id, entry, at)


def _lock(
    conn: Connection, key: QuotaKey, create_at: str | None = None
) -> tuple[int | None, QuotaBalance]:
    """Lock the key's balance row and read it; with ``create_at``, create a missing row first.

    Two first issues of one key may race: ON CONFLICT DO NOTHING lets the second wait for the
    first and then lock the row the first created.
    """
    locked = (
        select(
            quota_balances.c.id,
            quota_balances.c.issued_fen,
            quota_balances.c.held_fen,
            quota_balances.c.spent_fen,
        )
        .where(*_is_key(quota_balances, key))
        .with_for_update()
    )
    row = conn.execute(locked).first()
    if row is None and create_at is not None:
        conn.execute(
            _insert_if_absent(conn).values(
                **_key_values(key), issued_fen=0, held_fen=0, spent_fen=0, updated_at=create_at
            )
        )
        row = conn.execute(locked).one()
    if row is None:
        return None, QuotaBalance.empty()
    return int(row.id), QuotaBalance.of_fen(
        int(row.issued_fen), int(row.held_fen), int(row.spent_fen)
    )


def _insert_if_absent(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(quota_balances).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(quota_balances).on_conflict_do_nothing()
    raise NotImplementedError(f"quota ledger on {conn.dialect.name}")


def _replayed(
    conn: Connection,
    key: QuotaKey,
    op: QuotaOp,
    amount: Amount,
    voucher_ref: str,
    payment_ref: str | None,
) -> Posted | None:
    """The entry of an earlier delivery of (voucher_ref, op), if it asked for the same thing."""
    found = _find(conn, voucher_ref, op)
    if found is None:
        return None
    if not found.entry.same_operation(key, amount, payment_ref):
        raise QuotaReplayMismatch(
            f"{op} by {voucher_ref} was booked already as {found.entry.amount} on "
            f"{found.entry.key}; now it asks for {amount} on {key}",
            voucher_ref=voucher_ref,
            op=str(op),
        )
    return replace(found, replayed=True)


def _write(conn: Connection, row_id: int | None, entry: QuotaEntry, at: str) -> Posted:
    assert row_id is not None, f"{entry.op} succeeded on {entry.key} that has no balance row"
    after = entry.after
    try:
        conn.execute(
            update(quota_balances)
            .where(quota_balances.c.id == row_id)
            .values(
                issued_fen=after.issued.fen,
                held_fen=after.held.fen,
                spent_fen=after.spent.fen,
                updated_at=at,
            )
        )
        result = conn.execute(
            insert(quota_entries).values(
                **_key_values(entry.key),
                op=str(entry.op),
                amount_fen=entry.amount.fen,
                voucher_ref=entry.voucher_ref,
                payment_ref=entry.payment_ref,
                at=at,
                issued_after=after.issued.fen,
                held_after=after.held.fen,
                spent_after=after.spent.fen,
            )
        )
    except IntegrityError as exc:
        raise Conflict(
            f"{entry.op} by {entry.voucher_ref} was booked concurrently",
            voucher_ref=entry.voucher_ref,
            op=str(entry.op),
        ) from exc
    (entry_id,) = result.inserted_primary_key or (None,)
    assert entry_id is not None
    return Posted(entry, int(entry_id), at)


def _find(conn: Connection, voucher_ref: str, op: QuotaOp) -> Posted | None:
    row = conn.execute(
        select(quota_entries).where(
            quota_entries.c.voucher_ref == voucher_ref, quota_entries.c.op == str(op)
        )
    ).first()
    return None if row is None else _posted(row)


def _payment_key(conn: Connection, payment_ref: str) -> QuotaKey:
    check_ref(payment_ref, "payment_ref")
    found = _find(conn, payment_ref, QuotaOp.HOLD)
    if found is None:
        raise NotFound(f"payment {payment_ref} holds no quota", payment_ref=payment_ref)
    return found.entry.key


def _payment(conn: Connection, payment_ref: str) -> PaymentHold:
    rows = conn.execute(
        select(quota_entries)
        .where(
            or_(
                quota_entries.c.voucher_ref == payment_ref,
                quota_entries.c.payment_ref == payment_ref,
            )
        )
        .order_by(quota_entries.c.id)
    ).all()
    current = hold_of([_posted(r).entry for r in rows], payment_ref)
    if current is None:
        raise NotFound(f"payment {payment_ref} holds no quota", payment_ref=payment_ref)
    return current


def _key_values(key: QuotaKey) -> dict[str, Any]:
    return {
        "admdiv": key.admdiv,
        "st_year": key.year,
        "agency_code": key.agency_code,
        "fund_type": key.fund_type,
        "exp_func": key.exp_func,
        "month": key.month,
    }


def _is_key(table: Table, key: QuotaKey) -> list[ColumnElement[bool]]:
    return [table.c[name] == value for name, value in _key_values(key).items()]


def _posted(r: Row[Any]) -> Posted:
    key = QuotaKey(r.admdiv, int(r.st_year), r.agency_code, r.fund_type, r.exp_func, int(r.month))
    after = QuotaBalance.of_fen(int(r.issued_after), int(r.held_after), int(r.spent_after))
    entry = QuotaEntry(
        key, QuotaOp(r.op), Amount(int(r.amount_fen)), r.voucher_ref, after, r.payment_ref
    )
    return Posted(entry, int(r.id), r.at)
