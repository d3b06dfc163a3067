"""The business ledger of a node: postings made by the posting rules, in the voucher's
transaction, once per (voucher, account)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, bindparam, insert, select

from guoku.domain.books import account_for
from guoku.domain.parties import PartyKind
from guoku.store import repository as repo
from guoku.store.repository import VoucherRow
from guoku.store.tables import ledger_entries
from guoku.xml.codec import stored_document


class BusinessLedger:
    """Hooks that post to ``ledger_entries`` for the party whose side of the voucher moved."""

    def on_event(self, conn: Connection, row: VoucherRow, event: str, state_after: str,
                 at: str) -> None:
        party_code = row.sender_party if row.direction == "out" else row.receiver_party
        kind: PartyKind = repo.get_party(conn, party_code).kind
        account = account_for(kind, row.direction, row.vt_code, event)
        if account is None:
            return
        if conn.execute(_POSTED, {"ref": row.ref, "account": account}).first() is not None:
            return  # posted already (a redelivered or repeated event books once)
        header = stored_document(row.xml).header
        conn.execute(_POST, {
            "admdiv": row.admdiv, "party": party_code, "account": account,
            "agency_code": header.get("AgencyCode", ""),
            "fund_type": header.get("FundTypeCode", ""),
            "exp_func": header.get("ExpFuncCode", ""), "day": row.vou_date,
            "amount_fen": row.amount_fen, "voucher_ref": row.ref, "at": at,
        })


_POSTED: Final = select(ledger_entries.c.id).where(
    ledger_entries.c.voucher_ref == bindparam("ref"),
    ledger_entries.c.account == bindparam("account"))
_POST: Final = insert(ledger_entries)
