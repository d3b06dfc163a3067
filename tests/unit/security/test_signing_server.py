"""The signing server (签名服务器): official seals used only by authorized posts of its clients.

The world here: finance (F530000) hosts a budget unit (U001) whose financial seal is held by
finance's institution certificate (DOMAIN §3); an agent bank (B102) has its own key and seal.
The finance node's client acts for F530000 and U001; the bank node's client for B102.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from guoku.domain.controls import Post
from guoku.domain.errors import Conflict, NotFound, ValidationError
from guoku.domain.seals import SealKind
from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import TrustStore
from guoku.security.crypto import SM2PrivateKey, random_bytes, sm3
from guoku.security.seals import SealCertificateExpired, make_seal, verify_seal_signature
from guoku.security.signing_server import (
    ClientUnknown,
    LocalSigningClient,
    NotAuthorized,
    PartyUnknown,
    SealNotFound,
    SealRequest,
    SigningClient,
    SigningService,
)
from guoku.security.signing_store import DirectoryInUse, PassphraseIncorrect, StoreCorrupt
from guoku.security.x509 import Certificate, KeyUsageInvalid

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PASSPHRASE = "signing-server-passphrase"
DATA = b"<Voucher><No>ZF2026000001</No><Amount>1234.50</Amount></Voucher>"
FINANCE, UNIT, BANK = "F530000", "U001", "B102"
UNIT_SEAL, FINANCE_SEAL, BANK_SEAL = "53000020260001", "53000020260002", "53000020260003"


@dataclass
class Holder:
    key: SM2PrivateKey
    cert: Certificate


@dataclass
class World:
    ca: CertificateAuthority
    trust: TrustStore
    finance: Holder
    bank: Holder
    clerk: Holder  # a personal (signing-only) certificate
    seals: dict[str, bytes]


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (218, 37, 29, 255)).save(out, format="PNG")
    return out.getvalue()


def build_world(base: Path) -> World:
    ca = CertificateAuthority.create(
        base / "ca",
        "云南省财政厅",
        "correct horse battery",
        NOW - DAY,
        kdf_iterations=MIN_KDF_ITERATIONS,
    )
    issue = ca.issue_institution

    def holder(code: str, name: str) -> Holder:
        key = SM2PrivateKey.generate()
        return Holder(key, issue(code, name, key.public_key(), NOW - DAY))

    maker, finance, bank = (
        holder("SEALSYS", "制章系统"),
        holder(FINANCE, "云南省财政厅"),
        holder(BANK, "某某银行昆明分行"),
    )
    clerk_key = SM2PrivateKey.generate()
    clerk = Holder(
        clerk_key, ca.issue_personal("zhangsan", UNIT, "张三", clerk_key.public_key(), NOW - DAY)
    )

    def seal(es_id: str, name: str, kind: SealKind, who: Holder, days: int = 365) -> bytes:
        return make_seal(
            es_id,
            name,
            kind,
            [who.cert.der],
            tiny_png(),
            NOW - DAY,
            NOW + days * DAY,
            maker.key,
            maker.cert.der,
            NOW - DAY,
        ).der

    seals = {
        UNIT_SEAL: seal(UNIT_SEAL, "某某单位财务专用章", SealKind.UNIT_FINANCE, finance),
        FINANCE_SEAL: seal(FINANCE_SEAL, "云南省财政厅财务专用章", SealKind.UNIT_FINANCE, finance),
        BANK_SEAL: seal(BANK_SEAL, "某某银行业务专用章", SealKind.BANK_BUSINESS, bank),
        "personal": seal("personal-1", "张三", SealKind.PERSONAL, clerk),
    }
    ca.export_trust(base / "trust", NOW)
    return World(ca, TrustStore.from_directory(base / "trust"), finance, bank, clerk, seals)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("signing-world"))


@dataclass
class Server:
    service: SigningService
    directory: Path
    finance_token: str
    bank_token: str
    auths: dict[str, str]  # es_id -> authorization id for Post.SEAL


def fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def build_server(world: World, directory: Path) -> Server:
    service = SigningService.create(
        directory,
        PASSPHRASE,
        admin="root",
        kdf_iterations=MIN_KDF_ITERATIONS,
        clock=fixed(NOW),
        sync_audit=False,
    )
    service.add_institution_key(FINANCE, world.finance.key, world.finance.cert, admin="root")
    service.add_institution_key(BANK, world.bank.key, world.bank.cert, admin="root")
    assert service.add_seal(world.seals[UNIT_SEAL], admin="root", owner=UNIT) == UNIT_SEAL
    assert service.add_seal(world.seals[FINANCE_SEAL], admin="root") == FINANCE_SEAL
    assert service.add_seal(world.seals[BANK_SEAL], admin="root") == BANK_SEAL
    auths = {
        es_id: service.authorize(es_id, Post.SEAL, NOW - DAY, NOW + 30 * DAY, admin="root")
        for es_id in (UNIT_SEAL, FINANCE_SEAL, BANK_SEAL)
    }
    finance_token = service.register_client("finance-node", [FINANCE, UNIT], admin="root")
    bank_token = service.register_client("bank-node", [BANK], admin="root")
    return Server(service, directory, finance_token, bank_token, auths)


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[Server]:
    built = build_server(world, tmp_path / "signing")
    yield built
    built.service.close()


def stamp(server: Server, **overrides: object) -> bytes:
    args: dict[str, object] = {
        "username": "zhangsan",
        "post": Post.SEAL,
        "party_code": UNIT,
        "kind": SealKind.UNIT_FINANCE,
        "data": DATA,
        "now": NOW,
        "property_info": "voucher.xml",
    }
    token = str(overrides.pop("token", server.finance_token))
    args.update(overrides)
    return server.service.seal_sign(token, **args)  # type: ignore[arg-type]


def last_entry(server: Server) -> dict[str, object]:
    import json

    entry = list(server.service.audit_entries())[-1]
    return {
        "action": entry.action,
        "actor": entry.actor,
        "post": entry.post,
        "party": entry.admdiv,
        "outcome": entry.outcome,
        **json.loads(entry.detail),
    }


# --- stamping ------------------------------------------------------------------------------


def test_authorized_post_stamps_the_unit_seal_with_finances_institution_key(
    server: Server, world: World
) -> None:
    der = stamp(server)
    info = verify_seal_signature(der, DATA, NOW, world.trust)
    assert info.seal.es_id == UNIT_SEAL
    assert info.signer_cert == world.finance.cert
    assert info.property_info == "voucher.xml" and info.chain_checked
    assert last_entry(server) == {
        "action": "seal_sign",
        "actor": "finance-node",
        "post": "seal",
        "party": UNIT,
        "outcome": "ok",
        "username": "zhangsan",
        "kind": "unit_finance",
        "es_id": UNIT_SEAL,
        "signer": FINANCE,
        "signed_at": NOW.isoformat(),
        "data_sm3": sm3(DATA).hex(),
    }


def test_each_party_stamps_with_its_own_seal_of_the_kind(server: Server, world: World) -> None:
    der = stamp(server, party_code=FINANCE)
    assert verify_seal_signature(der, DATA, NOW).seal.es_id == FINANCE_SEAL
    der = stamp(server, token=server.bank_token, party_code=BANK, kind=SealKind.BANK_BUSINESS)
    info = verify_seal_signature(der, DATA, NOW, world.trust)
    assert info.seal.es_id == BANK_SEAL and info.signer_cert == world.bank.cert


def test_a_post_without_authorization_is_refused_and_audited(server: Server) -> None:
    with pytest.raises(NotAuthorized, match="post review is not authorized"):
        stamp(server, post=Post.REVIEW)
    entry = last_entry(server)
    assert entry["outcome"] == "refused" and entry["error"] == "NOT_AUTHORIZED"
    assert entry["post"] == "review" and entry["username"] == "zhangsan"


@pytest.mark.parametrize("moment", [NOW + 30 * DAY, NOW + 60 * DAY])
def test_an_authorization_after_its_validity_is_refused(server: Server, moment: datetime) -> None:
    stamp(server, now=NOW + 30 * DAY - timedelta(seconds=1))  # [valid_from, valid_to)
    with pytest.raises(NotAuthorized, match="is valid"):
        stamp(server, now=moment)


def test_an_authorization_before_its_validity_is_refused(server: Server) -> None:
    server.service.revoke_authorization(server.auths[UNIT_SEAL], NOW, admin="root")
    server.service.authorize(UNIT_SEAL, Post.SEAL, NOW + DAY, NOW + 2 * DAY, admin="root")
    with pytest.raises(NotAuthorized, match="is valid"):
        stamp(server, now=NOW)
    stamp(server, now=NOW + DAY)


def test_a_revoked_authorization_is_refused_even_for_an_earlier_signing_time(
    server: Server,
) -> None:
    stamp(server)
    server.service.revoke_authorization(server.auths[UNIT_SEAL], NOW + DAY, admin="root")
    with pytest.raises(NotAuthorized, match="revoked"):
        stamp(server, now=NOW + 2 * DAY)
    with pytest.raises(NotAuthorized, match="revoked"):
        stamp(server, now=NOW)  # backdating past the revocation does not help
    with pytest.raises(Conflict):
        server.service.revoke_authorization(server.auths[UNIT_SEAL], NOW, admin="root")


def test_a_second_valid_authorization_still_allows_after_one_is_revoked(server: Server) -> None:
    server.service.revoke_authorization(server.auths[UNIT_SEAL], NOW, admin="root")
    server.service.authorize(UNIT_SEAL, Post.SEAL, NOW, NOW + DAY, admin="root")
    verify_seal_signature(stamp(server), DATA, NOW)


def test_a_bad_token_is_refused_and_audited(server: Server) -> None:
    with pytest.raises(ClientUnknown):
        stamp(server, token="not-a-token")
    with pytest.raises(ClientUnknown):
        stamp(server, token="")
    entry = last_entry(server)
    assert entry["actor"] == "?" and entry["outcome"] == "refused"
    assert entry["error"] == "CLIENT_UNKNOWN"


def test_a_revoked_client_is_refused(server: Server) -> None:
    server.service.revoke_client("bank-node", admin="root")
    with pytest.raises(ClientUnknown):
        stamp(server, token=server.bank_token, party_code=BANK, kind=SealKind.BANK_BUSINESS)


def test_a_client_acting_for_a_party_not_its_own_is_refused(server: Server) -> None:
    with pytest.raises(NotAuthorized, match="does not act for party U001"):
        stamp(server, token=server.bank_token)
    with pytest.raises(NotAuthorized):
        server.service.sign(server.bank_token, FINANCE, DATA)
    with pytest.raises(NotAuthorized):
        server.service.decrypt(server.bank_token, FINANCE, b"\x30\x00")
    assert last_entry(server)["actor"] == "bank-node"


def test_a_kind_the_party_has_no_seal_of_is_not_found(server: Server) -> None:
    with pytest.raises(SealNotFound):
        stamp(server, kind=SealKind.LEGAL_REP)


def test_personal_seals_are_not_served(server: Server) -> None:
    with pytest.raises(ValidationError, match="USB keys"):
        stamp(server, kind=SealKind.PERSONAL)


def test_bad_input_is_refused_before_signing(server: Server) -> None:
    with pytest.raises(ValidationError):
        stamp(server, username="张三 ")
    with pytest.raises(ValidationError):
        stamp(server, now=datetime(2026, 6, 1, 9, 0))  # naive
    with pytest.raises(ValidationError):
        stamp(server, data="text")


def test_an_expired_seal_is_not_found_at_a_later_time(world: World, tmp_path: Path) -> None:
    server = build_server(world, tmp_path / "s")
    with server.service as service:
        service.authorize(UNIT_SEAL, Post.SEAL, NOW, NOW + 800 * DAY, admin="root")
        with pytest.raises(SealNotFound):
            stamp(server, now=NOW + 400 * DAY)


# --- batches -------------------------------------------------------------------------------


def requests(n: int, **overrides: object) -> list[SealRequest]:
    out = []
    for i in range(n):
        args: dict[str, object] = {
            "username": "zhangsan",
            "post": Post.SEAL,
            "party_code": UNIT if i % 2 else FINANCE,
            "kind": SealKind.UNIT_FINANCE,
            "data": DATA + str(i).encode(),
            "now": NOW,
            "property_info": f"v{i}",
        }
        args.update(overrides)
        out.append(SealRequest(**args))  # type: ignore[arg-type]
    return out


def test_a_batch_of_200_is_stamped_with_one_check_per_seal_and_post_and_one_audit_entry(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = requests(200)
    plans: list[str] = []
    original = server.service._plan
    monkeypatch.setattr(
        server.service, "_plan", lambda c, r: plans.append(r.party_code) or original(c, r)
    )
    before = server.service.audit_head[0]
    signatures = server.service.batch_seal_sign(server.finance_token, items)
    assert len(signatures) == 200 and sorted(plans) == [FINANCE, UNIT]
    for item, der in zip(items, signatures, strict=True):
        info = verify_seal_signature(der, item.data, NOW)
        assert info.seal.es_id == (UNIT_SEAL if item.party_code == UNIT else FINANCE_SEAL)
        assert info.property_info == item.property_info
    assert server.service.audit_head[0] == before + 1
    entry = last_entry(server)
    assert entry["action"] == "batch_seal_sign" and entry["count"] == 200
    assert entry["seals"] == sorted([FINANCE_SEAL, UNIT_SEAL]) and entry["usernames"] == [
        "zhangsan"
    ]
    assert isinstance(entry["items_sm3"], str) and len(entry["items_sm3"]) == 64


def test_the_batch_digest_changes_with_any_item(server: Server) -> None:
    server.service.batch_seal_sign(server.finance_token, requests(3))
    first = last_entry(server)["items_sm3"]
    server.service.batch_seal_sign(server.finance_token, requests(3, property_info="x"))
    assert last_entry(server)["items_sm3"] != first


def test_a_batch_with_one_refused_item_signs_nothing(server: Server) -> None:
    items = [*requests(10), *requests(1, party_code=BANK)]
    before = server.service.audit_head[0]
    with pytest.raises(NotAuthorized):
        server.service.batch_seal_sign(server.finance_token, items)
    assert server.service.audit_head[0] == before + 1
    assert last_entry(server)["outcome"] == "refused" and last_entry(server)["count"] == 11


def test_an_empty_batch_is_refused(server: Server) -> None:
    with pytest.raises(ValidationError):
        server.service.batch_seal_sign(server.finance_token, [])


# --- raw signatures, encryption ------------------------------------------------------------


def test_institution_signature_verifies_with_its_certificate(server: Server, world: World) -> None:
    signature = server.service.sign(server.finance_token, FINANCE, DATA)
    world.finance.cert.public_key.verify(signature, DATA)
    assert server.service.verify(world.finance.cert.der, signature, DATA)
    assert not server.service.verify(world.finance.cert.der, signature, DATA + b"!")
    assert not server.service.verify(world.bank.cert.der, signature, DATA)
    assert last_entry(server)["action"] == "sign"  # verify uses no held key: not audited


def test_a_unit_without_its_own_key_cannot_sign_raw(server: Server) -> None:
    with pytest.raises(PartyUnknown):
        server.service.sign(server.finance_token, UNIT, DATA)


def test_envelope_key_round_trip(server: Server, world: World) -> None:
    sm4_key = random_bytes(16)
    wrapped = server.service.encrypt(world.finance.cert.der, sm4_key)
    assert server.service.decrypt(server.finance_token, FINANCE, wrapped) == sm4_key
    entry = last_entry(server)
    assert entry["action"] == "decrypt" and entry["ciphertext_sm3"] == sm3(wrapped).hex()


def test_encryption_to_a_signing_only_certificate_is_refused(server: Server, world: World) -> None:
    with pytest.raises(KeyUsageInvalid):
        server.service.encrypt(world.clerk.cert.der, random_bytes(16))


def test_a_damaged_ciphertext_is_refused_and_audited(server: Server, world: World) -> None:
    wrapped = bytearray(server.service.encrypt(world.finance.cert.der, random_bytes(16)))
    wrapped[-1] ^= 1
    with pytest.raises(Exception, match="DECRYPTION_FAILED"):
        server.service.decrypt(server.finance_token, FINANCE, bytes(wrapped))
    assert last_entry(server)["error"] == "DECRYPTION_FAILED"


def test_local_client_is_a_signing_client_on_the_same_path(server: Server, world: World) -> None:
    client: SigningClient = LocalSigningClient(server.service, server.finance_token)
    der = client.seal_sign(
        username="lisi",
        post=Post.SEAL,
        party_code=UNIT,
        kind=SealKind.UNIT_FINANCE,
        data=DATA,
        now=NOW,
    )
    assert verify_seal_signature(der, DATA, NOW).seal.es_id == UNIT_SEAL
    assert client.institution_certificate(FINANCE) == world.finance.cert
    assert len(client.batch_seal_sign(requests(2))) == 2
    with pytest.raises(ClientUnknown):
        LocalSigningClient(server.service, "nope").institution_certificate(FINANCE)


# --- administration ------------------------------------------------------------------------


def test_a_seal_no_held_institution_certificate_holds_is_refused(
    world: World, tmp_path: Path
) -> None:
    with SigningService.create(
        tmp_path / "s", PASSPHRASE, admin="root", kdf_iterations=MIN_KDF_ITERATIONS
    ) as service:
        service.add_institution_key(BANK, world.bank.key, world.bank.cert, admin="root")
        with pytest.raises(ValidationError, match="none"):
            service.add_seal(world.seals[UNIT_SEAL], admin="root")
        with pytest.raises(ValidationError, match="公章"):
            service.add_seal(world.seals["personal"], admin="root")
        assert service.add_seal(world.seals[BANK_SEAL], admin="root") == BANK_SEAL
        with pytest.raises(Conflict):
            service.add_seal(world.seals[BANK_SEAL], admin="root")
        with pytest.raises(SealNotFound):
            service.authorize("nope", Post.SEAL, NOW, NOW + DAY, admin="root")
        with pytest.raises(ValidationError):
            service.authorize(BANK_SEAL, Post.SEAL, NOW, NOW, admin="root")


def test_a_key_is_refused_with_a_certificate_not_its_own(world: World, tmp_path: Path) -> None:
    with SigningService.create(
        tmp_path / "s", PASSPHRASE, admin="root", kdf_iterations=MIN_KDF_ITERATIONS
    ) as service:
        with pytest.raises(ValidationError):
            service.add_institution_key(BANK, world.finance.key, world.bank.cert, admin="root")
        with pytest.raises(ValidationError, match="not an institution certificate of F530000"):
            service.add_institution_key(FINANCE, world.bank.key, world.bank.cert, admin="root")
        with pytest.raises(ValidationError):
            service.add_institution_key(UNIT, world.clerk.key, world.clerk.cert, admin="root")


def test_a_key_generated_in_the_server_is_certified_then_used(world: World, tmp_path: Path) -> None:
    directory = tmp_path / "s"
    with SigningService.create(
        directory, PASSPHRASE, admin="root", kdf_iterations=MIN_KDF_ITERATIONS
    ) as service:
        public = service.generate_institution_key("B200", admin="root")
        token = service.register_client("b200-node", ["B200"], admin="root")
        with pytest.raises(PartyUnknown):  # pending: no certificate yet
            service.sign(token, "B200", DATA)
        cert = world.ca.issue_institution("B200", "另一家银行", public, NOW)
        with pytest.raises(ValidationError):
            service.install_certificate("B200", world.bank.cert, admin="root")
        service.install_certificate("B200", cert, admin="root")
    with SigningService.open(directory, PASSPHRASE) as service:
        cert.public_key.verify(service.sign(token, "B200", DATA), DATA)
        assert [p.code for p in service.parties()] == ["B200"]


def test_tokens_are_random_and_stored_only_as_their_hash(server: Server) -> None:
    assert server.finance_token != server.bank_token
    assert len(base64.urlsafe_b64decode(server.finance_token + "=")) == 32
    state = (server.directory / "signing.json").read_text()
    assert server.finance_token not in state and sm3(server.finance_token.encode()).hex() in state
    with pytest.raises(Conflict):
        server.service.register_client("bank-node", [BANK], admin="root")
    with pytest.raises(ValidationError):
        server.service.register_client("empty", [], admin="root")


def test_administration_is_audited_with_the_admin_name(server: Server) -> None:
    actions = [(e.actor, e.action) for e in server.service.audit_entries()][:4]
    assert actions == [
        ("root", "admin.create"),
        ("root", "admin.add_institution_key"),
        ("root", "admin.add_institution_key"),
        ("root", "admin.add_seal"),
    ]
    with pytest.raises(NotFound):
        server.service.revoke_authorization("A999999", NOW, admin="alice")
    assert last_entry(server)["actor"] == "alice" and last_entry(server)["outcome"] == "refused"


# --- at rest -------------------------------------------------------------------------------


def test_private_keys_are_not_in_clear_anywhere_in_the_directory(
    server: Server, world: World
) -> None:
    needles = []
    for key in (world.finance.key, world.bank.key):
        scalar, der = key.scalar(), key.pkcs8_der()
        needles += [
            scalar,
            scalar.hex().encode(),
            scalar.hex().upper().encode(),
            der,
            base64.b64encode(der),
            base64.b64encode(scalar),
            key.pem(),
        ]
    files = [p for p in server.directory.rglob("*") if p.is_file()]
    assert len(files) >= 8
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"{path} holds a private key in clear"


def test_a_reopened_server_holds_the_same_keys_seals_and_rules(
    server: Server, world: World
) -> None:
    server.service.close()
    with SigningService.open(server.directory, PASSPHRASE, clock=fixed(NOW)) as service:
        der = service.seal_sign(
            server.finance_token,
            username="zhangsan",
            post=Post.SEAL,
            party_code=UNIT,
            kind=SealKind.UNIT_FINANCE,
            data=DATA,
            now=NOW,
        )
        assert verify_seal_signature(der, DATA, NOW, world.trust).seal.es_id == UNIT_SEAL
        with pytest.raises(NotAuthorized):
            service.seal_sign(
                server.finance_token,
                username="zhangsan",
                post=Post.ENTRY,
                party_code=UNIT,
                kind=SealKind.UNIT_FINANCE,
                data=DATA,
                now=NOW,
            )
        assert service.verify_audit() is None


def test_a_wrong_passphrase_is_refused(server: Server) -> None:
    server.service.close()
    with pytest.raises(PassphraseIncorrect):
        SigningService.open(server.directory, "wrong-passphrase")


def test_the_directory_is_held_by_one_process_at_a_time(server: Server) -> None:
    with pytest.raises(DirectoryInUse):
        SigningService.open(server.directory, PASSPHRASE)


def test_a_client_slipped_into_the_state_file_is_detected(server: Server) -> None:
    server.service.close()
    path = server.directory / "signing.json"
    text = path.read_text().replace('"bank-node"', '"evil-node"', 1)
    path.write_text(text)
    with pytest.raises(StoreCorrupt, match="MAC"):
        SigningService.open(server.directory, PASSPHRASE)


def test_a_replaced_seal_file_is_detected(server: Server, world: World) -> None:
    server.service.close()
    (seal_file,) = [
        p
        for p in (server.directory / "seals").iterdir()
        if p.read_bytes() == world.seals[BANK_SEAL]
    ]
    seal_file.write_bytes(world.seals[FINANCE_SEAL])
    with pytest.raises(StoreCorrupt, match="replaced"):
        SigningService.open(server.directory, PASSPHRASE)


def test_creating_over_a_non_empty_directory_is_refused(server: Server) -> None:
    with pytest.raises(Conflict):
        SigningService.create(server.directory, PASSPHRASE, admin="root")
    with pytest.raises(ValidationError):
        SigningService.create(server.directory / "new", "short", admin="root")


def test_expired_seal_cannot_be_added(world: World, tmp_path: Path) -> None:
    late = NOW + 400 * DAY
    with SigningService.create(
        tmp_path / "s",
        PASSPHRASE,
        admin="root",
        clock=fixed(late),
        kdf_iterations=MIN_KDF_ITERATIONS,
    ) as service:
        service.add_institution_key(BANK, world.bank.key, world.bank.cert, admin="root")
        with pytest.raises(ValidationError, match="expired"):
            service.add_seal(world.seals[BANK_SEAL], admin="root")


def test_a_stamp_refused_by_the_seal_layer_is_audited(world: World, tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    cert = world.ca.issue_institution("B300", "短证书银行", key.public_key(), NOW - DAY, days=10)
    maker = SM2PrivateKey.generate()
    maker_cert = world.ca.issue_institution("SEALSYS", "制章系统", maker.public_key(), NOW - DAY)
    seal = make_seal(
        "B300-1",
        "短证书银行业务专用章",
        SealKind.BANK_BUSINESS,
        [cert.der],
        tiny_png(),
        NOW - DAY,
        NOW + 365 * DAY,
        maker,
        maker_cert.der,
        NOW - DAY,
    )
    with SigningService.create(
        tmp_path / "s",
        PASSPHRASE,
        admin="root",
        clock=fixed(NOW),
        kdf_iterations=MIN_KDF_ITERATIONS,
    ) as service:
        service.add_institution_key("B300", key, cert, admin="root")
        es_id = service.add_seal(seal.der, admin="root")
        service.authorize(es_id, Post.SEAL, NOW, NOW + 100 * DAY, admin="root")
        token = service.register_client("b300-node", ["B300"], admin="root")
        with pytest.raises(SealCertificateExpired):
            service.seal_sign(
                token,
                username="wangwu",
                post=Post.SEAL,
                party_code="B300",
                kind=SealKind.BANK_BUSINESS,
                data=DATA,
                now=NOW + 20 * DAY,
            )
        entry = list(service.audit_entries())[-1]
        assert entry.outcome == "refused" and "SEAL_CERT_EXPIRED" in entry.detail
