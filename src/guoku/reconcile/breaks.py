"""What a reconciliation reports: the kinds of break (差异), one :class:`Break` per difference,
and the :class:`Period` a run covers.

Every break names two sides, *left* and *right*, and says what each holds:

* layer 1 (凭证库之间): left is the sender's copy of a voucher, right the receiver's copy;
* layer 2 (凭证库与业务系统): left is the voucher in the node's library, right the posting in the
  party's business ledger;
* layer 3 (业务系统之间): left and right are two parties' books — finance's payment against the
  agent bank's advance, the bank's advance against the treasury's clearing.

``party`` is whose side left is, ``counterparty`` the other party. A break about one voucher
carries its key (admdiv, year, type, number, version); a break about a total (a day's
summary, a unit's and fund type's sum) carries the group and leaves the voucher fields empty.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from guoku.domain.errors import ValidationError


class Layer(enum.IntEnum):
    LIBRARIES = 1
    """凭证库之间 — what each node sent and received."""
    LIBRARY_LEDGER = 2
    """凭证库与业务系统 — a node's vouchers against its parties' business ledger."""
    BUSINESS = 3
    """业务系统之间 — finance, agent bank and treasury books, amount by amount."""


class BreakKind(enum.StrEnum):
    MISSING = "missing"
    """我方有、对方无 — left holds it, right does not (a dropped message, an unadvanced payment)."""
    EXTRA = "extra"
    """对方有、我方无 — right holds what left never had."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """金额不符."""
    STATUS_MISMATCH = "status_mismatch"
    """状态不符 — the two copies' states do not agree (a voucher stuck in one state), or a
    posting exists for a voucher whose state never books."""
    UNBOOKED = "unbooked"
    """有凭证未记账 — the posting rules say the voucher is booked; the ledger has nothing."""
    BOOKING_WITHOUT_VOUCHER = "booking_without_voucher"
    """有记账无凭证 — a posting names a voucher the node does not hold."""
    DUPLICATE_BOOKING = "duplicate_booking"
    """重复记账 — one voucher booked twice: under a second account, or under a second version
    (or a version that does not exist) of the same voucher number."""
    MISBOOKED = "misbooked"
    """记账科目不符 — booked to an account its posting rules never give."""
    TOTAL_MISMATCH = "total_mismatch"
    """汇总不符 — counts, sums or digests of a group differ."""

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS: Final[dict[BreakKind, str]] = {
    BreakKind.MISSING: "我方有、对方无",
    BreakKind.EXTRA: "对方有、我方无",
    BreakKind.AMOUNT_MISMATCH: "金额不符",
    BreakKind.STATUS_MISMATCH: "状态不符",
    BreakKind.UNBOOKED: "有凭证未记账",
    BreakKind.BOOKING_WITHOUT_VOUCHER: "有记账无凭证",
    BreakKind.DUPLICATE_BOOKING: "重复记账",
    BreakKind.MISBOOKED: "记账科目不符",
    BreakKind.TOTAL_MISMATCH: "汇总不符",
}
"""The Chinese name of each kind, as a reconciliation statement prints it."""


class Break(NamedTuple):
    """One difference found by reconciliation, voucher by voucher (or group by group).

    Immutable, and a tuple underneath: a run at scale makes one per break, and a named tuple
    is built four times faster than a frozen dataclass."""

    layer: Layer
    kind: BreakKind
    admdiv: str
    party: str
    """Whose side ``left`` is: the sender (layer 1), the booking party (2), the left books (3)."""
    counterparty: str | None
    left: str
    """What the left side is, e.g. ``sender copy``, ``voucher``, ``finance paid``."""
    right: str
    vt_code: str | None = None
    st_year: int | None = None
    voucher_no: str | None = None
    version: int | None = None
    day: str | None = None
    left_amount_fen: int | None = None
    right_amount_fen: int | None = None
    left_state: str | None = None
    right_state: str | None = None
    account: str | None = None
    agency_code: str | None = None
    fund_type: str | None = None
    detail: str = ""

    @property
    def ref(self) -> str | None:
        """The voucher reference ``vt/year/no/vN`` ledgers use, when the break is a voucher's."""
        if self.vt_code is None or self.voucher_no is None or self.st_year is None:
            return None
        version = "" if self.version is None else f"/v{self.version}"
        return f"{self.vt_code}/{self.st_year}/{self.voucher_no}{version}"

    @property
    def label(self) -> str:
        return self.kind.label

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["layer"] = int(self.layer)
        data["kind"] = self.kind.value
        data["label"] = self.kind.label
        return data

    def __str__(self) -> str:
        what = self.ref or "/".join(x for x in (self.agency_code, self.fund_type) if x)
        amounts = f"{self.left_amount_fen} vs {self.right_amount_fen}"
        states = ("" if self.left_state is None and self.right_state is None
                  else f" [{self.left_state} vs {self.right_state}]")
        return (f"L{int(self.layer)} {self.kind.value} ({self.kind.label}) {self.admdiv} "
                f"{what} {self.day or ''} {self.party}->{self.counterparty}: {self.left} "
                f"vs {self.right} {amounts}{states} {self.detail}").rstrip()


_REF = re.compile(r"([^/]+)/([0-9]{1,6})/(.+)/v([0-9]{1,9})")


def parse_ref(ref: str) -> tuple[str, int, str, int] | None:
    """``vt/year/no/vN`` (``VoucherRow.ref``, the ledger's ``voucher_ref``) -> its parts."""
    match = _REF.fullmatch(ref)
    if match is None:
        return None
    vt, year, no, version = match.groups()
    return vt, int(year), no, int(version)


_DAY = re.compile(r"[12][0-9]{3}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])")
_MONTH = re.compile(r"[12][0-9]{3}(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True)
class Period:
    """The vouchers' days a run covers: one day (yyyymmdd), one month (yyyymm) or everything.

    Dates are compared as text (``vou_date`` and the ledger's ``day`` are yyyymmdd), so a
    month is the range yyyymm01..yyyymm31 and an index on the date column serves it.
    """

    first: str | None = None
    last: str | None = None

    @classmethod
    def of(cls, day: str | None = None, month: str | None = None) -> Period:
        if day is not None and month is not None:
            raise ValidationError("give a day or a month, not both", day=day, month=month)
        if day is not None:
            if not _DAY.fullmatch(day):
                raise ValidationError(f"day {day!r} is not yyyymmdd", day=day)
            return cls(day, day)
        if month is not None:
            if not _MONTH.fullmatch(month):
                raise ValidationError(f"month {month!r} is not yyyymm", month=month)
            return cls(f"{month}01", f"{month}31")
        return cls()

    @property
    def everything(self) -> bool:
        return self.first is None

    def __str__(self) -> str:
        if self.first is None:
            return "all days"
        return self.first if self.first == self.last else self.first[:6]
