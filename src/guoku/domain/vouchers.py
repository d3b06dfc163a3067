"""The voucher catalogue: every voucher type of the three flows, their refunds, notices, daily
reports and receipts — code, Chinese name, sender, receivers, fields and seal positions.

Codes seen in public implementations of the MoF/PBOC interface specification are used as they are
(DOMAIN.md section 8); codes the project chose are marked ``chosen=True`` and documented in
docs/decisions/0002-voucher-type-codes.md. A receipt (回单) of voucher type ``X`` has the code
``9000 + X mod 1000`` and carries ``OriVtCode``/``OriVoucherNo`` pointing at the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from guoku.domain import fields as fs
from guoku.domain.errors import UnknownVoucherType
from guoku.domain.fields import FieldSpec
from guoku.domain.parties import PartyKind
from guoku.domain.seals import SealKind, SealPosition

F, P, B, U = PartyKind.FINANCE, PartyKind.PBOC, PartyKind.BANK, PartyKind.UNIT


@dataclass(frozen=True, slots=True)
class VoucherType:
    code: str
    name: str
    """Chinese name as printed on the voucher."""
    slug: str
    """English name used in code, files and the CLI."""
    sender: PartyKind
    receivers: tuple[PartyKind, ...]
    fields: tuple[FieldSpec, ...]
    detail_fields: tuple[FieldSpec, ...] = ()
    seal_positions: tuple[SealPosition, ...] = ()
    amount_field: str = "PayAmt"
    """Header field holding the voucher's amount; details must sum to it."""
    receipt_of: str | None = None
    chosen: bool = False
    """True when the code is the project's choice, not seen in public code."""
    zero_amount: bool = False
    """Amounts may be zero (a reconciliation statement of a quiet day); never negative."""
    flows: tuple[str, ...] = field(default=())

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def has_details(self) -> bool:
        return bool(self.detail_fields)

    @property
    def detail_amount_field(self) -> str | None:
        names = {f.name for f in self.detail_fields}
        for name in (self.amount_field, "PayAmt", "PlanAmt"):
            if name in names:
                return name
        return None


def _stamps(*kinds: SealKind) -> tuple[SealPosition, ...]:
    return tuple(SealPosition(str(i + 1), k) for i, k in enumerate(kinds))


FINANCE_STAMPS: Final = _stamps(SealKind.UNIT_FINANCE, SealKind.PERSONAL)
UNIT_STAMPS: Final = _stamps(SealKind.UNIT_FINANCE, SealKind.PERSONAL)
BANK_STAMPS: Final = _stamps(SealKind.BANK_BUSINESS)
TREASURY_STAMPS: Final = _stamps(SealKind.TREASURY)

_PAYMENT = (
    fs.HEADER + fs.FINANCE_ORG + fs.UNIT + fs.FUND + fs.CLASSIFICATION + fs.PAYEE + fs.PAYER
    + fs.BANKS + fs.PURPOSE + fs.PAY_AMOUNT + fs.RESULT + fs.TAIL
)
_QUOTA = (
    fs.HEADER + fs.FINANCE_ORG + fs.UNIT + fs.FUND + fs.CLASSIFICATION + fs.BANKS + fs.PLAN
    + fs.TAIL
)
_CLEARING_QUOTA = fs.HEADER + fs.FINANCE_ORG + fs.FUND + fs.BANKS + fs.PLAN + fs.TAIL
_TRANSFER = (
    fs.HEADER + fs.FINANCE_ORG + fs.FUND + fs.PAYER + fs.BANKS + fs.PAY_AMOUNT + fs.RESULT
    + fs.TAIL
)
_NOTICE = (
    fs.HEADER + fs.FINANCE_ORG + fs.UNIT + fs.FUND + fs.optional(fs.CLASSIFICATION)
    + fs.optional(fs.PAYEE) + fs.BANKS + fs.optional(fs.ORIGINAL) + fs.PAY_AMOUNT + fs.RESULT
    + fs.TAIL
)
_QUOTA_ARRIVAL = (
    fs.HEADER + fs.FINANCE_ORG + fs.UNIT + fs.FUND + fs.BANKS + fs.ORIGINAL + fs.PLAN + fs.TAIL
)
_DAILY_REPORT = fs.HEADER + fs.FINANCE_ORG + fs.FUND + fs.BANKS + fs.PAY_AMOUNT + fs.TAIL
_ALLOCATION = (
    fs.HEADER + fs.FINANCE_ORG + fs.UNIT + fs.FUND + fs.CLASSIFICATION + fs.PAYEE + fs.PAYER
    + fs.PURPOSE + fs.PAY_AMOUNT + fs.RESULT + fs.TAIL
)
_RECON = fs.HEADER + fs.RECON + fs.TAIL
_RECEIPT = (
    fs.HEADER + fs.FINANCE_ORG + fs.ORIGINAL + fs.PAY_AMOUNT + fs.RESULT + fs.TAIL
)

