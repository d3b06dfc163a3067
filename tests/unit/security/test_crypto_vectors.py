"""Standard vectors (GM/T 0002, 0003.5, 0004) and cross-library SM2 agreement.

Three SM2 implementations check one another: tongsuopy (guoku's signer), gmssl-pyx (GmSSL 3,
guoku's SM2 encryption) and the pure-Python ``gmssl`` package, which is a test-only oracle and
has a key-parsing bug (``public_key.lstrip("04")`` strips any leading '0'/'4' hex digits), so it is
only ever handed X||Y whose hex does not start with "04".

The SM2 example is GM/T 0003.5-2012 (GB/T 32918.5) on the recommended curve, as published in
OpenSSL's ``test/sm2_internal_test.c`` and many other implementations' tests: private key d, the
message "message digest", signer ID "1234567812345678", nonce k, ZA, e and (r, s).
"""

from __future__ import annotations

import gmssl_pyx
import pytest
from asn1crypto import algos
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm2 as pure_sm2

from guoku.security.crypto import (
    DEFAULT_SIGNER_ID,
    DecryptionFailed,
    SignatureInvalid,
    SM2PrivateKey,
    SM2PublicKey,
    pbkdf2_sm3,
    sm3,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)

# GM/T 0003.5-2012 recommended curve (sm2p256v1)
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

# GM/T 0003.5-2012 signature example on that curve
D = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
XA = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
YA = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
ZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
MESSAGE = b"message digest"


def _der(r: str, s: str) -> bytes:
    return bytes(algos.DSASignature({"r": int(r, 16), "s": int(s, 16)}).dump())


def _oracle_safe_key() -> SM2PrivateKey:
    """A fresh key whose X||Y hex does not start with "04" (see the gmssl bug above)."""
    while True:
        key = SM2PrivateKey.generate()
        if not key.public_key().point[1:].hex().startswith("04"):
            return key


def _pure(key: SM2PrivateKey) -> pure_sm2.CryptSM2:
    return pure_sm2.CryptSM2(
        private_key=key.scalar().hex(), public_key=key.public_key().point[1:].hex(), asn1=True
    )


# -- SM3 (GM/T 0004-2012 appendix A) ---------------------------------------------------------


def test_sm3_of_abc() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_sm3_of_the_64_byte_message() -> None:
    assert (
        sm3(b"abcd" * 16).hex()
        == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def test_sm3_agrees_with_gmssl_pyx() -> None:
    data = bytes(range(256)) * 3
    assert sm3(data) == gmssl_pyx.sm3_hash(data)


# -- SM4 (GM/T 0002-2012 appendix A) ---------------------------------------------------------


def test_sm4_block_vector() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_gcm_round_trip_and_tamper() -> None:
    key = bytes(range(16))
    blob = sm4_gcm_encrypt(key, b"voucher", b"aad")
    assert sm4_gcm_decrypt(key, blob, b"aad") == b"voucher"
    with pytest.raises(DecryptionFailed):
        sm4_gcm_decrypt(key, blob, b"other aad")


def test_pbkdf2_sm3_is_deterministic_and_salted() -> None:
    assert pbkdf2_sm3(b"pin", b"salt", 1000) == pbkdf2_sm3(b"pin", b"salt", 1000)
    assert pbkdf2_sm3(b"pin", b"salt", 1000) != pbkdf2_sm3(b"pin", b"salu", 1000)
    assert len(pbkdf2_sm3(b"pin", b"salt", 1000)) == 16


# -- SM2 (GM/T 0003.5-2012 example on the recommended curve) ---------------------------------


def test_the_curve_parameters_hold() -> None:
    """G is on y² = x³ + ax + b over F_p, and the example key derives the example point."""
    assert (GY * GY - (GX**3 + A * GX + B)) % P == 0
    oracle = pure_sm2.CryptSM2(private_key=D.lower(), public_key=XA + YA)
    assert int(oracle.ecc_table["n"], 16) == N and int(oracle.ecc_table["p"], 16) == P
    assert oracle.ecc_table["g"].upper() == f"{GX:064X}{GY:064X}"


def test_the_example_private_key_derives_the_example_public_key() -> None:
    key = SM2PrivateKey.from_scalar(bytes.fromhex(D))
    assert key.public_key().point.hex().upper() == "04" + XA + YA


def test_za_and_e_of_the_example() -> None:
    """ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA); e = SM3(ZA || M)."""
    ident = DEFAULT_SIGNER_ID
    za = sm3(
        (len(ident) * 8).to_bytes(2, "big")
        + ident
        + b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY))
        + bytes.fromhex(XA + YA)
    )
    assert za.hex().upper() == ZA
    assert sm3(za + MESSAGE).hex().upper() == E


