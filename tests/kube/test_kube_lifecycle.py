"""Starting and stopping a cluster leaves nothing behind, even when another process stops it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import devtools.localkube.cluster
import devtools.processes
from devtools.localkube import LocalCluster

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
        assert all(c.alive() for c in components)
        assert second.state.apiserver_port != kube_cluster.state.apiserver_port
        assert second.admin_client().healthy()

        # `down` runs in another process: it only has state.json to go by.
        LocalCluster.attach(state_dir).stop()

        assert not any(c.alive() for c in components)
        assert not state_dir.exists()
        assert kube_cluster.admin_client().healthy(), "stopping one cluster hurt the other"
    finally:
        second.stop()


def test_start_retries_on_new_ports_when_a_picked_port_is_taken(
    kube_cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken: int = squatter.getsockname()[1]
    handed_out: list[int] = []
    real_free_port = devtools.processes.free_port

    def first_one_taken() -> int:
        port = taken if not handed_out else real_free_port()
        handed_out.append(port)
        return port

    monkeypatch.setattr(devtools.localkube.cluster, "free_port", first_one_taken)
    cluster = LocalCluster(tmp_path / "retry", binaries=kube_cluster.binaries, node_count=1)
    try:
        with squatter:
            cluster.start()
        assert handed_out[0] == taken  # etcd's client port, on the first attempt
        assert cluster.state.etcd_port != taken
        assert cluster.admin_client().healthy()
    finally:
        cluster.stop()