_TYPES: tuple[VoucherType, ...] = (
    # 5.1 authorized payment — quota issue
    VoucherType("5102", "财政授权支付额度通知单", "authorized_quota_notice", F, (B,), _QUOTA,
                fs.DETAIL_PLAN, FINANCE_STAMPS, "PlanAmt", chosen=True,
                flows=("quota_issue",)),
    VoucherType("5106", "财政授权支付汇总清算额度通知单", "authorized_clearing_quota_notice", F,
                (P,), _CLEARING_QUOTA, fs.DETAIL_PLAN, FINANCE_STAMPS, "PlanAmt",
                flows=("quota_issue",)),
    VoucherType("5105", "财政授权支付额度到账通知书", "authorized_quota_arrival_notice", B, (F,),
                _QUOTA_ARRIVAL, (), BANK_STAMPS, "PlanAmt", flows=("quota_issue",)),
    # 5.1 authorized payment — payment by a unit
    VoucherType("8202", "财政授权支付凭证", "authorized_payment", U, (B,), _PAYMENT,
                fs.DETAIL_PAYMENT, UNIT_STAMPS, flows=("authorized_payment",)),
    VoucherType("2301", "申请划款凭证", "transfer_application", B, (P,), _TRANSFER,
                fs.DETAIL_REPORT, BANK_STAMPS,
                flows=("authorized_payment", "direct_payment")),
    VoucherType("2205", "财政授权支付日报表", "authorized_daily_report", B, (F,), _DAILY_REPORT,
                fs.DETAIL_REPORT, BANK_STAMPS, chosen=True, flows=("authorized_payment",)),
    # refunds
    VoucherType("2302", "申请退款凭证", "refund_application", B, (P,), _TRANSFER,
                fs.DETAIL_REPORT, BANK_STAMPS,
                flows=("authorized_refund", "direct_refund")),
    VoucherType("2204", "财政授权支付退款通知书", "authorized_refund_notice", B, (F,), _NOTICE,
                (), BANK_STAMPS, flows=("authorized_refund",)),
    VoucherType("2207", "财政授权支付退款日报表", "authorized_refund_daily_report", B, (F,),
                _DAILY_REPORT, fs.DETAIL_REPORT, BANK_STAMPS, chosen=True,
                flows=("authorized_refund",)),
    # 5.2 direct payment
    VoucherType("5201", "财政直接支付凭证", "direct_payment", F, (B,), _PAYMENT,
                fs.DETAIL_PAYMENT, FINANCE_STAMPS, flows=("direct_payment",)),
    VoucherType("5108", "财政直接支付汇总清算额度通知单", "direct_clearing_quota_notice", F,
                (P,), _CLEARING_QUOTA, fs.DETAIL_PLAN, FINANCE_STAMPS, "PlanAmt",
                flows=("direct_payment",)),
    VoucherType("2208", "财政直接支付入账通知书", "direct_credit_notice", B, (F,), _NOTICE,
                (), BANK_STAMPS, chosen=True, flows=("direct_payment",)),
    VoucherType("2206", "财政直接支付日报表", "direct_daily_report", B, (F,), _DAILY_REPORT,
                fs.DETAIL_REPORT, BANK_STAMPS, flows=("direct_payment",)),
    VoucherType("2203", "财政直接支付退款入账通知书", "direct_refund_notice", B, (F,), _NOTICE,
                (), BANK_STAMPS, flows=("direct_refund",)),
    # 5.3 allocation
    VoucherType("5207", "实拨拨款凭证", "allocation", F, (P,), _ALLOCATION, (),
                FINANCE_STAMPS, flows=("allocation",)),
    VoucherType("3208", "实拨退款凭证", "allocation_refund", P, (F,), _ALLOCATION, (),
                TREASURY_STAMPS, flows=("allocation_refund",)),
    # reconciliation between voucher libraries (对账单 and 对账回执), chosen codes in 35xx
    VoucherType("3501", "电子凭证对账单（财政—代理银行）", "recon_finance_bank", F, (B,), _RECON,
                fs.DETAIL_RECON, FINANCE_STAMPS[:1], "PayAmt", chosen=True,
                zero_amount=True, flows=("reconciliation",)),
    VoucherType("3502", "电子凭证对账单（财政—人民银行）", "recon_finance_pboc", F, (P,), _RECON,
                fs.DETAIL_RECON, FINANCE_STAMPS[:1], "PayAmt", chosen=True,
                zero_amount=True, flows=("reconciliation",)),
    VoucherType("3503", "电子凭证对账单（代理银行—人民银行）", "recon_bank_pboc", B, (P,),
                _RECON, fs.DETAIL_RECON, BANK_STAMPS, "PayAmt", chosen=True,
                zero_amount=True, flows=("reconciliation",)),
    VoucherType("3511", "电子凭证对账回执（代理银行—财政）", "recon_answer_bank_finance", B, (F,),
                _RECON, fs.DETAIL_RECON, BANK_STAMPS, "PayAmt", chosen=True,
                zero_amount=True, flows=("reconciliation",)),
    VoucherType("3512", "电子凭证对账回执（人民银行—财政）", "recon_answer_pboc_finance", P, (F,),
                _RECON, fs.DETAIL_RECON, TREASURY_STAMPS, "PayAmt", chosen=True,
                zero_amount=True, flows=("reconciliation",)),
    VoucherType("3513", "电子凭证对账回执（人民银行—代理银行）", "recon_answer_pboc_bank", P, (B,),
                _RECON, fs.DETAIL_RECON, TREASURY_STAMPS, "PayAmt", chosen=True,
                zero_amount=True, flows=("reconciliation",)),
    # receipts (回单)
    VoucherType("9106", "授权支付汇总清算额度通知单回单", "authorized_clearing_quota_receipt", P,
                (F,), _RECEIPT, (), TREASURY_STAMPS, receipt_of="5106", chosen=True,
                flows=("quota_issue",)),
    VoucherType("9108", "直接支付汇总清算额度通知单回单", "direct_clearing_quota_receipt", P,
                (F,), _RECEIPT, (), TREASURY_STAMPS, receipt_of="5108", chosen=True,
                flows=("direct_payment",)),
    VoucherType("9201", "财政直接支付凭证回单", "direct_payment_receipt", B, (F,), _RECEIPT, (),
                BANK_STAMPS, receipt_of="5201", chosen=True, flows=("direct_payment",)),
    VoucherType("9207", "实拨拨款凭证回单", "allocation_receipt", P, (F,), _RECEIPT, (),
                TREASURY_STAMPS, receipt_of="5207", chosen=True, flows=("allocation",)),
    VoucherType("9301", "申请划款凭证回单", "transfer_application_receipt", P, (B, F), _RECEIPT,
                (), TREASURY_STAMPS, receipt_of="2301", chosen=True,
                flows=("authorized_payment", "direct_payment")),
    VoucherType("9302", "申请退款凭证回单", "refund_application_receipt", P, (B, F), _RECEIPT,
                (), TREASURY_STAMPS, receipt_of="2302", chosen=True,
                flows=("authorized_refund", "direct_refund")),
)

CATALOGUE: Final[Mapping[str, VoucherType]] = MappingProxyType({t.code: t for t in _TYPES})
BY_SLUG: Final[Mapping[str, VoucherType]] = MappingProxyType({t.slug: t for t in _TYPES})


def voucher_type(code_or_slug: str) -> VoucherType:
    """Look a type up by numeric code (``"5201"``) or slug (``"direct_payment"``)."""
    found = CATALOGUE.get(code_or_slug) or BY_SLUG.get(code_or_slug)
    if found is None:
        raise UnknownVoucherType(f"unknown voucher type {code_or_slug!r}", vt_code=code_or_slug)
    return found


def all_types() -> tuple[VoucherType, ...]:
    return _TYPES
