"""Layer 1 between two voucher libraries, as sealed vouchers (6.1): one side sends its
statement (对账单, 3501-3503), the other compares it with its own and answers with a sealed
reconciliation receipt (对账回执, 3511-3513) naming the lines that differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from guoku.domain.money import Amount
from guoku.domain.parties import PartyKind
from guoku.flows.desk import Desk, Province, issue, received
from guoku.reconcile.statement import Line, LineResult, compare, summarize
from guoku.security.crypto import sm3_hex
from guoku.store.repository import VoucherQuery, VoucherRow
from guoku.xml.codec import from_xml

F, B, P = PartyKind.FINANCE, PartyKind.BANK, PartyKind.PBOC
STATEMENT: Final = {(F, B): "3501", (F, P): "3502", (B, P): "3503"}
ANSWER: Final = {"3501": "3511", "3502": "3512", "3503": "3513"}
AGREE, DIFFER = "0", "1"


@dataclass
class ExchangeResult:
    statement: VoucherRow
    answer: VoucherRow
    lines: list[LineResult] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return all(line.agrees for line in self.lines)


def _parties(province: Province, desk: Desk) -> list[str]:
    """Every party on the desk's node (finance also speaks for the units it hosts)."""
    return list(province.library(desk.party).node_parties())


def _doc(statement_type: str, desk: Desk, counterparty: str, scope: str, round_no: int,
         lines: list[Line], results: dict[tuple[str, str], str] | None = None,
         ) -> tuple[dict[str, str], list[dict[str, str]]]:
    total = sum(line.amount_fen for line in lines)
    overall = sm3_hex("".join(f"{ln.vt_code}{ln.direction}{ln.digest}" for ln in lines).encode())
    header = {"AdmDivCode": desk.admdiv, "StYear": scope[:4], "VtCode": statement_type,
              "VouDate": scope if len(scope) == 8 else f"{scope}01",
              "VoucherNo": f"{statement_type}-{desk.party}-{counterparty}-{scope}-{round_no}",
              "ReconDate": scope if len(scope) == 8 else f"{scope}01",
              "ReconScope": "day" if len(scope) == 8 else "month",
              "CounterpartyCode": counterparty, "VoucherCount": str(sum(x.count for x in lines)),
              "PayAmt": Amount(total).wire(), "ReconDigest": overall}
    details = []
    for i, line in enumerate(lines, start=1):
        detail = {"Id": str(i), "OriVtCode": line.vt_code, "Direction": line.direction,
                  "VoucherCount": str(line.count), "PayAmt": Amount(line.amount_fen).wire(),
                  "ReconDigest": line.digest}
        if results is not None:
            detail["ReconResult"] = results[(line.vt_code, line.direction)]
        details.append(detail)
    if results is not None:
        header["ReconResult"] = DIFFER if DIFFER in results.values() else AGREE
    return header, details


def _lines_of(doc_details: list[dict[str, str]]) -> list[Line]:
    return [Line(d["OriVtCode"], d["Direction"], int(d["VoucherCount"]),
                 Amount.parse(d["PayAmt"]).fen, d["ReconDigest"]) for d in doc_details]


def exchange(province: Province, ours: Desk, theirs: Desk, scope: str) -> ExchangeResult:
    """Send our statement for ``scope`` (yyyymmdd or yyyymm); they check it and answer."""
    kinds = (province.library(ours.party).party_kind(), province.library(theirs.party)
             .party_kind())
    statement_type = STATEMENT[kinds]
    with province.library(ours.party).engine.connect() as conn:
        mine = summarize(conn, ours.admdiv, _parties(province, ours),
                         _parties(province, theirs), scope)
    round_no = 1 + province.library(ours.party).query(ours.entry, VoucherQuery(
        vt_code=statement_type, direction="out", current_only=False), page_size=1).total
    header, details = _doc(statement_type, ours, theirs.party, scope, round_no, mine)
    statement = issue(province, ours, statement_type, header, details, receiver=theirs.party)
    province.settle()
    # their business system compares the statement with its own books and answers
    copy = received(province, theirs, statement)
    stated = _lines_of([dict(d) for d in from_xml(copy.xml).details])
    with province.library(theirs.party).engine.connect() as conn:
        theirs_lines = summarize(conn, theirs.admdiv, _parties(province, theirs),
                                 _parties(province, ours), scope)
    results = compare(stated, theirs_lines)
    verdict = {(r.vt_code, r.direction): AGREE if r.agrees else DIFFER for r in results}
    answer_header, answer_details = _doc(
        ANSWER[statement_type], theirs, ours.party, scope, round_no,
        [Line(r.vt_code, r.direction, r.theirs.count if r.theirs else 0,
              r.theirs.amount_fen if r.theirs else 0,
              r.theirs.digest if r.theirs else "-") for r in results],
        verdict)
    lib = province.library(theirs.party)
    lib.accept(theirs.receiver, copy.id)
    answer = issue(province, theirs, ANSWER[statement_type], answer_header, answer_details,
                   receiver=ours.party)
    province.settle()
    province.library(ours.party).accept(ours.receiver, received(province, ours, answer).id)
    province.settle()
    return ExchangeResult(statement, answer, results)
