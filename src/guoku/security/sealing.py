"""Voucher sealing and verification: the library's ``Sealer`` and ``SealVerifier``.

Sealing signs the canonical voucher bytes (stamps excluded, see ``guoku.xml.canonical``) once per
seal position of the voucher type: official seals through the signing server (签名服务器), the
handler's personal seal (私章) on that person's USB key (U盾). Each position's DER SES_Signature
goes, base64, into ``<Stamp No="...">``.

Verification (on every receive and on demand) checks, for every required position: the stamp is
there, the data hash matches, the SM2 signatures (signer and seal maker) verify, the seal was
valid at signing time, the signer's certificate chains to a trusted CA and was not revoked at
signing time, the seal is of the position's kind, the seal belongs to the sending party, and a
personal seal was applied by a clerk of that party holding the seal post.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from guoku.domain.controls import Post
from guoku.domain.document import VoucherDocument
from guoku.domain.parties import Party
from guoku.domain.seals import SealKind, SealPosition
from guoku.security.certs import TrustStore
from guoku.security.seals import (
    CLOCK_SKEW,
    SealInvalid,
    SealSignatureInfo,
    verify_seal_signature,
)
from guoku.security.signing_server import MAX_BATCH as SEAL_BATCH
from guoku.security.signing_server import SealRequest
from guoku.security.x509 import HolderKind
from guoku.store.repository import User
from guoku.xml.canonical import ReceivedVoucher, canonical_bytes

PROPERTY_PREFIX: Final = "guoku;"


class StampMissing(SealInvalid):
    code = "STAMP_MISSING"


class StampUnexpected(SealInvalid):
    code = "STAMP_UNEXPECTED"


class SealWrongKind(SealInvalid):
    code = "SEAL_WRONG_KIND"


class SealWrongParty(SealInvalid):
    code = "SEAL_WRONG_PARTY"


class OfficialSealSigner(Protocol):
    """The signing server's client, as the sealer needs it."""

    def seal_sign(
        self, *, username: str, post: Post, party_code: str, kind: SealKind, data: bytes,
        now: datetime, property_info: str = "",
    ) -> bytes: ...

    def batch_seal_sign(self, requests: Sequence[SealRequest]) -> list[bytes]: ...


class PersonalSealSigner(Protocol):
    """A clerk's USB key holding the personal seal, unlocked for this sealing session."""

    def seal_sign(self, data: bytes, now: datetime, property_info: str) -> bytes: ...


def property_info(position: SealPosition, username: str) -> str:
    """What the stamp says about itself: position, kind, clerk, post (signed with the stamp)."""
    return (f"{PROPERTY_PREFIX}pos={position.no};kind={position.kind.value};"
            f"user={username};post={Post.SEAL.value}")


def parse_property_info(text: str) -> dict[str, str]:
    if not text.startswith(PROPERTY_PREFIX):
        return {}
    pairs = (item.split("=", 1) for item in text[len(PROPERTY_PREFIX):].split(";") if "=" in item)
    return dict(pairs)


@dataclass
class VoucherSealer:
    """Implements ``guoku.library.ports.Sealer``."""

    official: OfficialSealSigner
    personal: Callable[[str], PersonalSealSigner]
    """username -> that clerk's unlocked USB key."""

    def seal(self, doc: VoucherDocument, user: User, at: datetime) -> VoucherDocument:
        data = canonical_bytes(doc.without_stamps())
        stamps: dict[str, str] = {}
        for position in doc.vtype.seal_positions:
            info = property_info(position, user.username)
            if position.kind is SealKind.PERSONAL:
                der = self.personal(user.username).seal_sign(data, at, info)
            else:
                der = self.official.seal_sign(
                    username=user.username, post=Post.SEAL, party_code=user.party.code,
                    kind=position.kind, data=data, now=at, property_info=info,
                )
            stamps[position.no] = base64.b64encode(der).decode("ascii")
        return doc.with_stamps(stamps)


    def seal_many(self, docs: Sequence[VoucherDocument], user: User,
                  at: datetime) -> list[VoucherDocument]:
        """Batch sealing (批量签章): the official stamps of all ``docs`` in signing-server
        batches, the personal stamps on the clerk's USB key."""
        data = [canonical_bytes(d.without_stamps()) for d in docs]
        stamps: list[dict[str, str]] = [{} for _ in docs]
        requests: list[tuple[int, str, SealRequest]] = []
        for i, doc in enumerate(docs):
            for position in doc.vtype.seal_positions:
                info = property_info(position, user.username)
                if position.kind is SealKind.PERSONAL:
                    der = self.personal(user.username).seal_sign(data[i], at, info)
                    stamps[i][position.no] = base64.b64encode(der).decode("ascii")
                else:
                    requests.append((i, position.no, SealRequest(
                        user.username, Post.SEAL, user.party.code, position.kind, data[i], at,
                        info)))
        for start in range(0, len(requests), SEAL_BATCH):
            chunk = requests[start:start + SEAL_BATCH]
            signed = self.official.batch_seal_sign([r for _, _, r in chunk])
            for (i, no, _), der in zip(chunk, signed, strict=True):
                stamps[i][no] = base64.b64encode(der).decode("ascii")
        return [doc.with_stamps(s) for doc, s in zip(docs, stamps, strict=True)]


