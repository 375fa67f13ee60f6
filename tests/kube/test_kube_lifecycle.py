"""Starting and stopping a cluster leaves nothing behind, even when another process stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from localkube import LocalCluster
from localkube.processes import is_alive

pytestmark = pytest.mark.kube


def test_a_second_cluster_starts_beside_the_first_and_down_leaves_no_process(
    kube_cluster: LocalCluster, tmp_path: Path
) -> None:
    state_dir = tmp_path / "second"
    second = LocalCluster(state_dir, binaries=kube_cluster.binaries, node_count=1)
    second.start()
    try:
        components = second.state.components
        assert {c.name for c in components} == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        }
        assert all(is_alive(c) for c in components)
        assert second.state.apiserver_port != kube_cluster.state.apiserver_port
        assert second.admin_client().healthy()

        # `down` runs in another process: it only has state.json to go by.
        LocalCluster.attach(state_dir).stop()

        assert not any(is_alive(c) for c in components)
        assert not state_dir.exists()
        assert kube_cluster.admin_client().healthy(), "stopping one cluster hurt the other"
    finally:
        second.stop()
