"""The status: conditions keep their transition time, the scale-down round-trips, and an
unchanged tick is recognised as unchanged (no API write)."""

from __future__ import annotations

from blueque_operator.policy import ScaleDownState
from blueque_operator.status import (
    Condition,
    changed,
    conditions,
    scale_down_state,
    scale_down_status,
)


def test_a_condition_moves_its_transition_time_only_when_it_flips() -> None:
    first = conditions([Condition("RedisReachable", True, "Reachable")], [], 1000.0, 1)
    again = conditions([Condition("RedisReachable", True, "Reachable")], first, 2000.0, 1)
    assert again == first
    flipped = conditions([Condition("RedisReachable", False, "Unreachable", "x")], again, 3000, 1)
    assert flipped[0]["status"] == "False"
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]


def test_the_scale_down_in_flight_survives_a_round_trip_through_the_status() -> None:
    state = ScaleDownState(
        low_demand_since=1700000000.0, drained=("a", "b"), target=2, deadline=1700000120.0
    )
    assert scale_down_state({"scaleDown": scale_down_status(state)}) == state
    assert scale_down_state({"scaleDown": scale_down_status(ScaleDownState())}) == ScaleDownState()
    assert scale_down_state(None) == ScaleDownState()


def test_unchanged_means_equal_once_nulls_are_dropped() -> None:
    stored = {"pending": 3, "scaleDown": {"drained": []}}
    assert not changed(stored, {"pending": 3, "scaleDown": {"drained": [], "target": None}})
    assert changed(stored, {"pending": 4, "scaleDown": {"drained": []}})
    assert changed(None, {"pending": 0})
