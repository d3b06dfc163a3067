"""The lifecycle is one table; these tests walk all of it."""

from __future__ import annotations

import contextlib
import itertools
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guoku.domain.errors import GuokuError, IllegalTransition
from guoku.domain.lifecycle import (
    FINAL_STATES,
    INITIAL_CREATED,
    INITIAL_RECEIVED,
    TRANSITIONS,
    Event,
    State,
    allowed_events,
    next_state,
)

ALL_PAIRS = list(itertools.product(State, Event))


def _reachable(starts: set[State], table: dict[tuple[State, Event], State]) -> set[State]:
    seen, queue = set(starts), deque(starts)
    while queue:
        here = queue.popleft()
        for (source, _), target in table.items():
            if source is here and target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=[f"{s}-{e}" for s, e in ALL_PAIRS])
def test_every_state_and_event_either_moves_as_the_table_says_or_is_refused(
    state: State, event: Event
) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[(state, event)]
        assert event in allowed_events(state)
    else:
        with pytest.raises(IllegalTransition) as caught:
            next_state(state, event)
        assert caught.value.details["state"] == state.value
        assert caught.value.details["event"] == event.value
        assert caught.value.details["allowed"] == sorted(e.value for e in allowed_events(state))
        assert event not in allowed_events(state)


def test_exactly_these_moves_are_allowed_and_no_others() -> None:
    allowed = set()
    for state, event in ALL_PAIRS:
        with contextlib.suppress(IllegalTransition):
            allowed.add((state, event, next_state(state, event)))
    assert allowed == {
        (State.DRAFT, Event.CHECK, State.CHECKED),
        (State.CHECKED, Event.UNCHECK, State.DRAFT),
        (State.CHECKED, Event.SEAL, State.SEALED),
        (State.SEALED, Event.SEND, State.SENT),
        (State.SENT, Event.ACCEPT, State.ACCEPTED),
        (State.SENT, Event.RETURN, State.RETURNED),
        (State.RECEIVED, Event.ACCEPT, State.ACCEPTED),
        (State.RECEIVED, Event.RETURN, State.RETURNED),
        (State.DRAFT, Event.VOID, State.VOID),
        (State.CHECKED, Event.VOID, State.VOID),
        (State.SEALED, Event.VOID, State.VOID),
        (State.RETURNED, Event.VOID, State.VOID),
        (State.VOID, Event.RESTORE, State.DRAFT),
        (State.VOID, Event.REINSTATE, State.RETURNED),
        (State.RETURNED, Event.REVISE, State.SUPERSEDED),
        (State.VOID, Event.REVISE, State.SUPERSEDED),
        (State.SENT, Event.DELIVER, State.DELIVERED),
        (State.SENT, Event.FAIL, State.FAILED),
        (State.SENT, Event.TIME_OUT, State.INDETERMINATE),
        (State.DELIVERED, Event.ACCEPT, State.ACCEPTED),
        (State.DELIVERED, Event.RETURN, State.RETURNED),
        (State.DELIVERED, Event.TIME_OUT, State.INDETERMINATE),
        (State.INDETERMINATE, Event.DELIVER, State.DELIVERED),
        (State.INDETERMINATE, Event.ACCEPT, State.ACCEPTED),
        (State.INDETERMINATE, Event.RETURN, State.RETURNED),
        (State.INDETERMINATE, Event.FAIL, State.FAILED),
        (State.INDETERMINATE, Event.RESEND, State.SENT),
        (State.FAILED, Event.VOID, State.VOID),
        (State.FAILED, Event.REVISE, State.SUPERSEDED),
        (State.SENT, Event.FALLBACK, State.PAPER),
        (State.INDETERMINATE, Event.FALLBACK, State.PAPER),
        (State.PAPER, Event.ACCEPT, State.ACCEPTED),
        (State.PAPER, Event.RETURN, State.RETURNED),
    }


def test_the_table_speaks_only_of_known_states_and_events() -> None:
    for (state, event), target in TRANSITIONS.items():
        assert isinstance(state, State)
        assert isinstance(event, Event)
        assert isinstance(target, State)


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[(State.ACCEPTED, Event.VOID)] = State.VOID  # type: ignore[index]


