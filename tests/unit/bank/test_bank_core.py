"""The simulated core banking system: payments, idempotency, configured failures, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from guoku.bank.core import (
    AccountClosed,
    CoreBanking,
    CoreUnavailable,
    Failure,
    InsufficientFunds,
    NameMismatch,
    PayeeAccountNotFound,
    PaymentIdReused,
    PaymentResult,
    PaymentStatus,
    SimulatedCoreBanking,
)
from guoku.domain.accounts import NameMatch, check_payee
from guoku.domain.errors import AmountInvalid, GuokuError, NotFound, ValidationError
from guoku.domain.money import Amount
from guoku.transport.ports import TransientError

CLEARING = "2502010001000000019"
PAYEE = "2502010009200012345"
PAYEE_NAME = "昆明市文具有限公司"


def _core(clearing_yuan: int = 10_000,
          min_name_match: NameMatch = NameMatch.EXACT) -> SimulatedCoreBanking:
    core = SimulatedCoreBanking(min_name_match=min_name_match)
    core.open_account(CLEARING, "工商银行德宏分行财政垫付户", "中国工商银行德宏分行",
                      "102754000011", balance=Amount(clearing_yuan * 100))
    core.open_account(PAYEE, PAYEE_NAME, "中国工商银行昆明分行", "102731000019")
    return core


def _pay(core: CoreBanking, pid: str = "P1", yuan: int = 1500, name: str = PAYEE_NAME,
         payee: str = PAYEE) -> PaymentResult:
    return core.pay(pid, CLEARING, payee, name, Amount(yuan * 100))


def test_a_payment_moves_money_from_the_clearing_account_to_the_payee() -> None:
    core = _core()
    result = _pay(core)
    assert result.paid and result.status is PaymentStatus.PAID
    assert result.core_ref == "CB000000000001" and result.failure is None
    assert core.balance(CLEARING) == Amount(850_000)
    assert core.balance(PAYEE) == Amount(150_000)
    assert result.raise_for_refusal() is result


def test_a_retried_payment_never_pays_twice() -> None:
    core = _core()
    first = _pay(core)
    again = _pay(core)
    assert again.replayed and not first.replayed
    assert again.core_ref == first.core_ref
    assert core.balance(PAYEE) == Amount(150_000)
    assert len(core.payments()) == 1


def test_a_payment_id_reused_for_another_payment_is_a_conflict() -> None:
    core = _core()
    _pay(core)
    with pytest.raises(PaymentIdReused):
        _pay(core, yuan=1600)
    assert core.balance(PAYEE) == Amount(150_000)


def test_a_closed_payee_account_is_refused_with_a_reason() -> None:
    core = _core()
    core.close(PAYEE)
    result = _pay(core)
    assert not result.paid
    assert (result.code, result.reason) == ("ACCOUNT_CLOSED", "收款账户已销户")
    assert core.balance(CLEARING) == Amount(1_000_000)
    with pytest.raises(AccountClosed) as caught:
        result.raise_for_refusal()
    assert caught.value.code == "ACCOUNT_CLOSED"


def test_a_definitive_refusal_is_replayed_even_after_the_cause_went_away() -> None:
    core = _core()
    core.close(PAYEE)
    _pay(core)
    core.reopen(PAYEE)
    again = _pay(core)
    assert again.replayed and again.failure is Failure.ACCOUNT_CLOSED
    assert _pay(core, pid="P2").paid


def test_an_unknown_payee_account_is_refused() -> None:
    result = _pay(_core(), payee="6222021234567890128")
    assert result.failure is Failure.ACCOUNT_NOT_FOUND
    with pytest.raises(PayeeAccountNotFound):
        result.raise_for_refusal()


def test_a_payee_name_other_than_the_account_name_is_refused() -> None:
    result = _pay(_core(), name="大理市文具有限公司")
    assert (result.code, result.reason) == ("NAME_MISMATCH", "收款人户名与账户名称不符")
    with pytest.raises(NameMismatch):
        result.raise_for_refusal()


def test_the_name_rule_is_the_banks_choice() -> None:
    strict = _pay(_core(), name="昆明市文具有限责任公司")
    assert strict.failure is Failure.NAME_MISMATCH
    lenient = _pay(_core(min_name_match=NameMatch.PARTIAL), name="昆明市文具有限责任公司")
    assert lenient.paid


def test_insufficient_funds_on_the_clearing_account_may_be_retried_once_funded() -> None:
    core = _core(clearing_yuan=1000)
    short = _pay(core)
    assert (short.code, short.reason) == ("INSUFFICIENT_FUNDS", "清算（垫付）账户余额不足")
    with pytest.raises(InsufficientFunds):
        short.raise_for_refusal()
    assert core.payments() == []
    core.credit("R1", CLEARING, Amount(100_000))
    assert _pay(core).paid
    assert core.balance(CLEARING) == Amount(50_000)


def test_an_overdraft_line_lets_the_clearing_account_advance_below_zero() -> None:
    core = SimulatedCoreBanking()
    core.open_account(CLEARING, "垫付户", "中国工商银行德宏分行", overdraft_limit=Amount(200_000))
    core.open_account(PAYEE, PAYEE_NAME, "中国工商银行昆明分行")
    assert _pay(core).paid
    assert core.balance(CLEARING) == Amount(-150_000)
    assert _pay(core, pid="P2", yuan=600).failure is Failure.INSUFFICIENT_FUNDS


def test_a_closed_clearing_account_refuses_and_names_itself() -> None:
    core = _core()
    core.close(CLEARING)
    result = _pay(core)
    assert result.failure is Failure.ACCOUNT_CLOSED and CLEARING in result.reason


@pytest.mark.parametrize("kind", [Failure.ACCOUNT_CLOSED, Failure.NAME_MISMATCH,
                                  Failure.ACCOUNT_NOT_FOUND, Failure.INSUFFICIENT_FUNDS])
def test_fail_next_forces_one_refusal_then_the_bank_behaves_again(kind: Failure) -> None:
    core = _core()
    core.fail_next(kind)
    assert _pay(core, pid="P1").failure is kind
    assert _pay(core, pid="P2").paid
    assert core.balance(PAYEE) == Amount(150_000)


def test_an_unavailable_core_pays_nothing_and_the_retry_pays_once() -> None:
    core = _core()
    core.fail_next(Failure.CORE_UNAVAILABLE)
    with pytest.raises(CoreUnavailable) as caught:
        _pay(core)
    assert isinstance(caught.value, TransientError)
    assert core.balance(PAYEE) == Amount(0)
    assert _pay(core).paid and core.balance(PAYEE) == Amount(150_000)


def test_a_lost_reply_is_retried_by_payment_id_and_pays_only_once() -> None:
    core = _core()
    core.fail_next(Failure.REPLY_LOST)
    with pytest.raises(CoreUnavailable):
        _pay(core)
    assert core.balance(PAYEE) == Amount(150_000)
    retry = _pay(core)
    assert retry.paid and retry.replayed
    assert core.balance(PAYEE) == Amount(150_000)


def test_faults_queue_up_one_per_call() -> None:
    core = _core()
    core.fail_next(Failure.NAME_MISMATCH)
    core.fail_next(Failure.CORE_UNAVAILABLE)
    assert _pay(core, pid="P1").failure is Failure.NAME_MISMATCH
    with pytest.raises(CoreUnavailable):
        _pay(core, pid="P2")
    assert _pay(core, pid="P3").paid


@pytest.mark.parametrize(
    ("pid", "amount", "error"),
    [("P1", Amount(0), AmountInvalid), ("P1", Amount(-1), AmountInvalid),
     ("", Amount(1), ValidationError), ("x" * 65, Amount(1), ValidationError)],
)
def test_bad_requests_raise_before_anything_happens(
    pid: str, amount: Amount, error: type[GuokuError]
) -> None:
    core = _core()
    with pytest.raises(error):
        core.pay(pid, CLEARING, PAYEE, PAYEE_NAME, amount)
    assert core.balance(CLEARING) == Amount(1_000_000)


def test_an_unknown_clearing_account_is_a_configuration_error() -> None:
    with pytest.raises(NotFound):
        _core().pay("P1", "9999999999", PAYEE, PAYEE_NAME, Amount(100))
    with pytest.raises(NotFound):
        _core().balance("9999999999")


def test_a_credit_is_booked_once_per_id() -> None:
    core = _core()
    core.credit("R1", CLEARING, Amount(500))
    core.credit("R1", CLEARING, Amount(500))
    assert core.balance(CLEARING) == Amount(1_000_500)
    with pytest.raises(PaymentIdReused):
        core.credit("R1", CLEARING, Amount(600))


def test_lookup_feeds_the_payee_check() -> None:
    core = _core()
    header = {"PayeeAcctNo": PAYEE, "PayeeAcctName": PAYEE_NAME,
              "PayeeAcctBankName": "中国工商银行昆明分行", "PayeeAcctBankNo": "102731000019"}
    assert check_payee(header, core.lookup).passed
    core.close(PAYEE)
    assert [p.code for p in check_payee(header, core.lookup).problems] == ["ACCOUNT_CLOSED"]
    assert core.lookup("0000000000") is None


def test_the_snapshot_restores_the_same_bank(tmp_path: Path) -> None:
    core = _core()
    _pay(core)
    core.close(PAYEE)
    _pay(core, pid="P2")
    core.credit("R1", CLEARING, Amount(150_000))
    path = tmp_path / "core.json"
    core.save(path)
    again = SimulatedCoreBanking.load(path)
    assert again.snapshot() == core.snapshot()
    assert again.lookup(PAYEE) == core.lookup(PAYEE)
    assert _pay(again).replayed
    assert _pay(again, pid="P2").failure is Failure.ACCOUNT_CLOSED
    again.reopen(PAYEE)
    assert _pay(again, pid="P3").core_ref == "CB000000000002"


def test_the_simulator_is_deterministic() -> None:
    def run() -> dict[str, object]:
        core = _core()
        for i in range(5):
            _pay(core, pid=f"P{i}", yuan=100 + i)
        return core.snapshot()

    assert run() == run()
