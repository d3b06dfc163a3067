"""A party's desks in one county and the moves every flow is made of: issue and answer.

``issue`` is the sender's four steps by three different clerks (录入 → 审核 → 盖章 → 发送);
``answer`` is the receiver's 签收 or 退回. ``Province.settle`` delivers what is in flight: the
embedded transport pumps, a deployment waits until the nodes are quiet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from guoku.domain.errors import NotFound
from guoku.library.service import VoucherLibrary
from guoku.store.repository import VoucherRow


class Province(Protocol):
    def library(self, party: str) -> VoucherLibrary: ...

    def settle(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Desk:
    """The clerks of ``party`` working for division ``admdiv`` (demo naming: prefix-admdiv-desk)."""

    party: str
    admdiv: str
    prefix: str

    def clerk(self, desk: str) -> str:
        return f"{self.prefix}-{self.admdiv}-{desk}"

    @property
    def entry(self) -> str:
        return self.clerk("entry")

    @property
    def review(self) -> str:
        return self.clerk("review")

    @property
    def sealer(self) -> str:
        return self.clerk("seal")

    @property
    def receiver(self) -> str:
        return self.clerk("recv")


def issue(
    province: Province, desk: Desk, vt_code: str, header: Mapping[str, str],
    details: Sequence[Mapping[str, str]], receiver: str,
) -> VoucherRow:
    """Entry, review, seal and send by three clerks; the voucher leaves through the outbox."""
    lib = province.library(desk.party)
    row = lib.create(desk.entry, vt_code, header, details, receiver=receiver)
    lib.check(desk.review, row.id)
    lib.seal(desk.sealer, row.id)
    return lib.send(desk.sealer, row.id)


def issue_many(
    province: Province, desk: Desk, vt_code: str,
    entries: Sequence[tuple[Mapping[str, str], Sequence[Mapping[str, str]]]], receiver: str,
) -> list[VoucherRow]:
    """:func:`issue` for many vouchers of one type to one receiver (批量录入、审核、签章、发送):
    the same clerks and checks, each step one transaction for all of them, the seals made in
    one signing-server batch, the vouchers leaving in shared envelopes."""
    if not entries:
        return []
    lib = province.library(desk.party)
    ids = [row.id for row in lib.create_many(desk.entry, vt_code, entries, receiver=receiver)]
    lib.check_many(desk.review, ids)
    lib.seal_many(desk.sealer, ids)
    return lib.send_many(desk.sealer, ids)


def received(province: Province, desk: Desk, sent: VoucherRow) -> VoucherRow:
    """The receiver's copy of ``sent`` (after ``settle``)."""
    return received_many(province, desk, [sent])[0]


def received_many(province: Province, desk: Desk,
                  sent: Sequence[VoucherRow]) -> list[VoucherRow]:
    """The receiver's copies of ``sent``, in one read."""
    lib = province.library(desk.party)
    try:
        return lib.find_many(desk.receiver, [(s.vt_code, s.st_year, s.voucher_no, s.version)
                                             for s in sent], "in")
    except NotFound:
        missing = ", ".join(s.ref for s in sent)
        raise NotFound(f"{desk.party} has not received all of {missing}") from None


def accept_many(province: Province, desk: Desk, sent: Sequence[VoucherRow]) -> list[VoucherRow]:
    """批量签收 of the receiver's copies of ``sent``: one transaction, all or none."""
    if not sent:
        return []
    copies = received_many(province, desk, sent)
    return province.library(desk.party).accept_many(desk.receiver, [c.id for c in copies])


def answer(province: Province, desk: Desk, sent: VoucherRow,
           return_reason: str | None = None) -> VoucherRow:
    """签收 — or 退回 with a reason — the receiver's copy of ``sent``."""
    lib = province.library(desk.party)
    copy = received(province, desk, sent)
    if return_reason is None:
        return lib.accept(desk.receiver, copy.id)
    return lib.return_(desk.receiver, copy.id, return_reason)


def state_of(province: Province, desk: Desk, row: VoucherRow) -> str:
    return province.library(desk.party).get(desk.entry, row.id).state


def payee_refusal(province: Province, desk: Desk, sent: VoucherRow) -> str | None:
    """The receiving bank's automatic payee-account check: why it must not accept, if so."""
    lib = province.library(desk.party)
    check = lib.payee_check(desk.receiver, received(province, desk, sent).id)
    if check is None or check.passed:
        return None
    return check.summary()