def test_an_illegal_move_is_a_guoku_error_with_a_stable_code_and_a_readable_message() -> None:
    with pytest.raises(GuokuError) as caught:
        next_state(State.SENT, Event.VOID)
    assert caught.value.code == "ILLEGAL_TRANSITION"
    assert "void" in caught.value.message and "sent" in caught.value.message
    assert caught.value.to_dict()["allowed"] == ["accept", "deliver", "fail", "fallback", "return",
                                                 "time_out"]


def test_a_created_voucher_starts_in_draft_and_a_received_one_in_received() -> None:
    assert INITIAL_CREATED is State.DRAFT
    assert INITIAL_RECEIVED is State.RECEIVED


def test_every_state_is_reachable_from_draft_or_received() -> None:
    assert _reachable({INITIAL_CREATED, INITIAL_RECEIVED}, dict(TRANSITIONS)) == set(State)


def test_the_senders_copy_never_becomes_a_received_one() -> None:
    assert State.RECEIVED not in _reachable({State.DRAFT}, dict(TRANSITIONS))


@pytest.mark.parametrize("state", [State.ACCEPTED, State.SUPERSEDED])
def test_accepted_and_superseded_vouchers_have_no_way_out(state: State) -> None:
    assert allowed_events(state) == []
    for event in Event:
        with pytest.raises(IllegalTransition):
            next_state(state, event)


def test_the_final_states_are_exactly_those_without_outgoing_moves() -> None:
    dead_ends = {s for s in State if not allowed_events(s)}
    assert FINAL_STATES == dead_ends == {State.ACCEPTED, State.SUPERSEDED}


def test_void_is_allowed_only_before_sending_or_after_a_return_or_a_failure() -> None:
    voidable = {s for s in State if (s, Event.VOID) in TRANSITIONS}
    assert voidable == {State.DRAFT, State.CHECKED, State.SEALED, State.RETURNED, State.FAILED}
    for state in (State.SENT, State.DELIVERED, State.INDETERMINATE, State.RECEIVED,
                  State.ACCEPTED, State.VOID, State.SUPERSEDED):
        with pytest.raises(IllegalTransition):
            next_state(state, Event.VOID)


def test_void_always_leads_to_void() -> None:
    assert {t for (_, e), t in TRANSITIONS.items() if e is Event.VOID} == {State.VOID}


def test_restore_brings_only_a_voided_voucher_back_and_always_to_draft() -> None:
    restores = {(s, t) for (s, e), t in TRANSITIONS.items() if e is Event.RESTORE}
    assert restores == {(State.VOID, State.DRAFT)}


def test_a_restored_voucher_must_be_checked_and_sealed_again_before_it_is_sent() -> None:
    state = next_state(State.VOID, Event.RESTORE)
    with pytest.raises(IllegalTransition):
        next_state(state, Event.SEND)
    with pytest.raises(IllegalTransition):
        next_state(state, Event.SEAL)
    for event in (Event.CHECK, Event.SEAL, Event.SEND):
        state = next_state(state, event)
    assert state is State.SENT


def test_only_a_returned_voided_or_failed_voucher_may_be_revised_and_becomes_superseded() -> None:
    revisions = {(s, t) for (s, e), t in TRANSITIONS.items() if e is Event.REVISE}
    assert revisions == {(State.RETURNED, State.SUPERSEDED), (State.VOID, State.SUPERSEDED),
                         (State.FAILED, State.SUPERSEDED)}


def test_sending_needs_a_seal_and_sealing_needs_a_check() -> None:
    def without(state: State) -> dict[tuple[State, Event], State]:
        return {k: t for k, t in TRANSITIONS.items() if state not in (k[0], t)}

    assert State.SENT not in _reachable({State.DRAFT}, without(State.SEALED))
    assert State.SEALED not in _reachable({State.DRAFT}, without(State.CHECKED))


