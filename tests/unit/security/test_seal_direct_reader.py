"""The direct reader of a stamp (``seals._parse_signature_direct``) reads what asn1crypto reads,
and declines — leaving it to asn1crypto — everything not in guoku's exact DER shape.

For every input, ``parse_seal_signature`` must give what the asn1crypto path gives: the same
:class:`SealSignature` or the same error. Checked on stamps guoku writes (several propertyInfo
and length-of-length combinations), on hand-made variants (non-minimal lengths, other forms,
optional fields, other algorithms), and on fuzzed bytes around the parts the reader looks at.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from guoku.domain.seals import SealKind
from guoku.security import seals, ses
from guoku.security.batch_sealing import SealStamper
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.crypto import CryptoError, SM2PrivateKey
from guoku.security.seals import Seal, SealSignature, make_seal, parse_seal_signature

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AT = NOW + timedelta(hours=1)
INFOS = ["", "x", "guoku;pos=1;kind=bank_business;user=clerk;post=seal", "p" * 127, "q" * 1024]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (218, 37, 29, 255)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def stamper(tmp_path_factory: pytest.TempPathFactory) -> SealStamper:
    base = tmp_path_factory.mktemp("direct-ca")
    ca = CertificateAuthority.create(
        base / "ca", "direct", "correct horse battery", NOW - timedelta(days=1),
        kdf_iterations=MIN_KDF_ITERATIONS,
    )  # fmt: skip
    maker_key, key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    maker = ca.issue_institution("SEAL-MAKER", "制章", maker_key.public_key(), NOW)
    cert = ca.issue_institution("B-ICBC", "工商银行", key.public_key(), NOW)
    seal = make_seal(
        "B-ICBC-bank", "工商银行", SealKind.BANK_BUSINESS, [cert.der], png(), NOW,
        NOW + timedelta(days=30), maker_key, maker.der, NOW,
    )  # fmt: skip
    return SealStamper(seal, key, cert.der)


def outcome(parse: object, der: bytes) -> SealSignature | type[BaseException]:
    try:
        return parse(der)  # type: ignore[operator, no-any-return]
    except CryptoError as exc:
        return type(exc)


def same_as_asn1(der: bytes) -> SealSignature | type[BaseException]:
    """``parse_seal_signature(der)``, after checking that it is what asn1crypto gives."""
    expected = outcome(seals._parse_signature_asn1, der)
    assert outcome(parse_seal_signature, der) == expected
    return expected


def rebuild(stamp: bytes, tbs: dict[str, object], outer: dict[str, object]) -> bytes:
    """The stamp re-encoded by asn1crypto with some fields replaced (nothing re-signed)."""
    sig = ses.SESSignature.load(stamp)
    fields = {name: sig["to_sign"][name] for name in ("version", "eseal", "time_info",
                                                        "data_hash", "property_info")}  # fmt: skip
    fields.update(tbs)
    values = {name: sig[name] for name in ("cert", "signature_alg_id", "signature")}
    values.update(outer)
    return bytes(ses.SESSignature({"to_sign": ses.TBSSign(fields), **values}).dump())


@pytest.mark.parametrize("info", INFOS, ids=len)
@pytest.mark.parametrize("data", [b"", b"voucher", b"v" * 70_000])
def test_stamps_guoku_writes_are_read_directly_and_equal(
    stamper: SealStamper, info: str, data: bytes
) -> None:
    der = stamper.stamp(data, AT, info)
    seals.parse_seal(stamper.seal.der)  # the seal is known (as after its first stamp)
    direct = seals._parse_signature_direct(der)
    assert direct is not None
    assert direct == seals._parse_signature_asn1(der) == parse_seal_signature(der)
    assert direct.property_info == info and direct.signed_at == AT
    assert direct.to_sign.startswith(stamper.seal.der, direct.seal_offset)


def test_a_stamp_of_an_unknown_seal_goes_through_asn1crypto(stamper: SealStamper) -> None:
    der = stamper.stamp(b"data", AT)
    seals.clear_caches()
    assert seals._parse_signature_direct(der) is None
    parsed = parse_seal_signature(der)  # asn1crypto, which parses and keeps the seal
    assert seals._parse_signature_direct(der) == parsed


def test_a_seal_equal_but_for_one_byte_is_not_the_known_seal(stamper: SealStamper) -> None:
    der = bytearray(stamper.stamp(b"data", AT))
    seals.parse_seal(stamper.seal.der)
    at = der.index(stamper.seal.picture) + 4  # inside the picture: same first and last bytes
    der[at] ^= 1
    assert seals._parse_signature_direct(bytes(der)) is None
    assert isinstance(same_as_asn1(bytes(der)), SealSignature)  # parses; the maker check fails


def in_tbs(stamp: bytes, old: bytes, new: bytes) -> bytes:
    """The stamp with one element of TBS_Sign's contents replaced, the headers around fixed."""
    sig = ses.SESSignature.load(stamp)
    tbs = sig["to_sign"]
    assert old in tbs.contents
    tbs_der = ses.TBSSign(contents=tbs.contents.replace(old, new, 1)).dump()
    rest = sig.contents[len(tbs.dump()) :]
    return bytes(ses.SESSignature(contents=tbs_der + rest).dump())


