"""Automatic payee-account checks (000: 收款人账户信息自动校验).

Whenever a payment voucher is entered (or revised) and whenever an agent bank receives one, its
payee account is checked against the party's reviewed account directory — number format, found,
name match (exact, partial, none), bank — and the result is kept with the voucher, for the
reviewer to see before sealing and for the bank before it accepts.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection

from guoku.domain.accounts import check_payee
from guoku.store.accounts import directory_lookup, record_check
from guoku.store.repository import VoucherRow
from guoku.xml.codec import stored_document

PAYMENT_TYPES: Final = frozenset({"5201", "8202", "5207"})
CHECKED_ON: Final = frozenset({("out", "create"), ("out", "revise"), ("in", "receive")})


class PayeeChecks:
    def on_event(self, conn: Connection, row: VoucherRow, event: str, state_after: str,
                 at: str) -> None:
        if row.vt_code not in PAYMENT_TYPES or (row.direction, event) not in CHECKED_ON:
            return
        check = check_payee(stored_document(row.xml).header, directory_lookup(conn, row.admdiv))
        record_check(conn, row.id, row.admdiv, check, at)
