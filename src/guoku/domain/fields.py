"""Field specifications: the vocabulary of voucher XML, with the names the public spec uses.

Field names follow the interface specification as seen in public code (DOMAIN.md section 8):
``AdmDivCode``, ``VtCode``, ``PayAmt`` ... Each :class:`FieldSpec` knows its kind, whether it is
required and its maximum length; the XSD and the domain validation are both generated from these.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from guoku.domain.money import WIRE_PATTERN


class FieldKind(enum.StrEnum):
    TEXT = "text"
    CODE = "code"
    """Letters, digits, dot, dash and underscore — identifiers and classification codes."""
    DIGITS = "digits"
    AMOUNT = "amount"
    """Decimal string with exactly two fraction digits (see money.WIRE_PATTERN)."""
    DATE = "date"
    """yyyyMMdd."""
    YEAR = "year"
    MONTH = "month"


PATTERNS: Final[dict[FieldKind, str]] = {
    FieldKind.CODE: r"[0-9A-Za-z._\-]+",
    FieldKind.DIGITS: r"[0-9]+",
    FieldKind.AMOUNT: WIRE_PATTERN,
    FieldKind.DATE: r"[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])",
    FieldKind.YEAR: r"[0-9]{4}",
    FieldKind.MONTH: r"(0[1-9]|1[0-2])",
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: FieldKind
    required: bool
    max_length: int
    label: str
    """Chinese label, as printed on the voucher."""

    def optional(self) -> FieldSpec:
        return FieldSpec(self.name, self.kind, False, self.max_length, self.label)

    def mandatory(self) -> FieldSpec:
        return FieldSpec(self.name, self.kind, True, self.max_length, self.label)

    def problem(self, value: str | None) -> str | None:
        """Why ``value`` is not acceptable for this field, or None when it is."""
        if value is None or value == "":
            return f"{self.name} ({self.label}) is required" if self.required else None
        if len(value) > self.max_length:
            return f"{self.name} is longer than {self.max_length} characters"
        pattern = PATTERNS.get(self.kind)
        if pattern is not None and not re.fullmatch(pattern, value):
            return f"{self.name} value {value!r} is not a valid {self.kind.value}"
        if self.kind is FieldKind.DATE and not _is_calendar_date(value):
            return f"{self.name} value {value!r} is not a date that exists"
        return None


def _is_calendar_date(value: str) -> bool:
    """The XSD pattern checks the shape; the calendar (Feb 29, 30-day months) is checked here."""
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return False
    return True


def _f(name: str, kind: FieldKind, required: bool, max_length: int, label: str) -> FieldSpec:
    return FieldSpec(name, kind, required, max_length, label)


T, C, D, A = FieldKind.TEXT, FieldKind.CODE, FieldKind.DIGITS, FieldKind.AMOUNT

HEADER: Final = (
    _f("AdmDivCode", D, True, 6, "行政区划"),
    _f("StYear", FieldKind.YEAR, True, 4, "年度"),
    _f("VtCode", D, True, 4, "凭证类型"),
    _f("VouDate", FieldKind.DATE, True, 8, "凭证日期"),
    _f("VoucherNo", C, True, 42, "凭证号"),
)
FINANCE_ORG: Final = (
    _f("FinOrgCode", C, False, 42, "财政机关代码"),
    _f("TreCode", C, False, 10, "国库主体代码"),
)
UNIT: Final = (
    _f("SupDepCode", C, False, 42, "一级预算单位编码"),
    _f("SupDepName", T, False, 60, "一级预算单位名称"),
    _f("AgencyCode", C, True, 42, "基层预算单位编码"),
    _f("AgencyName", T, True, 60, "基层预算单位名称"),
)
FUND: Final = (
    _f("FundTypeCode", C, True, 42, "资金性质编码"),
    _f("FundTypeName", T, False, 60, "资金性质名称"),
    _f("PayTypeCode", D, True, 2, "支付方式编码"),
    _f("SetModeCode", C, False, 42, "结算方式编码"),
)
CLASSIFICATION: Final = (
    _f("ExpFuncCode", C, True, 42, "功能分类编码"),
    _f("ExpFuncName", T, False, 60, "功能分类名称"),
    _f("ExpEcoCode", C, False, 42, "经济分类编码"),
    _f("ExpEcoName", T, False, 60, "经济分类名称"),
    _f("DepProCode", C, False, 42, "预算项目编码"),
    _f("DepProName", T, False, 60, "预算项目名称"),
)
PAYEE: Final = (
    _f("PayeeAcctNo", C, True, 42, "收款人账号"),
    _f("PayeeAcctName", T, True, 60, "收款人全称"),
    _f("PayeeAcctBankName", T, True, 60, "收款人开户银行"),
    _f("PayeeAcctBankNo", C, False, 42, "收款行行号"),
)
PAYER: Final = (
    _f("PayAcctNo", C, True, 42, "付款人账号"),
    _f("PayAcctName", T, True, 60, "付款人全称"),
    _f("PayAcctBankName", T, True, 60, "付款人开户银行"),
)
BANKS: Final = (
    _f("PayBankCode", C, True, 42, "代理银行编码"),
    _f("PayBankName", T, False, 60, "代理银行名称"),
    _f("ClearBankCode", C, False, 42, "清算银行编码"),
    _f("ClearBankName", T, False, 60, "清算银行名称"),
)
PURPOSE: Final = (
    _f("PaySummaryCode", C, False, 42, "用途编码"),
    _f("PaySummaryName", T, True, 200, "用途"),
)
PAY_AMOUNT: Final = (_f("PayAmt", A, True, 18, "金额"),)
PLAN: Final = (
    _f("PlanAmt", A, True, 18, "额度"),
    _f("SetMonth", FieldKind.MONTH, True, 2, "月份"),
)
RESULT: Final = (
    _f("XPayAmt", A, False, 18, "实际支付金额"),
    _f("XPayDate", FieldKind.DATE, False, 8, "实际支付日期"),
    _f("XAgentBusinessNo", C, False, 42, "银行交易流水号"),
    _f("XAddWord", T, False, 200, "附言"),
)
ORIGINAL: Final = (
    _f("OriVtCode", D, True, 4, "原凭证类型"),
    _f("OriVoucherNo", C, True, 42, "原凭证号"),
)
TAIL: Final = (
    _f("Remark", T, False, 200, "备注"),
    _f("Hold1", T, False, 200, "预留字段1"),
    _f("Hold2", T, False, 200, "预留字段2"),
)

RECON: Final = (
    _f("ReconDate", FieldKind.DATE, True, 8, "对账日期"),
    _f("ReconScope", C, True, 8, "对账范围"),
    _f("CounterpartyCode", C, True, 42, "对账方"),
    _f("VoucherCount", D, True, 9, "凭证笔数"),
    _f("PayAmt", A, True, 18, "金额合计"),
    _f("ReconDigest", C, True, 64, "凭证摘要值"),
    _f("ReconResult", D, False, 1, "对账结果"),
)
"""A reconciliation statement (对账单) and its answer (对账回执): the scope (day or month),
totals and an SM3 digest over the sorted (type, voucher no, version, amount, state) rows."""

DETAIL_RECON: Final = (
    _f("Id", D, True, 6, "明细序号"),
    _f("OriVtCode", D, True, 4, "凭证类型"),
    _f("Direction", C, True, 8, "收发方向"),
    _f("VoucherCount", D, True, 9, "凭证笔数"),
    _f("PayAmt", A, True, 18, "金额"),
    _f("ReconDigest", C, True, 64, "凭证摘要值"),
    _f("ReconResult", D, False, 1, "对账结果"),
)

DETAIL_PAYMENT: Final = (
    _f("Id", D, True, 6, "明细序号"),
    _f("AgencyCode", C, True, 42, "基层预算单位编码"),
    _f("ExpFuncCode", C, True, 42, "功能分类编码"),
    _f("ExpEcoCode", C, False, 42, "经济分类编码"),
    _f("PayAmt", A, True, 18, "金额"),
    _f("Remark", T, False, 200, "备注"),
)
DETAIL_PLAN: Final = (
    _f("Id", D, True, 6, "明细序号"),
    _f("AgencyCode", C, True, 42, "基层预算单位编码"),
    _f("FundTypeCode", C, True, 42, "资金性质编码"),
    _f("ExpFuncCode", C, True, 42, "功能分类编码"),
    _f("PlanAmt", A, True, 18, "额度"),
)
DETAIL_REPORT: Final = (
    _f("Id", D, True, 6, "明细序号"),
    _f("OriVtCode", D, True, 4, "原凭证类型"),
    _f("OriVoucherNo", C, True, 42, "原凭证号"),
    _f("AgencyCode", C, True, 42, "基层预算单位编码"),
    _f("PayAmt", A, True, 18, "金额"),
)


def optional(fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    return tuple(f.optional() for f in fields)