def variants(stamp: bytes) -> dict[str, bytes]:
    """BER or other shapes asn1crypto may read, none of them guoku's DER shape."""
    ext = ses.ExtensionDatas([{"extn_id": "2.25.1", "extn_value": b"x"}])
    tbs = ses.SESSignature.load(stamp)["to_sign"]
    info, time = tbs["property_info"].dump(), tbs["time_info"].dump()
    count = stamp[1] - 0x80  # the outer length's bytes (long form: the stamp is > 127 bytes)
    return {
        "trailing byte": stamp + b"\x00",
        "non-minimal outer length": b"\x30" + bytes([0x81 + count, 0]) + stamp[2:],
        "long form for a short length": in_tbs(stamp, info, b"\x16\x81" + info[1:]),
        "constructed IA5String": in_tbs(stamp, info, b"\x36" + bytes([len(info)]) + info),
        "non-ascii propertyInfo": in_tbs(stamp, info, info[:2] + b"\xe9" + info[3:]),
        "time without seconds": in_tbs(stamp, time, b"\x18\x0d" + time[2:-3] + b"Z"),
        "time with fraction": in_tbs(stamp, time, b"\x18\x11" + time[2:-1] + b".5Z"),
        "ext_datas": rebuild(stamp, {"ext_datas": ext}, {}),
        "time_stamp": rebuild(stamp, {}, {"time_stamp": ses.tagged_bit_string(b"ts")}),
        "other algorithm": rebuild(stamp, {}, {"signature_alg_id": "1.2.840.10045.4.3.2"}),
        "version 3": rebuild(stamp, {"version": 3}, {}),
        "short hash": rebuild(stamp, {"data_hash": core.OctetBitString(b"h" * 31)}, {}),
    }


def test_other_shapes_are_left_to_asn1crypto(stamper: SealStamper) -> None:
    stamp = stamper.stamp(b"data", AT, "guoku;pos=1")
    seals.parse_seal(stamper.seal.der)
    for name, der in variants(stamp).items():
        assert der != stamp, name
        assert seals._parse_signature_direct(der) is None, name
        same_as_asn1(der)


@st.composite
def mutations(draw: st.DrawFn, size: int, seal_end: int) -> tuple[str, int, int]:
    """An edit at a place the reader reads: the headers, or after the seal."""
    at = draw(st.one_of(st.integers(0, 12), st.integers(seal_end - 6, size - 1)))
    return draw(st.sampled_from(["xor", "insert", "delete", "cut"])), at, draw(st.integers(1, 255))


def mutate(der: bytes, how: tuple[str, int, int]) -> bytes:
    kind, at, value = how
    if kind == "xor":
        return der[:at] + bytes([der[at] ^ value]) + der[at + 1 :]
    if kind == "insert":
        return der[:at] + bytes([value]) + der[at:]
    if kind == "delete":
        return der[:at] + der[at + 1 :]
    return der[:at]


@pytest.fixture(scope="module")
def fuzz_stamp(stamper: SealStamper) -> tuple[bytes, int]:
    der = stamper.stamp(b"data", AT, "guoku;pos=1;kind=bank_business")
    return der, der.index(stamper.seal.der) + len(stamper.seal.der)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_fuzzed_stamps_parse_as_asn1crypto_parses_them(
    stamper: SealStamper, fuzz_stamp: tuple[bytes, int], data: st.DataObject
) -> None:
    der, seal_end = fuzz_stamp
    seals.parse_seal(stamper.seal.der)
    changed = mutate(der, data.draw(mutations(len(der), seal_end)))
    result = same_as_asn1(changed)
    if isinstance(result, SealSignature):
        assert isinstance(result.seal, Seal)
