"""Deterministic sample vouchers of any catalogue type, for tests, the demo and benchmarks.

:func:`sample_document` fills every field from its :class:`FieldSpec`: a realistic value for the
names the catalogue uses today (a Yunnan budget unit paying a stationery supplier), and a value
derived from the field's kind for any name added later, so a new voucher type gets samples
without touching this module. The same arguments always give the same document, and the result
is checked with the domain's ``validate`` before it is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from guoku.domain.document import MAX_DETAILS, VoucherDocument, validate
from guoku.domain.errors import ValidationError
from guoku.domain.fields import FieldKind, FieldSpec
from guoku.domain.money import Amount
from guoku.domain.vouchers import VoucherType, voucher_type

AUTHORIZED_PAY_TYPE: Final = "12"
"""支付方式 12 授权支付 (authorized); 11 is 直接支付 (direct)."""
DIRECT_PAY_TYPE: Final = "11"

_FIXED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "FinOrgCode": "530000001",
        "TreCode": "2531000000",
        "SupDepCode": "101",
        "SupDepName": "云南省财政厅",
        "AgencyCode": "101001",
        "AgencyName": "云南省财政厅机关",
        "FundTypeCode": "1",
        "FundTypeName": "一般公共预算资金",
        "SetModeCode": "1",
        "ExpFuncCode": "2010101",
        "ExpFuncName": "行政运行",
        "ExpEcoCode": "30201",
        "ExpEcoName": "办公费",
        "DepProCode": "53000025000000000001",
        "DepProName": "机关日常运转经费",
        "PayeeAcctNo": "2502010009200012345",
        "PayeeAcctName": "昆明市文具有限公司",
        "PayeeAcctBankName": "中国工商银行昆明分行",
        "PayeeAcctBankNo": "102731000019",
        "PayAcctNo": "53001234500052500001",
        "PayAcctName": "云南省财政厅零余额账户",
        "PayAcctBankName": "中国农业银行昆明分行",
        "PayBankCode": "103731000010",
        "PayBankName": "中国农业银行昆明分行",
        "ClearBankCode": "011731000018",
        "ClearBankName": "中国人民银行昆明中心支行",
        "PaySummaryCode": "01",
        "PaySummaryName": "购买办公用品",
        "XAddWord": "已支付",
        "Remark": "样例凭证",
        "Hold1": "预留一",
        "Hold2": "预留二",
    }
)
"""Realistic values of the fields whose value does not depend on the sample's arguments."""


@dataclass(frozen=True, slots=True)
class _Context:
    """What the varying field values are derived from."""

    vtype: VoucherType
    voucher_no: str
    amount: str
    admdiv: str
    vou_date: str


_DERIVED: Final[Mapping[str, Callable[[_Context], str]]] = MappingProxyType(
    {
        "AdmDivCode": lambda c: c.admdiv,
        "StYear": lambda c: c.vou_date[:4],
        "VtCode": lambda c: c.vtype.code,
        "VouDate": lambda c: c.vou_date,
        "VoucherNo": lambda c: c.voucher_no,
        "PayTypeCode": lambda c: (
            AUTHORIZED_PAY_TYPE if "authorized" in c.vtype.slug else DIRECT_PAY_TYPE
        ),
        "SetMonth": lambda c: c.vou_date[4:6],
        "XPayDate": lambda c: c.vou_date,
        "XAgentBusinessNo": lambda c: f"TX{c.vou_date}{c.voucher_no}"[:42],
        "OriVtCode": lambda c: c.vtype.receipt_of or "5201",
        "OriVoucherNo": lambda c: c.voucher_no,
    }
)
"""Values that follow the sample's arguments (type, number, date, admdiv)."""

_BY_KIND: Final[Mapping[FieldKind, Callable[[_Context, FieldSpec], str]]] = MappingProxyType(
    {
        FieldKind.TEXT: lambda c, s: s.label[: s.max_length],
        FieldKind.CODE: lambda c, s: "X1",
        FieldKind.DIGITS: lambda c, s: "1",
        FieldKind.AMOUNT: lambda c, s: c.amount,
        FieldKind.DATE: lambda c, s: c.vou_date,
        FieldKind.YEAR: lambda c, s: c.vou_date[:4],
        FieldKind.MONTH: lambda c, s: c.vou_date[4:6],
    }
)
"""Fallback for a field name neither table knows: a valid value of the field's kind."""


def sample_document(
    vtype: VoucherType | str,
    voucher_no: str = "SAMPLE0001",
    amount: str = "1234.56",
    *,
    details: int = 2,
    admdiv: str = "530000",
    vou_date: str = "20250115",
    optional: bool = True,
    version: int = 1,
) -> VoucherDocument:
    """A valid document of ``vtype`` (a type, code or slug); same arguments, same document.

    ``amount`` goes into every amount field; when the type has detail lines, it is split over
    ``details`` lines (fewer if the amount has fewer fen than that) that sum to it exactly.
    ``optional=False`` leaves optional fields out, giving the smallest valid voucher.
    """
    vt = voucher_type(vtype) if isinstance(vtype, str) else vtype
    if not 0 <= details <= MAX_DETAILS:
        raise ValidationError(f"details must be 0..{MAX_DETAILS}, got {details}")
    context = _Context(vt, voucher_no, amount, admdiv, vou_date)
    header = _values(context, vt.fields, optional)
    lines: tuple[dict[str, str], ...] = ()
    amount_field = vt.detail_amount_field
    if amount_field is not None:
        line = _values(context, vt.detail_fields, optional)
        lines = tuple(
            {**line, "Id": str(i), amount_field: part}
            for i, part in enumerate(split_amount(amount, details), start=1)
        )
    doc = VoucherDocument(vtype=vt, header=header, details=lines, version=version)
    validate(doc)
    return doc


def split_amount(amount: str, parts: int) -> tuple[str, ...]:
    """``amount`` as at most ``parts`` positive wire amounts summing to it to the fen."""
    fen = Amount.parse(amount).fen
    count = min(parts, max(fen, 0))
    if count == 0:
        return ()
    share = fen // count
    last = fen - share * (count - 1)
    return (*[Amount(share).wire()] * (count - 1), Amount(last).wire())


def _values(context: _Context, specs: tuple[FieldSpec, ...], optional: bool) -> dict[str, str]:
    return {spec.name: _value(context, spec) for spec in specs if spec.required or optional}


def _value(context: _Context, spec: FieldSpec) -> str:
    derived = _DERIVED.get(spec.name)
    if derived is not None:
        return derived(context)
    fixed = _FIXED.get(spec.name)
    if fixed is not None:
        return fixed
    return _BY_KIND[spec.kind](context, spec)
