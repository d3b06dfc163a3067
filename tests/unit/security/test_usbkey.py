"""The software USB key: lifecycle, PIN counters, lock and unblock, tamper evidence, secrecy."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guoku.security import usbkey
from guoku.security.crypto import SM2PrivateKey, SM2PublicKey
from guoku.security.token_protocol import (
    SO_PIN_MAX_RETRIES,
    USER_PIN_MAX_RETRIES,
    KeyToken,
    NotLoggedIn,
    ObjectExists,
    ObjectInfo,
    ObjectKind,
    ObjectNotFound,
    PinIncorrect,
    PinPolicyViolation,
    PinRole,
    TokenCorrupt,
    TokenDead,
    TokenExists,
    TokenFull,
    TokenInputRejected,
    TokenLocked,
    TokenNotPresent,
)
from guoku.security.usbkey import MIN_PIN_ITERATIONS, SoftwareToken

SO_PIN = "so-pin-8765"
PIN = "123456"
WRONG = "000000"
SEAL_DER = b"\x30\x82\x01\x00" + bytes(range(256))  # stands in for an SES_Seal


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "zhangsan.usbkey"


@pytest.fixture
def token(path: Path) -> SoftwareToken:
    return SoftwareToken.initialize(path, "张三", SO_PIN, PIN, iterations=MIN_PIN_ITERATIONS)


@pytest.fixture
def keyed(token: SoftwareToken) -> SoftwareToken:
    """A token with a signing key, a certificate and a seal, logged out."""
    token.login(PIN)
    token.generate_sm2_key("sign")
    token.store_certificate("sign", b"\x30\x03\x02\x01\x01")
    token.store_object("seal", SEAL_DER)
    token.logout()
    return token


def _doc(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = _doc(path)
    change(doc)
    path.write_text(json.dumps(doc))


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --- lifecycle -----------------------------------------------------------------------------


def test_a_token_goes_from_blank_to_signing_and_back_through_the_file(path: Path) -> None:
    token = SoftwareToken.initialize(path, "张三", SO_PIN, PIN, iterations=MIN_PIN_ITERATIONS)
    assert isinstance(token, KeyToken)
    assert len(token.serial) == 16 and token.label == "张三"
    assert token.list_objects() == []
    assert not token.is_logged_in and token.retries_left == USER_PIN_MAX_RETRIES

    token.login(PIN)
    public = token.generate_sm2_key("sign")
    token.store_certificate("sign", b"\x30\x03\x02\x01\x01")
    token.store_object("seal", SEAL_DER)
    token.logout()

    again = SoftwareToken.open(path)
    assert (again.serial, again.label) == (token.serial, "张三")
    assert again.public_key("sign") == public
    assert again.certificate("sign") == b"\x30\x03\x02\x01\x01"
    assert again.read_object("seal") == SEAL_DER
    assert again.list_objects() == [
        ObjectInfo(ObjectKind.SM2_KEY, "sign", 65),
        ObjectInfo(ObjectKind.CERTIFICATE, "sign", 5),
        ObjectInfo(ObjectKind.DATA, "seal", len(SEAL_DER)),
    ]
    with pytest.raises(NotLoggedIn):
        again.sign("sign", b"voucher")
    again.login(PIN)
    public.verify(again.sign("sign", b"voucher"), b"voucher")
    assert sorted(path.parent.iterdir()) == [path, path.with_name(path.name + ".lock")]
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_signature_verifies_with_the_public_key_and_with_openssl(
    keyed: SoftwareToken, tmp_path: Path
) -> None:
    keyed.login(PIN)
    data = "<Voucher>支付凭证</Voucher>".encode()
    signature = keyed.sign("sign", data)
    keyed.public_key("sign").verify(signature, data)
    assert not keyed.public_key("sign").is_valid_signature(signature, data + b"!")
    if shutil.which("openssl") is None:
        pytest.skip("no openssl CLI for the second opinion")
    (tmp_path / "pub.pem").write_bytes(keyed.public_key("sign").pem())
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "sig").write_bytes(signature)
    done = subprocess.run(
        ["openssl", "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", "distid:1234567812345678",
         "-signature", "sig", "data"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Verified OK" in done.stdout


def test_the_token_decrypts_what_was_encrypted_to_its_public_key(keyed: SoftwareToken) -> None:
    ciphertext = keyed.public_key("sign").encrypt(b"sm4 session key!")
    with pytest.raises(NotLoggedIn):
        keyed.decrypt("sign", ciphertext)
    keyed.login(PIN)
    assert keyed.decrypt("sign", ciphertext) == b"sm4 session key!"


def test_writes_need_a_login_and_reads_of_public_objects_do_not(token: SoftwareToken) -> None:
    for write in (
        lambda: token.generate_sm2_key("sign"),
        lambda: token.store_object("seal", SEAL_DER),
        lambda: token.store_certificate("sign", b"\x30\x00"),
    ):
        with pytest.raises(NotLoggedIn):
            write()
    with pytest.raises(ObjectNotFound):
        token.read_object("seal")


def test_keys_are_never_overwritten_and_missing_labels_are_typed_errors(
    keyed: SoftwareToken,
) -> None:
    keyed.login(PIN)
    with pytest.raises(ObjectExists):
        keyed.generate_sm2_key("sign")
    with pytest.raises(ObjectNotFound):
        keyed.sign("nope", b"x")
    with pytest.raises(ObjectNotFound):
        keyed.certificate("nope")
    keyed.store_object("seal", b"renewed seal")
    assert keyed.read_object("seal") == b"renewed seal"


def test_objects_and_labels_are_bounded(token: SoftwareToken) -> None:
    token.login(PIN)
    with pytest.raises(TokenFull):
        token.store_object("big", bytes(usbkey.MAX_OBJECT_BYTES + 1))
    with pytest.raises(TokenInputRejected):
        token.store_object("x" * 65, b"")
    with pytest.raises(TokenInputRejected):
        token.store_certificate("cert", b"not DER")


def test_initialize_refuses_to_overwrite_and_open_needs_a_file(
    token: SoftwareToken, path: Path
) -> None:
    with pytest.raises(TokenExists):
        SoftwareToken.initialize(path, "李四", SO_PIN, PIN, iterations=MIN_PIN_ITERATIONS)
    with pytest.raises(TokenNotPresent):
        SoftwareToken.open(path.with_name("absent.usbkey"))


@pytest.mark.parametrize(
    ("so_pin", "user_pin"),
    [("so-pin-8765", "12345"), ("so-pin-8765", "1" * 17), ("short", PIN), (PIN, PIN),
     ("so-pin-8765", "123\n456")],
)  # fmt: skip
def test_the_pin_policy_is_six_to_sixteen_printable_characters(
    tmp_path: Path, so_pin: str, user_pin: str
) -> None:
    with pytest.raises(PinPolicyViolation):
        SoftwareToken.initialize(tmp_path / "t", "x", so_pin, user_pin, iterations=1_000)
    assert not (tmp_path / "t").exists()


# --- PIN counters --------------------------------------------------------------------------


def test_a_wrong_pin_decrements_and_a_right_one_resets(token: SoftwareToken) -> None:
    with pytest.raises(PinIncorrect) as caught:
        token.login(WRONG)
    assert (caught.value.role, caught.value.retries_left) == (PinRole.USER, 4)
    assert caught.value.to_dict()["retries_left"] == 4
    assert token.retries_left == 4 and not token.is_logged_in
    token.login(PIN)
    assert token.retries_left == USER_PIN_MAX_RETRIES


def test_an_out_of_policy_pin_is_refused_without_spending_an_attempt(
    token: SoftwareToken,
) -> None:
    with pytest.raises(PinPolicyViolation):
        token.login("123")
    assert token.retries_left == USER_PIN_MAX_RETRIES


def test_five_wrong_pins_lock_and_then_even_the_right_pin_is_refused(
    token: SoftwareToken,
) -> None:
    for left in (4, 3, 2, 1):
        with pytest.raises(PinIncorrect, match=f"{left} attempt"):
            token.login(WRONG)
    with pytest.raises(TokenLocked):
        token.login(WRONG)
    assert token.is_locked and token.retries_left == 0
    with pytest.raises(TokenLocked):
        token.login(PIN)
    with pytest.raises(TokenLocked):
        token.change_pin(PIN, "654321")


def test_the_so_pin_unblocks_a_locked_token_and_keeps_its_keys(keyed: SoftwareToken) -> None:
    for _ in range(USER_PIN_MAX_RETRIES):
        with pytest.raises((PinIncorrect, TokenLocked)):
            keyed.login(WRONG)
    keyed.unblock(SO_PIN, "654321")
    assert not keyed.is_locked and keyed.retries_left == USER_PIN_MAX_RETRIES
    with pytest.raises(PinIncorrect):
        keyed.login(PIN)
    keyed.login("654321")
    keyed.public_key("sign").verify(keyed.sign("sign", b"after unblock"), b"after unblock")


def test_a_wrong_so_pin_has_its_own_counter(token: SoftwareToken) -> None:
    with pytest.raises(PinIncorrect) as caught:
        token.unblock("wrong-so-pin", "654321")
    assert (caught.value.role, caught.value.retries_left) == (PinRole.SO, SO_PIN_MAX_RETRIES - 1)
    assert token.so_retries_left == SO_PIN_MAX_RETRIES - 1
    assert token.retries_left == USER_PIN_MAX_RETRIES
    token.unblock(SO_PIN, "654321")
    assert token.so_retries_left == SO_PIN_MAX_RETRIES


def test_an_exhausted_so_pin_kills_the_token_and_erases_its_keys(
    keyed: SoftwareToken, path: Path
) -> None:
    for _ in range(SO_PIN_MAX_RETRIES - 1):
        with pytest.raises(PinIncorrect):
            keyed.unblock("wrong-so-pin", "654321")
    with pytest.raises(TokenDead):
        keyed.unblock("wrong-so-pin", "654321")
    assert keyed.is_dead and keyed.is_locked
    doc = _doc(path)
    assert all(p["wrapped_master_key"] is None for p in doc["pins"].values())
    assert doc["keys"]["sign"]["private_key"] is None
    for attempt in (lambda: keyed.login(PIN), lambda: keyed.unblock(SO_PIN, "654321")):
        with pytest.raises(TokenDead):
            attempt()
    _rewrite(path, lambda d: d["pins"]["so"].update(retries_left=SO_PIN_MAX_RETRIES))
    with pytest.raises(TokenCorrupt):  # winding the counter back revives nothing
        SoftwareToken.open(path)


def test_the_counters_survive_reopening_the_file(token: SoftwareToken, path: Path) -> None:
    with pytest.raises(PinIncorrect):
        token.login(WRONG)
    assert SoftwareToken.open(path).retries_left == 4
    for _ in range(4):
        with pytest.raises((PinIncorrect, TokenLocked)):
            SoftwareToken.open(path).login(WRONG)
    with pytest.raises(TokenLocked):
        SoftwareToken.open(path).login(PIN)


def test_two_handles_on_one_token_share_one_counter(token: SoftwareToken, path: Path) -> None:
    other = SoftwareToken.open(path)
    with pytest.raises(PinIncorrect):
        other.login(WRONG)
    with pytest.raises(PinIncorrect) as caught:
        token.login(WRONG)
    assert caught.value.retries_left == 3


def test_an_attempt_is_spent_before_it_is_judged(
    token: SoftwareToken, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def power_cut(*_: object) -> tuple[bytes, bytes]:
        raise SystemExit("power cut during the PIN check")

    monkeypatch.setattr(usbkey, "_derive", power_cut)
    with pytest.raises(SystemExit):
        token.login(PIN)
    monkeypatch.undo()
    assert SoftwareToken.open(path).retries_left == USER_PIN_MAX_RETRIES - 1


def test_change_pin_rewraps_the_master_key_and_keeps_the_keys(keyed: SoftwareToken) -> None:
    with pytest.raises(PinIncorrect):
        keyed.change_pin(WRONG, "654321")
    assert keyed.retries_left == 4
    keyed.change_pin(PIN, "654321")
    assert keyed.retries_left == USER_PIN_MAX_RETRIES
    with pytest.raises(PinIncorrect):
        keyed.login(PIN)
    keyed.login("654321")
    keyed.public_key("sign").verify(keyed.sign("sign", b"m"), b"m")
    keyed.change_so_pin(SO_PIN, "new-so-pin-1")
    keyed.unblock("new-so-pin-1", "abcdef")
    keyed.login("abcdef")


# --- tamper evidence and secrecy -----------------------------------------------------------


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "private key blob": lambda d: d["keys"]["sign"].update(
        private_key=_flip(d["keys"]["sign"]["private_key"])
    ),
    "public key swapped": lambda d: d["keys"]["sign"].update(
        public_key=base64.b64encode(SM2PrivateKey.generate().public_key().point).decode()
    ),
    "seal object": lambda d: d["objects"].update(seal=base64.b64encode(b"forged").decode()),
    "certificate removed": lambda d: d["certificates"].clear(),
    "token label": lambda d: d.update(label="李四"),
    "user master key wrap": lambda d: d["pins"]["user"].update(
        wrapped_master_key=_flip(d["pins"]["user"]["wrapped_master_key"])
    ),
    "mac": lambda d: d.update(mac=_flip(d["mac"])),
    "key moved to a new label": lambda d: d["keys"].update(other=d["keys"].pop("sign")),
}


@pytest.mark.parametrize("change", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_file_is_refused_at_login(
    keyed: SoftwareToken, path: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    _rewrite(path, change)
    with pytest.raises(TokenCorrupt):
        SoftwareToken.open(path).login(PIN)
    assert not keyed.is_logged_in


def test_a_file_tampered_during_a_session_is_refused_at_the_next_use(
    keyed: SoftwareToken, path: Path
) -> None:
    keyed.login(PIN)
    keyed.sign("sign", b"before")
    _rewrite(path, TAMPERINGS["seal object"])
    with pytest.raises(TokenCorrupt):
        keyed.sign("sign", b"after")
    assert not keyed.is_logged_in


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"format": "guoku-usbkey", "version": 99}',
     b'{"format": "guoku-usbkey", "version": 1}', bytes(usbkey.MAX_TOKEN_FILE_BYTES + 1)],
)  # fmt: skip
def test_a_file_that_is_not_a_token_is_corrupt(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with pytest.raises(TokenCorrupt):
        SoftwareToken.open(path)


def test_structural_damage_is_corrupt_even_before_login(keyed: SoftwareToken, path: Path) -> None:
    _rewrite(path, lambda d: d["pins"]["user"].update(retries_left=99))
    with pytest.raises(TokenCorrupt):
        SoftwareToken.open(path)
    _rewrite(path, lambda d: d["pins"]["user"].update(retries_left=5, salt="%%%"))
    with pytest.raises(TokenCorrupt):
        keyed.read_object("seal")


def test_another_token_swapped_in_under_a_handle_is_not_the_same_token(
    keyed: SoftwareToken, path: Path, tmp_path: Path
) -> None:
    other = SoftwareToken.initialize(
        tmp_path / "lisi.usbkey", "李四", SO_PIN, PIN, iterations=MIN_PIN_ITERATIONS
    )
    keyed.login(PIN)
    shutil.copyfile(other.path, path)
    with pytest.raises(TokenNotPresent):
        keyed.sign("sign", b"x")
    assert not keyed.is_logged_in


def test_no_secret_key_ever_reaches_the_file_in_clear(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets: list[bytes] = []
    real_generate, real_subkey = SM2PrivateKey.generate, usbkey._subkey

    def generate() -> SM2PrivateKey:
        key = real_generate()
        secrets.append(key.scalar())
        return key

    def subkey(master_key: bytes, purpose: bytes) -> bytes:
        secrets.append(master_key)
        return real_subkey(master_key, purpose)

    monkeypatch.setattr(SM2PrivateKey, "generate", staticmethod(generate))
    monkeypatch.setattr(usbkey, "_subkey", subkey)
    token = SoftwareToken.initialize(path, "张三", SO_PIN, PIN, iterations=MIN_PIN_ITERATIONS)
    token.login(PIN)
    token.generate_sm2_key("sign")
    token.generate_sm2_key("encrypt")
    token.change_pin(PIN, "654321")
    assert len(secrets) >= 3 and all(len(s) in (16, 32) for s in secrets)
    content = path.read_bytes()
    for secret in set(secrets):
        for form in (secret, secret.hex().encode(), secret.hex().upper().encode(),
                     base64.b64encode(secret), base64.b64encode(secret).rstrip(b"=")):  # fmt: skip
            assert form not in content
    for pin in (PIN, "654321", SO_PIN):
        assert pin.encode() not in content


def test_a_public_key_read_from_the_token_is_a_plain_sm2_public_key(
    keyed: SoftwareToken,
) -> None:
    public = keyed.public_key("sign")
    assert isinstance(public, SM2PublicKey)
    assert SM2PublicKey.from_spki_der(public.spki_der()) == public


def test_a_private_key_blob_is_bound_to_its_label_even_under_a_valid_mac(
    token: SoftwareToken, path: Path
) -> None:
    token.login(PIN)
    token.generate_sm2_key("a")
    token.generate_sm2_key("b")
    state = usbkey._read_file(path)
    state.keys["a"].private_key, state.keys["b"].private_key = (
        state.keys["b"].private_key,
        state.keys["a"].private_key,
    )
    assert token._session is not None
    token._save(state, token._session)  # re-MACed with the real key: only the AAD can tell
    fresh = SoftwareToken.open(path)
    fresh.login(PIN)
    with pytest.raises(TokenCorrupt, match="'a'"):
        fresh.sign("a", b"x")


def test_a_power_cut_on_the_last_so_attempt_still_kills_the_token(
    keyed: SoftwareToken, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rewrite(path, lambda d: d["pins"]["so"].update(retries_left=1))

    def power_cut(*_: object) -> tuple[bytes, bytes]:
        raise SystemExit("power cut during the SO PIN check")

    monkeypatch.setattr(usbkey, "_derive", power_cut)
    with pytest.raises(SystemExit):
        keyed.unblock(SO_PIN, "654321")
    monkeypatch.undo()
    assert _doc(path)["keys"]["sign"]["private_key"] is not None
    with pytest.raises(TokenDead):
        keyed.login(PIN)
    assert _doc(path)["keys"]["sign"]["private_key"] is None


def test_token_errors_also_fall_in_the_domain_error_families() -> None:
    from guoku.domain.errors import Conflict, NotFound, ValidationError

    assert issubclass(ObjectNotFound, NotFound) and issubclass(TokenNotPresent, NotFound)
    assert issubclass(ObjectExists, Conflict) and issubclass(TokenExists, Conflict)
    assert issubclass(PinPolicyViolation, TokenInputRejected)
    assert issubclass(TokenInputRejected, ValidationError)
