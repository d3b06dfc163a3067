"""A consistent day — payments, a quota, an allocation, a returned and a revised payment, a
draft, a voucher in flight and one awaiting its answer — reconciles to nothing in every layer."""

from __future__ import annotations

from conftest import World


def test_a_clean_day_reports_nothing_in_any_layer(world: World) -> None:
    world.populate()
    assert world.everything() == []
