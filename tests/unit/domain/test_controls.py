"""Posts and separation of duties: no one person can complete a payment."""

from __future__ import annotations

import itertools

import pytest

from guoku.domain.controls import (
    ACTION_EVENT,
    ACTION_POST,
    ANY_VOUCHER_TYPE,
    CONTROL_STEPS,
    Action,
    Grant,
    Post,
    check_permission,
    check_separation,
    required_post,
)
from guoku.domain.errors import PermissionDenied, SeparationOfDuties
from guoku.domain.lifecycle import Event

DIRECT_PAYMENT, AUTHORIZED_PAYMENT = "5201", "8202"
ACTIONS_WITH_POST = [a for a in Action if required_post(a) is not None]
CONTROLS = (Action.CREATE, Action.CHECK, Action.SEAL)
OTHER_ACTIONS = [a for a in Action if a not in CONTROLS]


# --- which post an action needs --------------------------------------------------------------


def test_each_action_needs_the_post_of_the_person_who_does_it_in_the_seeds() -> None:
    assert dict(ACTION_POST) == {
        Action.CREATE: Post.ENTRY,
        Action.REVISE: Post.ENTRY,
        Action.RESTORE: Post.ENTRY,
        Action.REINSTATE: Post.ENTRY,
        Action.VOID: Post.ENTRY,
        Action.CHECK: Post.REVIEW,
        Action.UNCHECK: Post.REVIEW,
        Action.SEAL: Post.SEAL,
        Action.SEND: Post.SEND,
        Action.ACCEPT: Post.RECEIVE,
        Action.RETURN: Post.RECEIVE,
        Action.PRINT: Post.PRINT,
        Action.FALLBACK: Post.SEND,
    }


def test_only_query_needs_no_particular_post() -> None:
    assert [a for a in Action if required_post(a) is None] == [Action.QUERY]
    assert check_permission("li", frozenset(), Action.QUERY, DIRECT_PAYMENT) is None


def test_every_action_that_moves_a_voucher_maps_to_the_lifecycle_event_of_the_same_name() -> None:
    for action, event in ACTION_EVENT.items():
        assert event.value == action.value
    wire_events = {Event.DELIVER, Event.FAIL, Event.TIME_OUT, Event.RESEND}
    assert set(ACTION_EVENT.values()) == set(Event) - wire_events  # the middleware's, no clerk's


def test_the_control_steps_are_entry_review_and_seal() -> None:
    assert CONTROL_STEPS == CONTROLS
    assert {required_post(a) for a in CONTROL_STEPS} == {Post.ENTRY, Post.REVIEW, Post.SEAL}


# --- permission by post and voucher type -----------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS_WITH_POST)
def test_a_grant_for_the_right_post_and_voucher_type_permits_the_action(action: Action) -> None:
    post = required_post(action)
    assert post is not None
    grants = frozenset({Grant(post, DIRECT_PAYMENT)})
    assert check_permission("li", grants, action, DIRECT_PAYMENT) is post


@pytest.mark.parametrize("action", ACTIONS_WITH_POST)
def test_a_grant_for_every_voucher_type_permits_the_action_on_any_type(action: Action) -> None:
    post = required_post(action)
    assert post is not None
    grants = frozenset({Grant(post, ANY_VOUCHER_TYPE)})
    for vt_code in (DIRECT_PAYMENT, AUTHORIZED_PAYMENT, "2301", "9301"):
        assert check_permission("li", grants, action, vt_code) is post


def test_a_grant_defaults_to_every_voucher_type() -> None:
    assert Grant(Post.REVIEW).vt_code == "*"
    assert check_permission("li", frozenset({Grant(Post.REVIEW)}), Action.CHECK, "5106")


@pytest.mark.parametrize("action", ACTIONS_WITH_POST)
def test_a_grant_for_another_voucher_type_does_not_permit_the_action(action: Action) -> None:
    post = required_post(action)
    assert post is not None
    grants = frozenset({Grant(post, AUTHORIZED_PAYMENT)})
    with pytest.raises(PermissionDenied) as caught:
        check_permission("li", grants, action, DIRECT_PAYMENT)
    assert caught.value.details == {"user": "li", "post": post.value, "vt_code": DIRECT_PAYMENT}


