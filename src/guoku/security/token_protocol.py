"""The USB key (U盾) seen from guoku: one small protocol a software or hardware token implements.

A personal certificate, its SM2 key pair and the holder's personal seal (私章, a GB/T 38540
``SES_Seal`` DER) live on a USB key. guoku talks to the key only through :class:`KeyToken`, so
the software token of :mod:`guoku.security.usbkey` can later be replaced by an adapter over a
real key's SKF (GM/T 0016) or PKCS#11 driver without touching any caller.

How the protocol maps onto the two driver APIs a hardware adapter will wrap::

    KeyToken                     SKF (GM/T 0016)                      PKCS#11
    ---------------------------  -----------------------------------  -----------------------------
    serial, label                SKF_GetDevInfo (SerialNumber, Label)  CK_TOKEN_INFO
    (one implicit application)   DEVHANDLE -> HAPPLICATION "GUOKU"     the token in a slot
    login / logout               SKF_VerifyPIN(USER_TYPE) / ClearSecu  C_Login(CKU_USER) / C_Logout
    retries_left, is_locked      SKF_GetPINInfo                        CKF_USER_PIN_COUNT_LOW/LOCKED
    change_pin                   SKF_ChangePIN(USER_TYPE)              C_SetPIN
    unblock(so_pin, new_pin)     SKF_UnblockPIN(admin PIN, user PIN)   C_Login(CKU_SO) + C_InitPIN
    generate_sm2_key(label)      container ``label``: SKF_CreateContainer + SKF_GenECCKeyPair
    public_key(label)            SKF_ExportPublicKey(sign key)         CKO_PUBLIC_KEY, CKA_EC_POINT
    sign(label, data)            SKF_ECCSignData on SM3(Z||M)         C_Sign (CKM_SM2_SM3 vendor)
    decrypt(label, ct)           SKF_ECCDecrypt (where offered)        C_Decrypt
    store_certificate(label)     SKF_ImportCertificate(container)      CKO_CERTIFICATE, CKA_LABEL
    store_object(label, data)    SKF_CreateFile + SKF_WriteFile        CKO_DATA, CKA_LABEL
    list_objects()               SKF_EnumContainer + SKF_EnumFiles     C_FindObjects

A *key label* therefore names an SKF container (sign key pair + its certificate) and a *data label*
an SKF file in the application. The software token keeps keys, certificates and data objects in
three separate namespaces, as SKF does.

Errors (all :class:`TokenError`, a :class:`~guoku.domain.errors.GuokuError`; checked before
anything is written, except that a wrong PIN is written down before it is reported)::

    TokenError
    ├── TokenNotPresent       no token file / device at that place (also a NotFound)
    ├── TokenExists           initialize() would overwrite an existing token (also a Conflict)
    ├── TokenCorrupt          the stored token fails its structure, MAC or AEAD checks
    ├── TokenInputRejected    a label or object breaks the rules (also a ValidationError)
    │   └── PinPolicyViolation    a PIN is not 6–16 printable characters
    ├── PinIncorrect          wrong PIN; carries ``retries_left``
    ├── TokenLocked           the user PIN is blocked; only unblock(so_pin, new_pin) helps
    ├── TokenDead             the SO PIN is exhausted; the key material is gone for good
    ├── NotLoggedIn           a private-key or write operation without a user login
    ├── ObjectNotFound        no key, certificate or data object with that label (NotFound)
    ├── ObjectExists          a key with that label exists already; never overwritten (Conflict)
    └── TokenFull             a size or count limit of the token would be exceeded
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

from guoku.domain.errors import Conflict, GuokuError, NotFound, ValidationError
from guoku.security.crypto import SM2PublicKey

PIN_MIN_CHARS: Final = 6
PIN_MAX_CHARS: Final = 16
USER_PIN_MAX_RETRIES: Final = 5
"""Wrong user PINs in a row before the token locks (the usual U盾 figure)."""
SO_PIN_MAX_RETRIES: Final = 10
"""Wrong SO (administrator) PINs in a row before the token is dead for good."""
TOKEN_LABEL_MAX_CHARS: Final = 32
"""As PKCS#11's CK_TOKEN_INFO.label (32 bytes) and SKF's device label."""
OBJECT_LABEL_MAX_CHARS: Final = 64


class PinRole(StrEnum):
    """Who a PIN belongs to: the holder (用户PIN) or the security officer (管理员PIN, SKF admin)."""

    USER = "user"
    SO = "so"


class ObjectKind(StrEnum):
    SM2_KEY = "sm2-key"
    CERTIFICATE = "certificate"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One entry of :meth:`KeyToken.list_objects`. ``size`` is the public part's byte length."""

    kind: ObjectKind
    label: str
    size: int


class TokenError(GuokuError):
    """Base of the USB key errors."""

    code = "TOKEN_ERROR"


class TokenNotPresent(TokenError, NotFound):
    code = "TOKEN_NOT_PRESENT"


