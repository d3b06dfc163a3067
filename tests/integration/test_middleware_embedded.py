"""The middleware's promises on the embedded transport, with real envelopes: nothing lost,
nothing applied twice, bad envelopes answered with error receipts, silence settled by queries."""

from __future__ import annotations

from datetime import timedelta

from lxml import etree
from sqlalchemy import select, update

from guoku.security.crypto import sm3_hex
from guoku.store.repository import VoucherRow
from guoku.store.tables import outbox, rejected_envelopes, vouchers
from guoku.workspace import Workspace
from guoku.xml.samples import sample_document
from tests.integration.conftest import Clock

COUNTY = "533103"


def _send(ws: Workspace, no: str, amount: str = "42.00") -> VoucherRow:
    fin = ws.node_for(f"F{COUNTY}").library
    doc = sample_document("5201", voucher_no=no, amount=amount, admdiv=COUNTY)
    row = fin.create(f"fin-{COUNTY}-entry", "5201", doc.header, doc.details, receiver="B-ICBC")
    fin.check(f"fin-{COUNTY}-review", row.id)
    fin.seal(f"fin-{COUNTY}-seal", row.id)
    return fin.send(f"fin-{COUNTY}-seal", row.id)


def _state(ws: Workspace, row: VoucherRow) -> VoucherRow:
    return ws.node_for(f"F{COUNTY}").library.get(f"fin-{COUNTY}-entry", row.id)


def _publish(ws: Workspace, node: str = "finance") -> list[bytes]:
    """Take what ``node`` would publish, marking it published: the transport holds it now."""
    messenger = ws.network.messengers[node]
    bodies = []
    for envelope in messenger.pending():
        messenger.mark_published(envelope)
        bodies.append(envelope.body)
    return bodies


def _digest(ws: Workspace, node: str, direction: str) -> tuple[int, str]:
    """Count and SM3 over the sorted (voucher no, version, amount) rows of one side."""
    with ws.nodes[node].engine.connect() as conn:
        rows = sorted(conn.execute(
            select(vouchers.c.voucher_no, vouchers.c.version, vouchers.c.amount_fen)
            .where(vouchers.c.direction == direction)).all())
    text = "\n".join(f"{no}|{v}|{fen}" for no, v, fen in rows)
    return len(rows), sm3_hex(text.encode())


def test_a_batch_delivered_twice_is_applied_once(ws: Workspace) -> None:
    for i in range(25):
        _send(ws, f"D{i:04d}", f"{100 + i}.00")
    ws.network.pump(duplicate=True)
    assert _digest(ws, "finance", "out") == _digest(ws, "bank-icbc", "in")
    assert _digest(ws, "bank-icbc", "in")[0] == 25
    with ws.nodes["finance"].engine.connect() as conn:
        states = set(conn.execute(select(vouchers.c.state)).scalars())
    assert states == {"delivered"}


def test_an_envelope_altered_in_transit_is_refused_and_its_vouchers_fail(ws: Workspace) -> None:
    rows = [_send(ws, f"T{i}") for i in range(3)]
    (body,) = _publish(ws)
    root = etree.fromstring(body)
    body_el = root.find("Body")
    body_el.text = body_el.text[:-8] + ("A" if body_el.text[-8] != "A" else "B") + \
        body_el.text[-7:]
    ws.network.messengers["bank-icbc"].handle(etree.tostring(root))
    ws.network.pump()
    with ws.nodes["bank-icbc"].engine.connect() as conn:
        rejected = conn.execute(select(rejected_envelopes)).one()
        assert conn.execute(select(vouchers)).first() is None
    assert rejected.code == "ENVELOPE_SIGNATURE_INVALID"
    for row in rows:
        failed = _state(ws, row)
        assert failed.state == "failed"
        assert failed.return_reason and "ENVELOPE_SIGNATURE_INVALID" in failed.return_reason


def test_an_invalid_voucher_inside_a_good_envelope_fails_alone(ws: Workspace) -> None:
    good, bad = _send(ws, "G0001"), _send(ws, "B0001")
    with ws.nodes["finance"].engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.voucher_id == bad.id)
                     .values(payload=b"<Voucher Version='1'><VtCode>5201</VtCode></Voucher>"))
    ws.network.pump()
    assert _state(ws, good).state == "delivered"
    failed = _state(ws, bad)
    assert failed.state == "failed" and "SCHEMA_INVALID" in (failed.return_reason or "")


def test_a_lost_message_becomes_indeterminate_is_queried_and_resent(
    ws: Workspace, clock: Clock,
) -> None:
    row = _send(ws, "L0001")
    assert _publish(ws)  # published, then lost by the transport
    clock.now += timedelta(minutes=11)
    assert ws.nodes["finance"].library.sweep() == 1
    assert _state(ws, row).state == "indeterminate"
    ws.network.pump()  # query -> answer "unknown" -> resend -> stored -> delivered
    settled = _state(ws, row)
    assert settled.state == "delivered"
    events = [e["event"] for e in ws.node_for(f"F{COUNTY}").library.history(
        f"fin-{COUNTY}-entry", row.id)]
    assert events[-4:] == ["send", "time_out", "resend", "deliver"]
    assert _digest(ws, "finance", "out") == _digest(ws, "bank-icbc", "in")


def test_a_delivered_voucher_without_an_answer_is_settled_by_query(
    ws: Workspace, clock: Clock,
) -> None:
    row = _send(ws, "Q0001")
    ws.network.pump()
    bank = ws.node_for("B-ICBC").library
    received = bank.query(f"icbc-{COUNTY}-recv").items[0]
    bank.return_(f"icbc-{COUNTY}-recv", received.id, "收款账户已销户")
    _publish(ws, "bank-icbc")  # the return receipt is lost
    clock.now += timedelta(days=3)
    ws.nodes["finance"].library.sweep()
    assert _state(ws, row).state == "indeterminate"
    ws.network.pump()
    settled = _state(ws, row)
    assert (settled.state, settled.return_reason) == ("returned", "收款账户已销户")


def test_each_voucher_shows_sent_delivered_and_accepted_with_times(ws: Workspace) -> None:
    row = _send(ws, "H0001")
    ws.network.pump()
    bank = ws.node_for("B-ICBC").library
    bank.accept(f"icbc-{COUNTY}-recv", bank.query(f"icbc-{COUNTY}-recv").items[0].id)
    ws.network.pump()
    trail = {e["event"]: e["at"] for e in ws.node_for(f"F{COUNTY}").library.history(
        f"fin-{COUNTY}-entry", row.id)}
    assert trail["send"] <= trail["deliver"] <= trail["accept"]
    with ws.nodes["finance"].engine.connect() as conn:
        published = conn.execute(select(outbox).where(outbox.c.voucher_id == row.id,
                                                      outbox.c.kind == "voucher")).one()
    assert published.published_at is not None and published.envelope_id


def test_a_copy_changed_after_sending_is_raised_in_real_time(ws: Workspace) -> None:
    from guoku.store.tables import discrepancies

    row = _send(ws, "R0001", "500.00")
    with ws.nodes["finance"].engine.begin() as conn:  # a bug, or a hand, changes our copy
        conn.execute(update(vouchers).where(vouchers.c.id == row.id).values(amount_fen=50))
    ws.network.pump()
    with ws.nodes["finance"].engine.connect() as conn:
        found = conn.execute(select(discrepancies)).one()
    assert (found.kind, found.layer, found.voucher_no) == ("amount_mismatch", 1, "R0001")
    assert (found.left_amount_fen, found.right_amount_fen) == (50, 50000)
    assert _state(ws, row).state == "delivered"
