"""The JSON shapes of the service API: what business systems send and get back.

Money is the specification's decimal string (``"1234.50"``), never a JSON number, both ways.
Every input has a bound (field count, value length, detail lines, page size) checked by the
model before the library sees it; the library then applies the catalogue's own rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from guoku.domain.document import MAX_DETAILS
from guoku.domain.fields import FieldSpec
from guoku.domain.money import Amount
from guoku.domain.vouchers import VoucherType
from guoku.store.repository import VoucherRow
from guoku.xml.codec import from_xml

MAX_HEADER_FIELDS: Final = 80
"""More header fields than any catalogue type has (unknown names are refused by validation)."""
MAX_VALUE_CHARS: Final = 200
"""The longest field of the catalogue (用途, 备注, 附言)."""

FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9]{0,39}$")]
FieldValue = Annotated[str, StringConstraints(max_length=MAX_VALUE_CHARS)]
VtCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
PartyCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z._\-]{1,42}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Fields = dict[FieldName, FieldValue]


class ErrorOut(BaseModel):
    """Every refusal: ``error`` is the stable code of the typed error (e.g. ``NOT_FOUND``)."""

    error: str
    message: str


class VoucherIn(BaseModel):
    """录入: header fields and detail lines named as in the voucher catalogue
    (``GET /api/v1/catalogue/{vt_code}``); ``AdmDivCode`` defaults to the token's division."""

    model_config = ConfigDict(extra="forbid")

    vt_code: VtCode = Field(examples=["5201"])
    receiver: PartyCode = Field(description="Receiving party code, e.g. B-ICBC")
    header: Fields = Field(max_length=MAX_HEADER_FIELDS)
    details: list[Fields] = Field(default_factory=list, max_length=MAX_DETAILS)


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class VoucherOut(BaseModel):
    id: int
    ref: str
    admdiv: str
    st_year: int
    vt_code: str
    voucher_no: str
    version: int
    direction: Literal["in", "out"]
    state: str
    amount: str = Field(description='Decimal string, e.g. "1234.50"')
    vou_date: str
    sender: str
    receiver: str
    entered_by: str | None
    checked_by: str | None
    sealed_by: str | None
    return_reason: str | None
    print_count: int
    current: bool
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: VoucherRow) -> VoucherOut:
        return cls(
            id=row.id, ref=row.ref, admdiv=row.admdiv, st_year=row.st_year,
            vt_code=row.vt_code, voucher_no=row.voucher_no, version=row.version,
            direction="in" if row.direction == "in" else "out", state=row.state,
            amount=Amount(row.amount_fen).wire(), vou_date=row.vou_date,
            sender=row.sender_party, receiver=row.receiver_party, entered_by=row.entered_by,
            checked_by=row.checked_by, sealed_by=row.sealed_by,
            return_reason=row.return_reason, print_count=row.print_count,
            current=row.is_current, created_at=row.created_at, updated_at=row.updated_at,
        )


class VoucherDetailOut(VoucherOut):
    header: dict[str, str]
    details: list[dict[str, str]]
    stamps: list[str] = Field(description="Seal positions stamped (盖章位置)")
    xml: str = Field(description="The voucher XML as stored, with its seals (SES signatures)")

    @classmethod
    def of_full(cls, row: VoucherRow) -> VoucherDetailOut:
        doc = from_xml(row.xml)
        return cls(**VoucherOut.of(row).model_dump(), header=dict(doc.header),
                   details=[dict(d) for d in doc.details], stamps=sorted(doc.stamps),
                   xml=row.xml.decode("utf-8"))


class PageOut(BaseModel):
    items: list[VoucherOut]
    total: int
    page: int
    page_size: int


class EventOut(BaseModel):
    version: int
    event: str
    from_state: str | None
    to_state: str
    actor: str
    post: str | None
    reason: str | None
    at: str

    @classmethod
    def of(cls, event: dict[str, Any]) -> EventOut:
        return cls(version=event["version"], event=event["event"], from_state=event["from"],
                   to_state=event["to"], actor=event["actor"], post=event["post"],
                   reason=event["reason"], at=event["at"])


class ReceiptsOut(BaseModel):
    """The answers to one voucher: its settlement as the receiver answered (签收/退回, or the
    middleware's delivery and error receipts), and the sealed 回单 vouchers received for it."""

    voucher: VoucherOut
    settlement: list[EventOut]
    receipts: list[VoucherOut]


class FieldOut(BaseModel):
    name: str
    label: str
    kind: str
    required: bool
    max_length: int

    @classmethod
    def of(cls, spec: FieldSpec) -> FieldOut:
        return cls(name=spec.name, label=spec.label, kind=spec.kind.value,
                   required=spec.required, max_length=spec.max_length)


class VoucherTypeOut(BaseModel):
    code: str
    name: str
    slug: str
    sender: str
    receivers: list[str]
    amount_field: str
    receipt_of: str | None
    fields: list[FieldOut]
    detail_fields: list[FieldOut]

    @classmethod
    def of(cls, t: VoucherType) -> VoucherTypeOut:
        return cls(code=t.code, name=t.name, slug=t.slug, sender=t.sender.value,
                   receivers=[k.value for k in t.receivers], amount_field=t.amount_field,
                   receipt_of=t.receipt_of, fields=[FieldOut.of(f) for f in t.fields],
                   detail_fields=[FieldOut.of(f) for f in t.detail_fields])


class WhoAmIOut(BaseModel):
    system: str
    username: str
    party: str
    admdiv: str
    posts: list[str]
