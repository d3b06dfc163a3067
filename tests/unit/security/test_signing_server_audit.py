"""The signing server's audit log: a JSONL hash chain that shows edits, deletions and rewrites."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_signing_server import (
    DATA,
    NOW,
    PASSPHRASE,
    UNIT,
    Server,
    World,
    build_server,
    build_world,
    fixed,
)

from guoku.domain.audit import GENESIS_HASH, AuditEntry, entry_hash
from guoku.domain.controls import Post
from guoku.domain.seals import SealKind
from guoku.security.crypto import sm3
from guoku.security.signing_server import NotAuthorized, SigningService
from guoku.security.signing_store import AUDIT_FILE, HEAD_FILE, StoreCorrupt, _head_record


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("audit-world"))


@pytest.fixture
def closed(world: World, tmp_path: Path) -> Iterator[Server]:
    """A server with a few operations in its log, closed so the files can be tampered with."""
    server = build_server(world, tmp_path / "signing")
    for post in (Post.SEAL, Post.REVIEW, Post.SEAL):
        with contextlib.suppress(NotAuthorized):  # the review post is refused: audited too
            server.service.seal_sign(
                server.finance_token,
                username="zhangsan",
                post=post,
                party_code=UNIT,
                kind=SealKind.UNIT_FINANCE,
                data=DATA,
                now=NOW,
            )
    server.service.close()
    yield server


def lines(server: Server) -> list[str]:
    return (server.directory / AUDIT_FILE).read_text("utf-8").splitlines(keepends=True)


def write(server: Server, content: list[str]) -> None:
    (server.directory / AUDIT_FILE).write_text("".join(content), "utf-8")


def reopen(server: Server) -> SigningService:
    return SigningService.open(server.directory, PASSPHRASE, clock=fixed(NOW))


def test_every_line_is_an_entry_chained_with_the_domain_hash(closed: Server) -> None:
    prev = GENESIS_HASH
    rows = [json.loads(line) for line in lines(closed)]
    assert [r["outcome"] for r in rows[-3:]] == ["ok", "refused", "ok"]
    for seq, row in enumerate(rows, start=1):
        assert row["seq"] == seq and row["prev_hash"] == prev
        entry = {k: v for k, v in row.items() if k not in ("prev_hash", "hash")}
        assert entry_hash(AuditEntry(**entry), prev, sm3) == row["hash"]
        prev = row["hash"]
    with reopen(closed) as service:
        assert service.verify_audit() is None
        assert service.audit_head == (len(rows), prev)


def test_an_edited_line_in_the_middle_is_found_at_its_position(closed: Server) -> None:
    content = lines(closed)
    assert '"root"' in content[3]
    content[3] = content[3].replace('"root"', '"mallory"')
    write(closed, content)
    with reopen(closed) as service:  # only the tail is checked at open; the walk finds it
        broken = service.verify_audit()
    assert broken is not None and broken.position == 4
    assert broken.reason == "entry content does not match its hash"


def test_a_deleted_line_in_the_middle_breaks_the_sequence(closed: Server) -> None:
    content = lines(closed)
    del content[2]
    write(closed, content)
    with reopen(closed) as service:
        broken = service.verify_audit()
    assert broken is not None and broken.position == 3 and "expected seq 3" in broken.reason


def test_an_edited_last_line_is_refused_at_open(closed: Server) -> None:
    content = lines(closed)
    assert "zhangsan" in content[-1]
    content[-1] = content[-1].replace("zhangsan", "lisi")
    write(closed, content)
    with pytest.raises(StoreCorrupt):
        reopen(closed)


def test_a_removed_tail_is_refused_at_open(closed: Server) -> None:
    write(closed, lines(closed)[:-2])
    with pytest.raises(StoreCorrupt, match="entries were removed"):
        reopen(closed)


def test_a_removed_log_is_refused_at_open(closed: Server) -> None:
    (closed.directory / AUDIT_FILE).unlink()
    with pytest.raises(StoreCorrupt, match="missing or empty"):
        reopen(closed)


def test_a_garbage_line_is_reported_not_raised(closed: Server) -> None:
    content = lines(closed)
    content.insert(2, "not json\n")
    write(closed, content)
    with reopen(closed) as service:
        broken = service.verify_audit()
    assert broken is not None and broken.position == 3 and "malformed" in broken.reason


def test_a_head_lagging_after_a_crash_is_rolled_forward(closed: Server) -> None:
    """The log line is written (and fsynced) before the head: a crash between leaves a lag."""
    rows = [json.loads(line) for line in lines(closed)]
    # the last line made it to disk, the head still names the one before
    (closed.directory / HEAD_FILE).write_bytes(_head_record(rows[-2]["seq"], rows[-2]["hash"]))
    with reopen(closed) as service:
        assert service.audit_head == (rows[-1]["seq"], rows[-1]["hash"])
        assert service.verify_audit() is None


def test_a_torn_head_falls_back_to_the_verified_log(closed: Server) -> None:
    (closed.directory / HEAD_FILE).write_bytes(b"12 deadbeef")
    with reopen(closed) as service:
        assert service.verify_audit() is None


def test_a_rewritten_log_that_drops_the_head_is_refused(
    closed: Server, world: World, tmp_path: Path
) -> None:
    other = build_server(world, tmp_path / "other")
    for _ in range(5):
        other.service.record_event("server.start", "signing-server")
    other.service.close()
    write(closed, lines(other))  # a longer, valid chain that is not this server's
    with pytest.raises(StoreCorrupt, match="does not contain its head"):
        reopen(closed)


def test_server_start_and_stop_events_are_audited(closed: Server) -> None:
    with reopen(closed) as service:
        service.record_event("server.start", "signing-server", address="127.0.0.1:1")
        entry = list(service.audit_entries())[-1]
    assert (entry.action, entry.actor, entry.outcome) == ("server.start", "signing-server", "ok")
