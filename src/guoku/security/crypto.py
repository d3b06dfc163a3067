"""The one crypto adapter: SM2 (sign, verify, encrypt), SM3, SM4-GCM, PBKDF2-SM3.

Every national-algorithm primitive guoku uses goes through this module, so a backend can be
swapped in one place. Backends (measured choice in docs/decisions/0003-crypto-backends.md):

* SM2 sign/verify and key generation: ``tongsuopy`` (Tongsuo, an OpenSSL fork). Signatures are
  standard GM/T 0009 DER (r, s) with the default signer ID ``1234567812345678``.
* SM2 encryption (key wrapping): ``gmssl-pyx`` (GmSSL 3), ciphertext in GM/T 0009 DER (C1C3C2).
* SM3, SM4-GCM, PBKDF2: ``cryptography``.

Messages that share a long prefix (every seal signature of one seal starts with the same
tens of kilobytes: the seal itself) are signed and verified with the SM3 state after the prefix
computed once (:meth:`SM2PrivateKey.prefix_signer`, :meth:`SM2PublicKey.prefix_verifier`).
tongsuopy has no API for that, only its cffi binding of the EVP digest-sign calls; this module
is the one place that reaches for it (docs/decisions/0009-sealing-throughput.md, change A).

Third-party exceptions are translated here into :class:`CryptoError` subclasses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

import gmssl_pyx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from tongsuopy.backends.tongsuo.backend import backend as _t_backend
from tongsuopy.crypto import exceptions as t_exceptions
from tongsuopy.crypto import hashes as t_hashes
from tongsuopy.crypto import serialization as t_ser
from tongsuopy.crypto.asymciphers import ec as t_ec

from guoku.domain.errors import GuokuError

DEFAULT_SIGNER_ID: Final = b"1234567812345678"
"""GM/T 0009 default SM2 signer ID, the one OpenSSL's ``distid`` and every seal tool use."""

SM4_KEY_BYTES: Final = 16
GCM_NONCE_BYTES: Final = 12
GCM_TAG_BYTES: Final = 16


class CryptoError(GuokuError):
    """A cryptographic operation failed on its input (bad key, bad signature, bad ciphertext)."""

    code = "CRYPTO_ERROR"


class SignatureInvalid(CryptoError):
    """An SM2 signature does not verify."""

    code = "SIGNATURE_INVALID"


class DecryptionFailed(CryptoError):
    """A ciphertext did not decrypt or its authentication tag did not match."""

    code = "DECRYPTION_FAILED"


class KeyInvalid(CryptoError):
    """Key bytes could not be loaded as an SM2 key."""

    code = "KEY_INVALID"


def sm3(data: bytes) -> bytes:
    """SM3 digest (32 bytes)."""
    h = c_hashes.Hash(c_hashes.SM3())
    h.update(data)
    return h.finalize()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


@dataclass(frozen=True, slots=True)
class SM2PublicKey:
    """An SM2 public key. ``point`` is the 65-byte uncompressed point 04||X||Y."""

    point: bytes

    def __post_init__(self) -> None:
        if len(self.point) != 65 or self.point[0] != 4:
            raise KeyInvalid("an SM2 public key is a 65-byte uncompressed point (04||X||Y)")

    @classmethod
    def from_spki_der(cls, der: bytes) -> SM2PublicKey:
        """Load a DER SubjectPublicKeyInfo (as found in an X.509 certificate)."""
        try:
            key = t_ser.load_der_public_key(der)
        except (ValueError, t_exceptions.UnsupportedAlgorithm) as exc:
            raise KeyInvalid(f"not an SM2 SubjectPublicKeyInfo: {exc}") from exc
        return cls._from_tongsuo(key)

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PublicKey:
        try:
            key = t_ser.load_pem_public_key(pem)
        except (ValueError, t_exceptions.UnsupportedAlgorithm) as exc:
            raise KeyInvalid(f"not an SM2 public key PEM: {exc}") from exc
        return cls._from_tongsuo(key)

    @classmethod
    def _from_tongsuo(cls, key: object) -> SM2PublicKey:
        if not isinstance(key, t_ec.EllipticCurvePublicKey) or key.curve.name.lower() != "sm2":
            raise KeyInvalid("the key is not on the SM2 curve")
        return cls(key.public_bytes(t_ser.Encoding.X962, t_ser.PublicFormat.UncompressedPoint))

    def _tongsuo(self) -> t_ec.EllipticCurvePublicKey:
        try:
            return t_ec.EllipticCurvePublicKey.from_encoded_point(t_ec.SM2(), self.point)
        except ValueError as exc:
            raise KeyInvalid(f"the point is not on the SM2 curve: {exc}") from exc

    def spki_der(self) -> bytes:
        return bytes(self._tongsuo().public_bytes(
            t_ser.Encoding.DER, t_ser.PublicFormat.SubjectPublicKeyInfo
        ))

    def pem(self) -> bytes:
        return bytes(self._tongsuo().public_bytes(
            t_ser.Encoding.PEM, t_ser.PublicFormat.SubjectPublicKeyInfo
        ))

    def verify(self, signature: bytes, data: bytes) -> None:
        """Verify a DER SM2 signature over ``data`` (default signer ID); raise if invalid."""
        try:
            self._tongsuo().verify(signature, data, t_ec.ECDSA(t_hashes.SM3()))
        except t_exceptions.InvalidSignature as exc:
            raise SignatureInvalid("SM2 signature does not verify") from exc
        except ValueError as exc:
            raise SignatureInvalid(f"malformed SM2 signature: {exc}") from exc
        except t_exceptions.InternalError as exc:
            # Tongsuo reports a signature that is not DER SEQUENCE { r, s } as an internal error.
            raise SignatureInvalid("malformed SM2 signature: not DER (r, s)") from exc

    def prefix_verifier(self, prefix: bytes) -> PrefixVerifier:
        """A verifier of messages starting with ``prefix`` (SM3 over it done once, here)."""
        return PrefixVerifier(self, prefix)

    def is_valid_signature(self, signature: bytes, data: bytes) -> bool:
        try:
            self.verify(signature, data)
        except SignatureInvalid:
            return False
        return True

    def encrypt(self, plaintext: bytes) -> bytes:
        """SM2 public-key encryption (GM/T 0009 DER C1C3C2), used to wrap SM4 keys."""
        try:
            return bytes(gmssl_pyx.sm2_encrypt(self.point[1:], plaintext))
        except gmssl_pyx.GmsslInnerError as exc:
            raise CryptoError(f"SM2 encryption failed: {exc}") from exc


