"""Account information maintenance goes through review before use — on SQLite and PostgreSQL.

A change is entered as pending by one user and is used only after another user with the review
post approves it; lookups (what the automatic payee check reads) see active versions only; every
change and every refusal is audited.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from guoku.bootstrap import open_engine
from guoku.domain.accounts import NameMatch, check_payee
from guoku.domain.controls import Post
from guoku.domain.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    SeparationOfDuties,
    ValidationError,
)
from guoku.library.admin import Administration, install
from guoku.province import demo_province
from guoku.store import audit
from guoku.store import repository as repo
from guoku.store.accounts import (
    AccountDirectory,
    AccountKind,
    Change,
    EntryStatus,
    directory_lookup,
    latest_check,
    record_check,
)
from guoku.store.engine import sqlite_url
from guoku.store.tables import accounts, audit_log, metadata

MANGSHI = "533103"
ENTRY, REVIEW = f"fin-{MANGSHI}-entry", f"fin-{MANGSHI}-review"
PAYEE_NO = "2502010009200012345"
PAYEE_NAME = "昆明市文具有限公司"
ICBC_KM = "中国工商银行昆明分行"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "node.db")
    else:
        url = request.getfixturevalue("pg_schema_url")
    eng = open_engine(url)
    spec = demo_province()
    install(eng, spec, spec.nodes[0])
    yield eng
    eng.dispose()


def _clock() -> Callable[[], datetime]:
    ticks = itertools.count()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return lambda: start + timedelta(seconds=next(ticks))


@pytest.fixture
def directory(engine: Engine) -> AccountDirectory:
    return AccountDirectory(engine, _clock())


def _new(directory: AccountDirectory, user: str = ENTRY, no: str = PAYEE_NO) -> int:
    return directory.enter_new(user, MANGSHI, no, PAYEE_NAME, ICBC_KM, "102731000019").id


def _actions(engine: Engine, outcome: str = "ok") -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(audit_log.c.action).where(audit_log.c.action.like("account.%"),
                                             audit_log.c.outcome == outcome)
            .order_by(audit_log.c.seq)
        ).scalars())


def test_an_entered_account_is_used_only_after_another_user_approves_it(
    directory: AccountDirectory, engine: Engine,
) -> None:
    entry_id = _new(directory)
    assert directory.lookup(MANGSHI, PAYEE_NO) is None
    assert [e.id for e in directory.pending(REVIEW)] == [entry_id]
    approved = directory.approve(REVIEW, entry_id)
    assert approved.status is EntryStatus.ACTIVE
    assert (approved.entered_by, approved.reviewed_by) == (ENTRY, REVIEW)
    assert approved.reviewed_at is not None and approved.version == 1
    found = directory.lookup(MANGSHI, PAYEE_NO)
    assert found is not None and found.name == PAYEE_NAME and found.kind is AccountKind.PAYEE
    assert directory.pending(REVIEW) == []
    assert _actions(engine) == ["account.enter", "account.approve"]
    assert audit.verify(engine)[1] is None


def test_the_user_who_entered_a_change_may_not_approve_it(
    directory: AccountDirectory, engine: Engine,
) -> None:
    Administration(engine).grant("admin-finance", ENTRY, Post.REVIEW)
    entry_id = _new(directory)
    with pytest.raises(SeparationOfDuties):
        directory.approve(ENTRY, entry_id)
    assert directory.lookup(MANGSHI, PAYEE_NO) is None
    assert _actions(engine, "refused") == ["account.approve"]


def test_posts_and_divisions_limit_who_enters_and_who_reviews(
    directory: AccountDirectory,
) -> None:
    with pytest.raises(PermissionDenied):
        _new(directory, user=REVIEW)
    entry_id = _new(directory)
    with pytest.raises(PermissionDenied):
        directory.approve(f"fin-{MANGSHI}-seal", entry_id)
    with pytest.raises(PermissionDenied):
        directory.approve("fin-533102-review", entry_id)
    assert directory.pending("fin-533102-review") == []
    with pytest.raises(NotFound):
        directory.approve("nobody", entry_id)
    province_reviewer = "fin-530000-review"
    assert [e.id for e in directory.pending(province_reviewer)] == [entry_id]
    assert directory.approve(province_reviewer, entry_id).status is EntryStatus.ACTIVE


def test_a_change_keeps_the_old_version_in_force_until_it_is_approved(
    directory: AccountDirectory,
) -> None:
    directory.approve(REVIEW, _new(directory))
    change = directory.enter_change(ENTRY, MANGSHI, PAYEE_NO, name="昆明市文具有限责任公司")
    assert change.change is Change.UPDATE and change.bank_name == ICBC_KM
    current = directory.lookup(MANGSHI, PAYEE_NO)
    assert current is not None and current.name == PAYEE_NAME
    directory.approve(REVIEW, change.id)
    current = directory.lookup(MANGSHI, PAYEE_NO)
    assert current is not None and current.name == "昆明市文具有限责任公司"
    assert [(e.version, e.status) for e in directory.history(MANGSHI, PAYEE_NO)] == [
        (1, EntryStatus.SUPERSEDED), (2, EntryStatus.ACTIVE)]


def test_a_rejected_change_changes_nothing_and_needs_a_reason(
    directory: AccountDirectory, engine: Engine,
) -> None:
    directory.approve(REVIEW, _new(directory))
    change = directory.enter_change(ENTRY, MANGSHI, PAYEE_NO, bank_name="中国农业银行昆明分行",
                                    bank_no="103731000010")
    with pytest.raises(ValidationError):
        directory.reject(REVIEW, change.id, " ")
    rejected = directory.reject(REVIEW, change.id, "开户许可证与所填开户行不符")
    assert rejected.status is EntryStatus.REJECTED
    assert rejected.review_note == "开户许可证与所填开户行不符"
    current = directory.lookup(MANGSHI, PAYEE_NO)
    assert current is not None and current.bank_name == ICBC_KM
    with pytest.raises(Conflict):
        directory.approve(REVIEW, change.id)
    assert _actions(engine)[-1] == "account.reject"


def test_a_closed_account_is_no_longer_found_and_may_be_entered_again(
    directory: AccountDirectory, engine: Engine,
) -> None:
    directory.approve(REVIEW, _new(directory))
    closing = directory.enter_close(ENTRY, MANGSHI, PAYEE_NO, "单位注销")
    assert directory.lookup(MANGSHI, PAYEE_NO) is not None
    assert directory.approve(REVIEW, closing.id).status is EntryStatus.CLOSED
    assert directory.lookup(MANGSHI, PAYEE_NO) is None
    header = {"PayeeAcctNo": PAYEE_NO, "PayeeAcctName": PAYEE_NAME,
              "PayeeAcctBankName": ICBC_KM, "PayeeAcctBankNo": "102731000019"}
    with engine.connect() as conn:
        check = check_payee(header, directory_lookup(conn, MANGSHI))
    assert [p.code for p in check.problems] == ["ACCOUNT_NOT_FOUND"]
    with pytest.raises(NotFound):
        directory.enter_change(ENTRY, MANGSHI, PAYEE_NO, name="x公司")
    reopened = directory.enter_new(ENTRY, MANGSHI, PAYEE_NO, PAYEE_NAME, ICBC_KM)
    assert reopened.version == 3


def test_one_account_has_at_most_one_change_waiting(directory: AccountDirectory) -> None:
    _new(directory)
    with pytest.raises(Conflict):
        _new(directory)
    directory.approve(REVIEW, directory.pending(REVIEW)[0].id)
    with pytest.raises(Conflict):
        _new(directory)
    directory.enter_change(ENTRY, MANGSHI, PAYEE_NO, name="新名称有限公司")
    with pytest.raises(Conflict):
        directory.enter_close(ENTRY, MANGSHI, PAYEE_NO)


@pytest.mark.parametrize(
    ("no", "name", "bank", "bank_no"),
    [("2502-0100-0920", PAYEE_NAME, ICBC_KM, None), ("123", PAYEE_NAME, ICBC_KM, None),
     (PAYEE_NO, "", ICBC_KM, None), (PAYEE_NO, "名" * 61, ICBC_KM, None),
     (PAYEE_NO, PAYEE_NAME, "", None), (PAYEE_NO, PAYEE_NAME, ICBC_KM, "1027")],
)
def test_malformed_account_information_is_refused_at_entry(
    directory: AccountDirectory, engine: Engine, no: str, name: str, bank: str,
    bank_no: str | None,
) -> None:
    with pytest.raises(ValidationError):
        directory.enter_new(ENTRY, MANGSHI, no, name, bank, bank_no)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 0
    assert _actions(engine, "refused") == ["account.enter"]


def test_the_directory_feeds_the_payee_check_kept_with_the_voucher(
    directory: AccountDirectory, engine: Engine,
) -> None:
    directory.approve(REVIEW, _new(directory))
    header = {"PayeeAcctNo": PAYEE_NO, "PayeeAcctName": "昆明市文具有限责任公司",
              "PayeeAcctBankName": ICBC_KM, "PayeeAcctBankNo": "102731000019"}
    with engine.begin() as conn:
        check = check_payee(header, directory_lookup(conn, MANGSHI))
        voucher_id = repo.insert_voucher(
            conn, admdiv=MANGSHI, st_year=2026, vt_code="5201", voucher_no="T0001", version=1,
            direction="in", state="received", amount_fen=150_000, vou_date="20260302",
            sender_party="F533103", receiver_party="B-ICBC", xml=b"<x/>", print_count=0,
            is_current=True, created_at="2026-03-02T09:00:00.000000Z",
            updated_at="2026-03-02T09:00:00.000000Z",
        ).id
        assert latest_check(conn, voucher_id) is None
        record_check(conn, voucher_id, MANGSHI, check, "2026-03-02T09:00:01.000000Z")
    assert check.passed and check.name_match is NameMatch.PARTIAL
    with engine.connect() as conn:
        assert latest_check(conn, voucher_id) == check


def test_two_reviewers_approving_at_once_put_one_version_in_force(
    engine: Engine, directory: AccountDirectory,
) -> None:
    entry_id = _new(directory)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(user: str) -> None:
        barrier.wait()
        try:
            AccountDirectory(engine, _clock()).approve(user, entry_id)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=approve, args=(u,))
               for u in (REVIEW, "fin-530000-review")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "ok"]
    history = directory.history(MANGSHI, PAYEE_NO)
    assert [e.status for e in history] == [EntryStatus.ACTIVE]
    assert audit.verify(engine)[1] is None


def test_the_database_itself_refuses_two_versions_in_force_and_self_review(
    engine: Engine,
) -> None:
    row = {"admdiv": MANGSHI, "account_no": PAYEE_NO, "kind": "payee", "change": "create",
           "name": PAYEE_NAME, "bank_name": ICBC_KM, "status": "active", "entered_by": ENTRY,
           "reviewed_by": REVIEW, "entered_at": "t", "updated_at": "t"}
    with engine.begin() as conn:
        conn.execute(insert(accounts).values(version=1, **row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(accounts).values(version=2, **row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(accounts).values(**{**row, "version": 3, "status": "pending",
                                                "reviewed_by": ENTRY}))


def test_migrations_create_exactly_the_tables_the_code_declares(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