def test_unchecking_returns_a_checked_voucher_to_draft_but_not_a_sealed_one() -> None:
    assert next_state(State.CHECKED, Event.UNCHECK) is State.DRAFT
    with pytest.raises(IllegalTransition):
        next_state(State.SEALED, Event.UNCHECK)


@pytest.mark.parametrize("source", [State.SENT, State.RECEIVED, State.DELIVERED,
                                    State.INDETERMINATE, State.PAPER])
def test_a_voucher_in_flight_settles_as_accepted_or_returned(source: State) -> None:
    assert {Event.ACCEPT, Event.RETURN} <= set(allowed_events(source))
    assert next_state(source, Event.ACCEPT) is State.ACCEPTED
    assert next_state(source, Event.RETURN) is State.RETURNED


def test_a_happy_sender_path_reads_like_the_flow() -> None:
    state = INITIAL_CREATED
    for event in (Event.CHECK, Event.SEAL, Event.SEND, Event.ACCEPT):
        state = next_state(state, event)
    assert state is State.ACCEPTED


def test_a_failed_allocation_comes_back_returned_is_voided_and_can_be_restored() -> None:
    state = State.DRAFT
    for event in (Event.CHECK, Event.SEAL, Event.SEND, Event.RETURN, Event.VOID, Event.RESTORE):
        state = next_state(state, event)
    assert state is State.DRAFT


@given(st.lists(st.sampled_from(list(Event)), max_size=60))
def test_any_walk_reaches_sent_only_after_a_check_and_a_seal_since_the_last_draft(
    events: list[Event],
) -> None:
    state, since_draft = INITIAL_CREATED, []
    for event in events:
        try:
            state = next_state(state, event)
        except IllegalTransition:
            continue
        since_draft = [] if state is State.DRAFT else [*since_draft, event]
        if state is State.SENT:
            assert since_draft == [Event.CHECK, Event.SEAL, Event.SEND]
        assert state in set(State)


def test_a_voucher_without_receipt_is_never_silently_pending() -> None:
    """Sent or delivered with no receipt in time becomes indeterminate; a query settles it."""
    assert next_state(State.SENT, Event.TIME_OUT) is State.INDETERMINATE
    assert next_state(State.DELIVERED, Event.TIME_OUT) is State.INDETERMINATE
    settled = {t for (s, e), t in TRANSITIONS.items() if s is State.INDETERMINATE}
    assert settled == {State.DELIVERED, State.ACCEPTED, State.RETURNED, State.FAILED, State.SENT,
                       State.PAPER}


# --- the paper fallback (应急, decision 0021) ---------------------------------------------------


def test_only_a_voucher_stuck_on_the_wire_may_fall_back_to_paper() -> None:
    sources = {s for (s, e) in TRANSITIONS if e is Event.FALLBACK}
    assert sources == {State.SENT, State.INDETERMINATE}
    assert {t for (_, e), t in TRANSITIONS.items() if e is Event.FALLBACK} == {State.PAPER}
    for state in set(State) - sources:
        with pytest.raises(IllegalTransition):
            next_state(state, Event.FALLBACK)


def test_a_paper_voucher_settles_only_by_the_receivers_answer() -> None:
    assert set(allowed_events(State.PAPER)) == {Event.ACCEPT, Event.RETURN}
    for event in (Event.VOID, Event.SEND, Event.RESEND, Event.DELIVER, Event.FAIL,
                  Event.TIME_OUT, Event.FALLBACK, Event.REVISE):
        with pytest.raises(IllegalTransition):
            next_state(State.PAPER, event)


def test_a_paper_voucher_was_sealed_and_sent_first() -> None:
    without_sent = {k: t for k, t in TRANSITIONS.items() if State.SENT not in (k[0], t)}
    assert State.PAPER not in _reachable({State.DRAFT}, without_sent)


def test_link_down_then_paper_then_the_receivers_acceptance() -> None:
    state = INITIAL_CREATED
    for event in (Event.CHECK, Event.SEAL, Event.SEND, Event.TIME_OUT, Event.FALLBACK,
                  Event.ACCEPT):
        state = next_state(state, event)
    assert state is State.ACCEPTED
