"""Real-time reconciliation: each voucher is compared as its counterpart's receipt arrives.

The receiving node's delivered receipt carries the SM3 of the voucher XML it stored and the
amount it read. The sender compares them with its own copy in the same transaction that
applies the receipt: a difference is raised as a layer-1 discrepancy at once (the receipt is
applied all the same — the voucher did arrive).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert

from guoku.domain.discrepancy import DiscrepancyStatus
from guoku.security.crypto import sm3_hex
from guoku.store.repository import VoucherRow
from guoku.store.tables import discrepancies

SYSTEM = "system:realtime"


def realtime_check(conn: Connection, row: VoucherRow, their_sm3: str, their_amount_fen: int,
                   at: str) -> bool:
    """Compare our copy with what the receiver stored; record a discrepancy; True if equal."""
    ours = sm3_hex(row.xml)
    if ours == their_sm3 and row.amount_fen == their_amount_fen:
        return True
    kind = "amount_mismatch" if row.amount_fen != their_amount_fen else "content_mismatch"
    conn.execute(insert(discrepancies).values(
        run_id=None, layer=1, kind=kind, admdiv=row.admdiv, counterparty=row.receiver_party,
        vt_code=row.vt_code, voucher_no=row.voucher_no, version=row.version,
        left_amount_fen=row.amount_fen, right_amount_fen=their_amount_fen,
        left_state=row.state, right_state="received",
        detail=f"real time: our copy sm3 {ours[:16]}…, the receiver stored {their_sm3[:16]}…",
        status=DiscrepancyStatus.OPEN.value, found_at=at, updated_at=at, updated_by=SYSTEM,
    ))
    return False
