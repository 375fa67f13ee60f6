"""LocalCluster's option for large fleets of fake pods."""

from __future__ import annotations

from pathlib import Path

from devtools.localkube.cluster import LocalCluster, _node


def test_node_pod_capacity_is_the_kubelet_default_unless_raised(tmp_path: Path) -> None:
    assert LocalCluster(tmp_path).max_pods == 110
    node = _node("kwok-node-0", 600)
    assert node["status"]["capacity"]["pods"] == "600"
    assert node["status"]["allocatable"]["pods"] == "600"
