"""The finance node's quota ledger follows the authorized-payment vouchers (5.1).

* a quota notice (5102) sent to the bank issues the quota (额度下达), line by line;
* a unit's payment voucher (8202) holds its amount when it is sent — refused with
  ``QuotaExceeded`` (and the send rolled back) when the quota is not available;
* the bank's acceptance (it paid) makes the hold spent; a return or an error receipt releases
  it; a voucher without receipt (indeterminate) keeps it until a definite outcome;
* a refund notice (2204) gives the refunded amount back to the quota.

Quota key: division, year, unit, fund type, functional classification and month — from the
detail lines of a quota notice, from the header of a payment voucher (its month is VouDate's).
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from guoku.domain.document import VoucherDocument
from guoku.domain.errors import NotFound
from guoku.domain.money import Amount
from guoku.domain.quota import Outcome, QuotaKey
from guoku.store import quota
from guoku.store import repository as repo
from guoku.store.repository import VoucherRow
from guoku.store.tables import voucher_events
from guoku.xml.codec import stored_document

QUOTA_NOTICE, UNIT_PAYMENT, REFUND_NOTICE = "5102", "8202", "2204"
RELEASING = {"return": Outcome.RETURNED, "fail": Outcome.FAILED}


def payment_key(doc: VoucherDocument) -> QuotaKey:
    h = doc.header
    return QuotaKey(h["AdmDivCode"], int(h["StYear"]), h["AgencyCode"], h["FundTypeCode"],
                    h["ExpFuncCode"], int(h["VouDate"][4:6]))


def notice_lines(doc: VoucherDocument) -> list[tuple[QuotaKey, Amount]]:
    h = doc.header
    year, month = int(h["StYear"]), int(h["SetMonth"])
    return [(QuotaKey(h["AdmDivCode"], year, line["AgencyCode"], line["FundTypeCode"],
                      line["ExpFuncCode"], month), Amount.parse(line["PlanAmt"]))
            for line in doc.details]


class FinanceQuota:
    def on_event(self, conn: Connection, row: VoucherRow, event: str, state_after: str,
                 at: str) -> None:
        if row.direction == "out" and row.vt_code == QUOTA_NOTICE and event == "send":
            for key, amount in notice_lines(stored_document(row.xml)):
                quota.issue(conn, key, amount, row.ref, at)
        elif row.direction == "out" and row.vt_code == UNIT_PAYMENT:
            self._payment(conn, row, event, at)
        elif row.direction == "in" and row.vt_code == REFUND_NOTICE and event == "receive":
            self._refund(conn, row, at)

    @staticmethod
    def _payment(conn: Connection, row: VoucherRow, event: str, at: str) -> None:
        ref = _hold_ref(conn, row)
        if event == "send":
            quota.hold(conn, payment_key(stored_document(row.xml)), Amount(row.amount_fen), ref, at)
        elif event == "accept":
            quota.settle(conn, ref, at)
        elif event in RELEASING:
            quota.release(conn, ref, at, RELEASING[event])

    @staticmethod
    def _refund(conn: Connection, row: VoucherRow, at: str) -> None:
        doc = stored_document(row.xml)
        original = _paid_voucher(conn, row.admdiv, doc.header["OriVoucherNo"],
                                 int(doc.header["StYear"]))
        quota.refund(conn, _hold_ref(conn, original), doc.amount, row.ref, at)


def _hold_ref(conn: Connection, row: VoucherRow) -> str:
    """One hold per sending: a voucher voided, restored and sent again holds afresh."""
    sends = conn.execute(select(func.count()).select_from(voucher_events).where(
        voucher_events.c.voucher_id == row.id, voucher_events.c.event == "send")).scalar_one()
    return f"{row.ref}#{int(sends)}"


def _paid_voucher(conn: Connection, admdiv: str, voucher_no: str, year: int) -> VoucherRow:
    for version in range(1, 1000):
        row = repo.find_voucher(conn, admdiv, year, UNIT_PAYMENT, voucher_no, version, "out")
        if row is None:
            break
        if row.state == "accepted":
            return row
    raise NotFound(f"no paid unit payment voucher {voucher_no} for this refund")