class SM2PrivateKey:
    """An SM2 private key held in memory. Never logged, never serialized in clear by guoku."""

    __slots__ = ("_key",)

    def __init__(self, key: t_ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        return cls(t_ec.generate_private_key(t_ec.SM2()))

    @classmethod
    def from_scalar(cls, scalar: bytes) -> SM2PrivateKey:
        if len(scalar) != 32:
            raise KeyInvalid("an SM2 private scalar is 32 bytes")
        try:
            return cls(t_ec.derive_private_key(int.from_bytes(scalar, "big"), t_ec.SM2()))
        except ValueError as exc:
            raise KeyInvalid(f"invalid SM2 private scalar: {exc}") from exc

    @classmethod
    def from_pkcs8_der(cls, der: bytes) -> SM2PrivateKey:
        try:
            key = t_ser.load_der_private_key(der, password=None)
        except (ValueError, TypeError, t_exceptions.UnsupportedAlgorithm) as exc:
            raise KeyInvalid(f"not an SM2 PKCS#8 key: {exc}") from exc
        return cls._checked(key)

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PrivateKey:
        try:
            key = t_ser.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, t_exceptions.UnsupportedAlgorithm) as exc:
            raise KeyInvalid(f"not an SM2 private key PEM: {exc}") from exc
        return cls._checked(key)

    @classmethod
    def _checked(cls, key: object) -> SM2PrivateKey:
        if not isinstance(key, t_ec.EllipticCurvePrivateKey) or key.curve.name.lower() != "sm2":
            raise KeyInvalid("the key is not on the SM2 curve")
        return cls(key)

    def scalar(self) -> bytes:
        return int(self._key.private_numbers().private_value).to_bytes(32, "big")

    def pkcs8_der(self) -> bytes:
        return bytes(self._key.private_bytes(
            t_ser.Encoding.DER, t_ser.PrivateFormat.PKCS8, t_ser.NoEncryption()
        ))

    def pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM — for handing a key to the OpenSSL CLI in tests only."""
        return bytes(self._key.private_bytes(
            t_ser.Encoding.PEM, t_ser.PrivateFormat.PKCS8, t_ser.NoEncryption()
        ))

    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey._from_tongsuo(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        """SM2 signature with SM3 and the default signer ID, DER-encoded (r, s)."""
        return bytes(self._key.sign(data, t_ec.ECDSA(t_hashes.SM3())))

    def prefix_signer(self, prefix: bytes) -> PrefixSigner:
        """A signer of messages starting with ``prefix`` (SM3 over it done once, here)."""
        return PrefixSigner(self, prefix)

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            return bytes(gmssl_pyx.sm2_decrypt(self.scalar(), ciphertext))
        except (gmssl_pyx.GmsslInnerError, gmssl_pyx.InvalidValueError) as exc:
            raise DecryptionFailed(f"SM2 decryption failed: {exc}") from exc


class _PrefixState:
    """An EVP digest-sign (or -verify) context that has absorbed Z and a prefix; copied per
    message, never used itself, so one state serves any number of messages and threads."""

    __slots__ = ("_ctx", "prefix")

    def __init__(self, key: Any, prefix: bytes, verify: bool) -> None:
        lib, ffi = _t_backend._lib, _t_backend._ffi
        ctx = ffi.gc(lib.EVP_MD_CTX_new(), lib.EVP_MD_CTX_free)
        init = lib.EVP_DigestVerifyInit if verify else lib.EVP_DigestSignInit
        md = _t_backend._evp_md_from_algorithm(t_hashes.SM3())
        if init(ctx, ffi.NULL, md, ffi.NULL, key._evp_pkey) != 1:
            _t_backend._consume_errors()
            raise KeyInvalid("the key cannot sign or verify with SM3")
        update = lib.EVP_DigestUpdate if verify else lib.EVP_DigestSignUpdate
        _t_backend.openssl_assert(update(ctx, prefix, len(prefix)) == 1)
        self._ctx, self.prefix = ctx, bytes(prefix)

    def copy_with(self, suffix: bytes) -> Any:
        """A fresh context: the prefix state, then ``suffix`` absorbed."""
        lib, ffi = _t_backend._lib, _t_backend._ffi
        ctx = ffi.gc(lib.EVP_MD_CTX_new(), lib.EVP_MD_CTX_free)
        _t_backend.openssl_assert(lib.EVP_MD_CTX_copy_ex(ctx, self._ctx) == 1)
        _t_backend.openssl_assert(lib.EVP_DigestUpdate(ctx, suffix, len(suffix)) == 1)
        return ctx


class PrefixSigner:
    """``sign(suffix)`` is ``SM2PrivateKey.sign(prefix + suffix)``: an ordinary SM2 signature
    (SM3, default signer ID, DER r, s), with the SM3 over the prefix paid once."""

    __slots__ = ("_state",)

    def __init__(self, key: SM2PrivateKey, prefix: bytes) -> None:
        self._state = _PrefixState(key._key, prefix, verify=False)

    @property
    def prefix(self) -> bytes:
        return self._state.prefix

    def sign(self, suffix: bytes) -> bytes:
        lib, ffi = _t_backend._lib, _t_backend._ffi
        ctx = self._state.copy_with(suffix)
        size = ffi.new("size_t *")
        _t_backend.openssl_assert(lib.EVP_DigestSignFinal(ctx, ffi.NULL, size) == 1)
        out = ffi.new("unsigned char[]", size[0])
        if lib.EVP_DigestSignFinal(ctx, out, size) != 1:
            _t_backend._consume_errors()
            raise CryptoError("SM2 signing failed")
        return bytes(ffi.buffer(out)[: size[0]])


class PrefixVerifier:
    """``verify(signature, suffix)`` is ``SM2PublicKey.verify(signature, prefix + suffix)``,
    with the SM3 over the prefix paid once."""

    __slots__ = ("_state", "public_key")

    def __init__(self, key: SM2PublicKey, prefix: bytes) -> None:
        self.public_key = key
        self._state = _PrefixState(key._tongsuo(), prefix, verify=True)

    @property
    def prefix(self) -> bytes:
        return self._state.prefix

    def verify(self, signature: bytes, suffix: bytes) -> None:
        """Raise :class:`SignatureInvalid` unless ``signature`` verifies over prefix + suffix."""
        ctx = self._state.copy_with(suffix)
        result = _t_backend._lib.EVP_DigestVerify(ctx, signature, len(signature), b"", 0)
        if result != 1:
            _t_backend._consume_errors()
            raise SignatureInvalid(
                "SM2 signature does not verify" if result == 0 else "malformed SM2 signature"
            )


def sm4_gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """SM4-GCM: returns nonce || ciphertext || tag, with a fresh random 12-byte nonce."""
    if len(key) != SM4_KEY_BYTES:
        raise KeyInvalid("an SM4 key is 16 bytes")
    nonce = random_bytes(GCM_NONCE_BYTES)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return nonce + body + enc.tag


def sm4_gcm_decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """Inverse of :func:`sm4_gcm_encrypt`; raises :class:`DecryptionFailed` on any tampering."""
    if len(key) != SM4_KEY_BYTES:
        raise KeyInvalid("an SM4 key is 16 bytes")
    if len(blob) < GCM_NONCE_BYTES + GCM_TAG_BYTES:
        raise DecryptionFailed("ciphertext too short")
    nonce, tag = blob[:GCM_NONCE_BYTES], blob[-GCM_TAG_BYTES:]
    body = blob[GCM_NONCE_BYTES:-GCM_TAG_BYTES]
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(body) + dec.finalize()
    except InvalidTag as exc:
        raise DecryptionFailed("SM4-GCM authentication failed") from exc


def pbkdf2_sm3(secret: bytes, salt: bytes, iterations: int, length: int = SM4_KEY_BYTES) -> bytes:
    """PBKDF2 with HMAC-SM3: derives the key that protects a USB key's private key from its PIN."""
    return PBKDF2HMAC(
        algorithm=c_hashes.SM3(), length=length, salt=salt, iterations=iterations
    ).derive(secret)