def test_the_published_example_signature_verifies_in_every_library() -> None:
    sig = _der(R, S)
    SM2PublicKey(bytes.fromhex("04" + XA + YA)).verify(sig, MESSAGE)
    assert gmssl_pyx.sm2_verify(bytes.fromhex(XA + YA), MESSAGE, sig)
    assert pure_sm2.CryptSM2(private_key=D.lower(), public_key=XA + YA, asn1=True).verify_with_sm3(
        sig.hex(), MESSAGE
    )
    with pytest.raises(SignatureInvalid):
        SM2PublicKey(bytes.fromhex("04" + XA + YA)).verify(sig, b"message digesT")


def test_the_oracle_reproduces_r_and_s_from_the_published_nonce() -> None:
    oracle = pure_sm2.CryptSM2(private_key=D.lower(), public_key=XA + YA, asn1=True)
    assert oracle.sign(bytes.fromhex(E), K) == _der(R, S).hex()


# -- SM2 across libraries --------------------------------------------------------------------


def test_a_tongsuopy_signature_verifies_in_gmssl_pyx_and_pure_gmssl() -> None:
    key = _oracle_safe_key()
    data = "国库集中支付 voucher".encode()
    sig = key.sign(data)
    assert gmssl_pyx.sm2_verify(key.public_key().point[1:], data, sig)
    assert _pure(key).verify_with_sm3(sig.hex(), data)
    assert not gmssl_pyx.sm2_verify(key.public_key().point[1:], data + b"!", sig)


def test_a_gmssl_pyx_signature_verifies_in_guoku() -> None:
    key = SM2PrivateKey.generate()
    data = b"signed by GmSSL"
    sig = gmssl_pyx.sm2_sign(key.scalar(), key.public_key().point[1:], data)
    key.public_key().verify(bytes(sig), data)


def test_a_pure_gmssl_signature_verifies_in_guoku() -> None:
    key = _oracle_safe_key()
    data = b"signed by the pure-Python oracle"
    sig = bytes.fromhex(_pure(key).sign_with_sm3(data))
    key.public_key().verify(sig, data)


def test_a_signature_with_another_signer_id_does_not_verify() -> None:
    key = SM2PrivateKey.generate()
    sig = gmssl_pyx.sm2_sign(key.scalar(), key.public_key().point[1:], b"x", b"ALICE123@YAHOO.COM")
    with pytest.raises(SignatureInvalid):
        key.public_key().verify(bytes(sig), b"x")


@pytest.mark.parametrize("bad", [b"", b"garbage", b"\x30\x03\x02\x01", bytes(72)])
def test_a_malformed_signature_is_signature_invalid_not_a_crash(bad: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        SM2PrivateKey.generate().public_key().verify(bad, b"x")


def test_sm2_key_wrapping_round_trips_between_guoku_and_gmssl_pyx() -> None:
    key = SM2PrivateKey.generate()
    wrapped = key.public_key().encrypt(b"0123456789abcdef")
    assert key.decrypt(wrapped) == b"0123456789abcdef"
    assert gmssl_pyx.sm2_decrypt(key.scalar(), wrapped) == b"0123456789abcdef"
