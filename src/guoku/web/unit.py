"""What the counter knows about a budget unit: its quotas, where its money comes from, and the
payee accounts it may pay — read from the finance node that serves the unit.

A payment voucher's funding (finance bureau, treasury, fund type, agent bank, clearing bank)
is what the bank's quota arrival notice (5105) for the unit says; its payer account is the
unit's zero-balance account as on its last payment (the clerk confirms or types it once).
The payment itself is built by :mod:`guoku.flows.model`, as every flow builds it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from sqlalchemy import Engine, select

from guoku.domain.accounts import AccountCheck, check_payee
from guoku.domain.errors import ValidationError
from guoku.domain.money import Amount
from guoku.domain.quota import QuotaBalance, QuotaKey
from guoku.flows.model import AUTHORIZED, Funding, Payee, Payment, payment_details, payment_header
from guoku.library.service import VoucherLibrary
from guoku.store.accounts import directory_lookup, lookup
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.store.tables import quota_balances
from guoku.xml.codec import from_xml

PAYMENT: Final = "8202"
ARRIVAL: Final = "5105"
MAX_LISTED: Final = 200


@dataclass(frozen=True, slots=True)
class QuotaLine:
    key: QuotaKey
    balance: QuotaBalance

    @property
    def choice(self) -> str:
        """The value of this line in the payment form's quota list."""
        return f"{self.key.fund_type}|{self.key.exp_func}|{self.key.year}|{self.key.month:02d}"


def quotas(engine: Engine, admdiv: str, unit: str) -> list[QuotaLine]:
    """The unit's quota accounts with issued, held, spent and available amounts."""
    with engine.connect() as conn:
        rows = conn.execute(select(quota_balances).where(
            quota_balances.c.admdiv == admdiv, quota_balances.c.agency_code == unit,
        ).order_by(quota_balances.c.st_year, quota_balances.c.month,
                   quota_balances.c.fund_type, quota_balances.c.exp_func)).all()
    return [QuotaLine(QuotaKey(r.admdiv, r.st_year, r.agency_code, r.fund_type, r.exp_func,
                               r.month),
                      QuotaBalance.of_fen(r.issued_fen, r.held_fen, r.spent_fen)) for r in rows]


def vouchers(library: VoucherLibrary, username: str, vt_code: str, direction: str,
             state: str | None = None) -> list[VoucherRow]:
    """The newest vouchers of one type the user may read (the library filters the tenant),
    newest first: the last page of the library's oldest-first order, and the one before."""
    query = VoucherQuery(vt_code=vt_code, direction=direction, state=state)
    first = library.query(username, query, page_size=MAX_LISTED)
    last = -(-first.total // MAX_LISTED)
    items = first.items if last <= 1 else [
        row for n in (last - 1, last)
        for row in library.query(username, query, page=n, page_size=MAX_LISTED).items]
    return sorted(items, key=lambda r: r.id, reverse=True)


def _latest_header(library: VoucherLibrary, username: str, vt_code: str, direction: str,
                   fund_type: str | None = None) -> Mapping[str, str] | None:
    for row in vouchers(library, username, vt_code, direction):
        header = from_xml(row.xml).header
        if fund_type is None or header.get("FundTypeCode") == fund_type:
            return header
    return None


def payer_defaults(library: VoucherLibrary, username: str) -> dict[str, str]:
    """The payer account of the unit's last payment voucher, to prefill the form."""
    header = _latest_header(library, username, PAYMENT, "out") or {}
    return {k: header.get(k, "") for k in ("PayAcctNo", "PayAcctName", "PayAcctBankName")}


def funding(library: VoucherLibrary, username: str, line: QuotaLine,
            payer: Mapping[str, str]) -> Funding:
    """The funding of a payment from quota ``line``: as the quota's arrival notice says."""
    notice = _latest_header(library, username, ARRIVAL, "in", line.key.fund_type)
    if notice is None:
        raise ValidationError("no quota arrival notice (5105) for this fund type yet")
    return Funding(
        notice.get("FinOrgCode", ""), notice.get("TreCode", ""), line.key.fund_type,
        notice.get("FundTypeName", ""), line.key.exp_func, "", payer["PayAcctNo"],
        payer["PayAcctName"], payer["PayAcctBankName"], notice["PayBankCode"],
        notice.get("PayBankName", ""), notice.get("ClearBankCode", ""),
        notice.get("ClearBankName", ""),
    )


def parse_yuan(text: str) -> Amount:
    """An amount as a clerk types it: ``12800``, ``12,800.5`` or ``12800.50`` (元)."""
    try:
        return Amount.from_decimal(Decimal(text.strip().replace(",", "")))
    except InvalidOperation:
        raise ValidationError(f"{text!r} is not an amount") from None


@dataclass(frozen=True, slots=True)
class PaymentForm:
    """What the clerk typed, as text (checked here, then by the library and the XSD)."""

    quota: str
    payee_account: str
    payee_name: str
    payee_bank: str
    amount: str
    purpose: str
    exp_eco: str
    payer_account: str
    payer_name: str
    payer_bank: str


def build_payment(form: PaymentForm, lines: list[QuotaLine], library: VoucherLibrary,
                  username: str, unit_name: str, now: datetime
                  ) -> tuple[dict[str, str], list[dict[str, str]], str]:
    """Header, details and receiver of the unit's authorized payment voucher (8202)."""
    line = next((q for q in lines if q.choice == form.quota), None)
    if line is None:
        raise ValidationError("choose one of the unit's quotas")
    amount = parse_yuan(form.amount)
    if not amount.is_positive():
        raise ValidationError("the amount must be positive")
    if amount.fen > line.balance.available.fen:
        raise ValidationError(f"the amount exceeds the available quota {line.balance.available}")
    payer = {"PayAcctNo": form.payer_account.strip(), "PayAcctName": form.payer_name.strip(),
             "PayAcctBankName": form.payer_bank.strip()}
    fund = funding(library, username, line, payer)
    payment = Payment(
        line.key.admdiv, f"GM{now:%Y%m%d%H%M%S}{secrets.token_hex(2).upper()}",
        f"{now:%Y%m%d}", line.key.agency_code, unit_name,
        Payee(form.payee_account.strip(), form.payee_name.strip(), form.payee_bank.strip()),
        amount, form.purpose.strip(), fund, form.exp_eco.strip() or "30201",
    )
    return payment_header(payment, PAYMENT, AUTHORIZED), payment_details(payment), \
        fund.bank_party


@dataclass(frozen=True, slots=True)
class PayeeAnswer:
    """The live check of a payee while the clerk types: the directory's record and problems."""

    found: bool
    name: str
    bank_name: str
    check: AccountCheck


def check_payee_account(engine: Engine, admdiv: str, account_no: str, name: str,
                        bank_name: str) -> PayeeAnswer:
    """The same check the library runs on the voucher (books.payee_hooks), before it exists."""
    with engine.connect() as conn:
        record = lookup(conn, admdiv, account_no.strip())
        header = {"PayeeAcctNo": account_no, "PayeeAcctName": name or (record.name if record
                                                                        else ""),
                  "PayeeAcctBankName": bank_name or (record.bank_name if record else "")}
        check = check_payee(header, directory_lookup(conn, admdiv))
    return PayeeAnswer(record is not None, record.name if record else "",
                       record.bank_name if record else "", check)
