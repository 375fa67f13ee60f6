"""The partitioned-node rule: when a worker whose heartbeat expired is given up for lost."""

from __future__ import annotations

from typing import Any

from blueque_operator.reaper import PARTITION_MARGIN_S, partitioned

DELETING_AT = 1_800_000_000.0  # 2027-01-15T08:00:00Z
Json = dict[str, Any]


def pod(deleting: bool = False) -> Json:
    meta: Json = {"name": "w-1"}
    if deleting:
        meta["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "n-1"}}


def node(ready: str) -> Json:
    return {"status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_a_pod_terminating_past_its_grace_and_margin_is_lost() -> None:
    assert not partitioned(pod(deleting=True), None, DELETING_AT + PARTITION_MARGIN_S - 1)
    assert partitioned(pod(deleting=True), None, DELETING_AT + PARTITION_MARGIN_S + 1)


def test_a_pod_on_a_node_not_ready_or_gone_is_lost_on_a_ready_one_not() -> None:
    assert partitioned(pod(), node("False"), 0)
    assert partitioned(pod(), node("Unknown"), 0)
    assert partitioned(pod(), {}, 0)
    assert not partitioned(pod(), node("True"), 0)
    assert not partitioned(pod(), None, 0)  # the node could not be read: no guess