@dataclass(frozen=True, slots=True)
class StampReport:
    position: str
    kind: str
    seal_name: str
    es_id: str
    signer: str
    party: str
    signed_at: datetime


@dataclass
class VoucherVerifier:
    """Implements ``guoku.library.ports.SealVerifier`` against a trust store (CA + CRLs)."""

    trust: TrustStore

    def verify(self, doc: VoucherDocument, sender: Party, at: datetime) -> None:
        self.report(doc, sender.code, at)

    def report(
        self, doc: VoucherDocument, sender_code: str | None, at: datetime | None
    ) -> list[StampReport]:
        """Verify every position and say what each stamp is; ``sender_code`` None = any party."""
        data = canonical_bytes(doc.without_stamps())
        return self._report(doc, data, lambda p: _b64(doc.stamps.get(p.no), p), sender_code, at)

    def report_received(
        self, received: ReceivedVoucher, sender_code: str | None, at: datetime | None
    ) -> list[StampReport]:
        """:meth:`report` of a voucher read from XML by ``read_voucher``: its canonical bytes
        and stamp bytes as read (the document was validated and each stamp's base64 checked
        and decoded there, once); every seal check is the same."""
        stamps = received.stamps
        return self._report(received.doc, received.canonical, lambda p: stamps.get(p.no),
                            sender_code, at)

    def _report(
        self, doc: VoucherDocument, data: bytes,
        stamp_of: Callable[[SealPosition], bytes | None], sender_code: str | None,
        at: datetime | None,
    ) -> list[StampReport]:
        expected = {p.no: p for p in doc.vtype.seal_positions}
        extra = sorted(set(doc.stamps) - set(expected))
        if extra:
            raise StampUnexpected(f"voucher {doc.voucher_no} has stamps at unknown positions "
                                  f"{extra}", voucher_no=doc.voucher_no)
        reports = [self._position(doc, p, stamp_of(p), data, sender_code, at)
                   for p in expected.values()]
        parties = {r.party for r in reports}
        if len(parties) > 1:
            raise SealWrongParty(f"the stamps of {doc.voucher_no} come from different parties "
                                 f"{sorted(parties)}", voucher_no=doc.voucher_no)
        return reports

    def _position(
        self, doc: VoucherDocument, position: SealPosition, stamp: bytes | None, data: bytes,
        sender_code: str | None, at: datetime | None,
    ) -> StampReport:
        if not stamp:
            raise StampMissing(
                f"voucher {doc.voucher_no} lacks the {position.kind.chinese} at position "
                f"{position.no}", voucher_no=doc.voucher_no, position=position.no,
            )
        # judged at the signing time (a later revocation does not undo a stamp made before it);
        # ``at`` only bounds the signing time from above: no stamps from the future
        info = verify_seal_signature(stamp, data, None, self.trust)
        if at is not None and info.signed_at > at + CLOCK_SKEW:
            raise SealInvalid(f"stamp {position.no} claims a signing time {info.signed_at} after "
                              f"{at}", position=position.no)
        _check_kind(info, position)
        party = _check_party(info, position, sender_code)
        return StampReport(position.no, position.kind.value, info.seal.name, info.seal.es_id,
                           info.signer_cert.subject, party, info.signed_at)


def _b64(stamp: str | None, position: SealPosition) -> bytes | None:
    if not stamp:
        return None
    try:
        return base64.b64decode(stamp, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealInvalid(f"stamp {position.no} is not base64") from exc


def _check_kind(info: SealSignatureInfo, position: SealPosition) -> None:
    if info.seal.kind is not position.kind:
        found = info.seal.kind.value if info.seal.kind else "unknown"
        raise SealWrongKind(
            f"position {position.no} needs a {position.kind.chinese}, found a {found} seal "
            f"({info.seal.name})", position=position.no,
        )


def _check_party(info: SealSignatureInfo, position: SealPosition, sender: str | None) -> str:
    """The party the stamp was applied for; it must be the sender (when known)."""
    holder = info.signer_cert.holder
    if holder is None:
        raise SealWrongParty(f"the signer certificate of stamp {position.no} names no party")
    if sender is not None and holder.party_code != sender:
        raise SealWrongParty(
            f"stamp {position.no} was applied for party {holder.party_code}, but the voucher "
            f"comes from {sender}", position=position.no,
        )
    wanted = HolderKind.PERSONAL if position.kind is SealKind.PERSONAL else HolderKind.INSTITUTION
    if holder.kind is not wanted:
        raise SealWrongParty(f"stamp {position.no} needs a {wanted.value} certificate")
    props: Mapping[str, str] = parse_property_info(info.property_info)
    if position.kind is SealKind.PERSONAL and (
        props.get("user") != holder.username or props.get("post") != Post.SEAL.value
    ):
        raise SealWrongParty(
            f"personal stamp {position.no} was not applied by its holder under the seal post"
        )
    return holder.party_code