class TokenExists(TokenError, Conflict):
    code = "TOKEN_EXISTS"


class TokenCorrupt(TokenError):
    """The stored token was altered or damaged: refuse it rather than guess."""

    code = "TOKEN_CORRUPT"


class TokenInputRejected(TokenError, ValidationError):
    """A label, PIN or object breaks the token's rules; nothing was written."""

    code = "TOKEN_INPUT_REJECTED"


class PinPolicyViolation(TokenInputRejected):
    code = "PIN_POLICY_VIOLATION"


class PinIncorrect(TokenError):
    """Wrong PIN. ``retries_left`` wrong attempts remain before the PIN is blocked."""

    code = "PIN_INCORRECT"

    def __init__(self, role: PinRole, retries_left: int) -> None:
        super().__init__(
            f"the {role.value} PIN is incorrect; {retries_left} attempt(s) left",
            role=role.value,
            retries_left=retries_left,
        )
        self.role = role
        self.retries_left = retries_left


class TokenLocked(TokenError):
    """The user PIN is blocked after too many wrong attempts; the SO must unblock it."""

    code = "TOKEN_LOCKED"


class TokenDead(TokenError):
    """The SO PIN is exhausted: the token has erased its key material and cannot be revived."""

    code = "TOKEN_DEAD"


class NotLoggedIn(TokenError):
    code = "NOT_LOGGED_IN"


class ObjectNotFound(TokenError, NotFound):
    code = "OBJECT_NOT_FOUND"


class ObjectExists(TokenError, Conflict):
    code = "OBJECT_EXISTS"


class TokenFull(TokenError):
    code = "TOKEN_FULL"


def check_pin_policy(pin: str, role: PinRole = PinRole.USER) -> None:
    """A PIN is 6–16 printable characters. Raises :class:`PinPolicyViolation` otherwise.

    The policy is public, so refusing an out-of-policy PIN at login costs no retry.
    """
    if not isinstance(pin, str) or not PIN_MIN_CHARS <= len(pin) <= PIN_MAX_CHARS:
        raise PinPolicyViolation(
            f"the {role.value} PIN must be {PIN_MIN_CHARS}–{PIN_MAX_CHARS} characters"
        )
    if not pin.isprintable():
        raise PinPolicyViolation(f"the {role.value} PIN must be printable characters")


def check_label(label: str, max_chars: int = OBJECT_LABEL_MAX_CHARS) -> None:
    if not isinstance(label, str) or not 1 <= len(label) <= max_chars:
        raise TokenInputRejected(f"a label is 1–{max_chars} characters, got {label!r}")
    if not label.isprintable() or label != label.strip():
        raise TokenInputRejected(
            f"a label is printable, without leading or trailing blanks: {label!r}"
        )


@runtime_checkable
class KeyToken(Protocol):
    """A USB key holding SM2 keys, certificates and small data objects (such as a seal).

    Reading public things (public keys, certificates, data objects, the PIN counters) needs no
    login. Every private-key operation and every write needs :meth:`login` with the user PIN.
    Private keys are generated inside the token and never leave it.
    """

    @property
    def serial(self) -> str:
        """The device serial number, unique per token."""
        ...

    @property
    def label(self) -> str: ...

    @property
    def is_logged_in(self) -> bool: ...

    @property
    def is_locked(self) -> bool:
        """True when the user PIN is blocked (no retries left) or the token is dead."""
        ...

    @property
    def retries_left(self) -> int:
        """Wrong user PINs still allowed before the token locks."""
        ...

    def login(self, pin: str) -> None:
        """Verify the user PIN. Raises PinIncorrect, TokenLocked, TokenDead or TokenCorrupt."""
        ...

    def logout(self) -> None: ...

    def list_objects(self) -> list[ObjectInfo]: ...

    def generate_sm2_key(self, key_label: str) -> SM2PublicKey:
        """Generate an SM2 key pair inside the token under ``key_label`` (an SKF container)."""
        ...

    def public_key(self, key_label: str) -> SM2PublicKey: ...

    def sign(self, key_label: str, data: bytes) -> bytes:
        """SM2-with-SM3 signature (DER r, s; default signer ID) over ``data``. Needs login."""
        ...

    def decrypt(self, key_label: str, ciphertext: bytes) -> bytes:
        """SM2 decryption of a GM/T 0009 DER ciphertext made for the key. Needs login."""
        ...

    def store_certificate(self, label: str, der: bytes) -> None: ...

    def certificate(self, label: str) -> bytes: ...

    def store_object(self, label: str, data: bytes) -> None:
        """Write a data object (an SKF file), e.g. the holder's SES_Seal DER. Needs login."""
        ...

    def read_object(self, label: str) -> bytes: ...

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        """Change the user PIN; a wrong ``old_pin`` counts as a wrong PIN."""
        ...

    def unblock(self, so_pin: str, new_pin: str) -> None:
        """With the SO PIN, set a new user PIN and reset its retry counter."""
        ...