@pytest.mark.parametrize("action", ACTIONS_WITH_POST)
def test_every_other_post_even_for_every_type_does_not_permit_the_action(action: Action) -> None:
    needed = required_post(action)
    grants = frozenset(Grant(p) for p in Post if p is not needed)
    with pytest.raises(PermissionDenied):
        check_permission("li", grants, action, DIRECT_PAYMENT)


def test_the_admin_post_does_not_stand_in_for_the_business_posts() -> None:
    for action in ACTIONS_WITH_POST:
        with pytest.raises(PermissionDenied):
            check_permission("root", frozenset({Grant(Post.ADMIN)}), action, DIRECT_PAYMENT)


def test_a_user_without_grants_may_do_nothing_but_query() -> None:
    for action in ACTIONS_WITH_POST:
        with pytest.raises(PermissionDenied):
            check_permission("li", frozenset(), action, DIRECT_PAYMENT)


def test_a_star_voucher_type_on_the_request_is_not_a_wildcard() -> None:
    grants = frozenset({Grant(Post.ENTRY, DIRECT_PAYMENT)})
    with pytest.raises(PermissionDenied):
        check_permission("li", grants, Action.CREATE, ANY_VOUCHER_TYPE)


def test_the_post_under_which_an_action_runs_is_picked_among_many_grants() -> None:
    grants = frozenset({Grant(Post.ENTRY, AUTHORIZED_PAYMENT), Grant(Post.SEND), Grant(Post.PRINT)})
    assert check_permission("li", grants, Action.SEND, DIRECT_PAYMENT) is Post.SEND
    assert check_permission("li", grants, Action.CREATE, AUTHORIZED_PAYMENT) is Post.ENTRY
    with pytest.raises(PermissionDenied):
        check_permission("li", grants, Action.CREATE, DIRECT_PAYMENT)


# --- separation of duties --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "later"),
    list(itertools.permutations(CONTROLS, 2)),
    ids=lambda a: a.value,
)
def test_the_same_user_may_not_perform_two_control_steps_on_one_voucher(
    earlier: Action, later: Action
) -> None:
    actors: dict[Action, str | None] = {earlier: "wang"}
    with pytest.raises(SeparationOfDuties) as caught:
        check_separation("wang", later, actors)
    assert caught.value.details == {
        "user": "wang",
        "action": later.value,
        "earlier_step": earlier.value,
    }
    assert caught.value.code == "SEPARATION_OF_DUTIES"


@pytest.mark.parametrize(
    ("earlier", "later"),
    list(itertools.permutations(CONTROLS, 2)),
    ids=lambda a: a.value,
)
def test_a_different_user_may_perform_the_next_control_step(earlier: Action, later: Action) -> None:
    check_separation("zhao", later, {earlier: "wang"})


def test_a_separation_refusal_is_also_a_permission_refusal() -> None:
    with pytest.raises(PermissionDenied):
        check_separation("wang", Action.SEAL, {Action.CREATE: "wang"})


def test_three_different_people_complete_entry_review_and_seal() -> None:
    actors: dict[Action, str | None] = {}
    for action, user in zip(CONTROLS, ("zhang", "wang", "zhao"), strict=True):
        check_separation(user, action, actors)
        actors[action] = user


def test_the_one_who_sealed_may_not_check_even_when_entry_was_by_someone_else() -> None:
    actors: dict[Action, str | None] = {Action.CREATE: "zhang", Action.SEAL: "zhao"}
    with pytest.raises(SeparationOfDuties):
        check_separation("zhao", Action.CHECK, actors)


def test_a_reviewer_may_check_again_after_unchecking() -> None:
    check_separation("wang", Action.CHECK, {Action.CREATE: "zhang", Action.CHECK: "wang"})


def test_steps_nobody_has_performed_yet_do_not_count() -> None:
    actors: dict[Action, str | None] = {Action.CREATE: None, Action.CHECK: None}
    check_separation("wang", Action.SEAL, actors)


@pytest.mark.parametrize("action", OTHER_ACTIONS, ids=lambda a: a.value)
def test_actions_other_than_the_three_controls_are_not_restricted(action: Action) -> None:
    did_everything: dict[Action, str | None] = dict.fromkeys(CONTROLS, "wang")
    check_separation("wang", action, did_everything)
