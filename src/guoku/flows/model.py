"""Business facts a flow starts from, and the voucher fields they fill.

A :class:`Payment` is what a unit or finance decides to pay (payee, amount, classification);
the header builders turn it into the specification's fields for each voucher type the flow
issues. Vouchers answering another carry ``OriVtCode``/``OriVoucherNo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from guoku.domain.money import Amount
from guoku.domain.vouchers import voucher_type
from guoku.store.repository import VoucherRow

DIRECT: Final = "11"
"""支付方式 11 直接支付."""
AUTHORIZED: Final = "12"
"""支付方式 12 授权支付."""


@dataclass(frozen=True, slots=True)
class Payee:
    account_no: str
    name: str
    bank_name: str
    bank_no: str = ""


@dataclass(frozen=True, slots=True)
class Funding:
    """Where the money comes from: the finance bureau, fund type, classification, accounts."""

    fin_org_code: str
    treasury_code: str
    fund_type: str
    fund_type_name: str
    exp_func: str
    exp_func_name: str
    payer_account: str
    payer_name: str
    payer_bank: str
    bank_party: str
    bank_name: str
    clear_bank_code: str = "011731000018"
    clear_bank_name: str = "中国人民银行昆明中心支行"


@dataclass(frozen=True, slots=True)
class Payment:
    admdiv: str
    voucher_no: str
    vou_date: str
    unit_code: str
    unit_name: str
    payee: Payee
    amount: Amount
    purpose: str
    funding: Funding
    exp_eco: str = "30201"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def year(self) -> str:
        return self.vou_date[:4]


def _base(admdiv: str, vt_code: str, voucher_no: str, vou_date: str) -> dict[str, str]:
    return {"AdmDivCode": admdiv, "StYear": vou_date[:4], "VtCode": vt_code,
            "VouDate": vou_date, "VoucherNo": voucher_no}


def _funding(f: Funding) -> dict[str, str]:
    return {"FinOrgCode": f.fin_org_code, "TreCode": f.treasury_code,
            "FundTypeCode": f.fund_type, "FundTypeName": f.fund_type_name,
            "PayBankCode": f.bank_party, "PayBankName": f.bank_name,
            "ClearBankCode": f.clear_bank_code, "ClearBankName": f.clear_bank_name}


def payment_header(p: Payment, vt_code: str, pay_type: str) -> dict[str, str]:
    """A payment voucher (5201 direct, 8202 authorized) or an allocation (5207)."""
    header = {
        **_base(p.admdiv, vt_code, p.voucher_no, p.vou_date), **_funding(p.funding),
        "AgencyCode": p.unit_code, "AgencyName": p.unit_name, "PayTypeCode": pay_type,
        "ExpFuncCode": p.funding.exp_func, "ExpFuncName": p.funding.exp_func_name,
        "ExpEcoCode": p.exp_eco, "PayeeAcctNo": p.payee.account_no,
        "PayeeAcctName": p.payee.name, "PayeeAcctBankName": p.payee.bank_name,
        "PayAcctNo": p.funding.payer_account, "PayAcctName": p.funding.payer_name,
        "PayAcctBankName": p.funding.payer_bank, "PaySummaryName": p.purpose,
        "PayAmt": p.amount.wire(), **p.extra,
    }
    if p.payee.bank_no:
        header["PayeeAcctBankNo"] = p.payee.bank_no
    return _only_fields(vt_code, header)


def payment_details(p: Payment) -> list[dict[str, str]]:
    return [{"Id": "1", "AgencyCode": p.unit_code, "ExpFuncCode": p.funding.exp_func,
             "ExpEcoCode": p.exp_eco, "PayAmt": p.amount.wire()}]


def plan_header(p: Payment, vt_code: str, voucher_no: str) -> dict[str, str]:
    """额度通知单 (5102) and 汇总清算额度通知单 (5106, 5108): a quota for the unit, or the sum
    the treasury will clear for the bank."""
    header = {**_base(p.admdiv, vt_code, voucher_no, p.vou_date), **_funding(p.funding),
              "AgencyCode": p.unit_code, "AgencyName": p.unit_name,
              "ExpFuncCode": p.funding.exp_func, "ExpFuncName": p.funding.exp_func_name,
              "PayTypeCode": DIRECT if vt_code == "5108" else AUTHORIZED,
              "PlanAmt": p.amount.wire(), "SetMonth": p.vou_date[4:6]}
    return _only_fields(vt_code, header)


def plan_details(p: Payment) -> list[dict[str, str]]:
    return [{"Id": "1", "AgencyCode": p.unit_code, "FundTypeCode": p.funding.fund_type,
             "ExpFuncCode": p.funding.exp_func, "PlanAmt": p.amount.wire()}]


def answering_header(original: VoucherRow, p: Payment, vt_code: str, vou_date: str,
                     **values: str) -> dict[str, str]:
    """A receipt, notice or application that answers ``original`` (OriVtCode/OriVoucherNo)."""
    header = {**_base(p.admdiv, vt_code, f"{vt_code}-{original.voucher_no}", vou_date),
              **_funding(p.funding), "AgencyCode": p.unit_code, "AgencyName": p.unit_name,
              "PayTypeCode": DIRECT if original.vt_code in ("5201", "5108") else AUTHORIZED,
              "OriVtCode": original.vt_code, "OriVoucherNo": original.voucher_no,
              "PayAmt": Amount(original.amount_fen).wire(),
              "PayAcctNo": p.funding.payer_account, "PayAcctName": p.funding.payer_name,
              "PayAcctBankName": p.funding.payer_bank, **values}
    return _only_fields(vt_code, header)


def report_details(rows: list[VoucherRow], unit_code: str) -> list[dict[str, str]]:
    """Detail lines of a transfer application or daily report: one per original voucher."""
    return [{"Id": str(i), "OriVtCode": r.vt_code, "OriVoucherNo": r.voucher_no,
             "AgencyCode": unit_code, "PayAmt": Amount(r.amount_fen).wire()}
            for i, r in enumerate(rows, start=1)]


def _only_fields(vt_code: str, header: dict[str, str]) -> dict[str, str]:
    """Keep the fields the type has: one builder serves several related types."""
    names = set(voucher_type(vt_code).field_names)
    return {k: v for k, v in header.items() if k in names and v != ""}
