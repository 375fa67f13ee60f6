"""The switches benchmarks use: an audit log counted per user, and a controller-manager restarted
with extra flags. Both on a cluster of the test's own (the shared one runs without an audit log)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localkube import LocalCluster
from devtools.localkube.api import Json

pytestmark = pytest.mark.kube

ADMIN = "localkube-admin"
DEPLOYMENT_CONTROLLER = "system:serviceaccount:kube-system:deployment-controller"


@pytest.fixture
def audited(kube_cluster: LocalCluster, tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        tmp_path / "audited", binaries=kube_cluster.binaries, node_count=1, audit_log=True
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _deployment(name: str) -> Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]},
            },
        },
    }


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_the_audit_log_counts_writes_per_user_between_two_offsets(
    audited: LocalCluster,
) -> None:
    admin = audited.admin_client()
    log = audited.audit_log()
    start = log.offset()
    cm = "/api/v1/namespaces/default/configmaps"
    admin.create(cm, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    admin.patch(f"{cm}/a", {"data": {"k": "v"}})
    admin.get(f"{cm}/a")
    # A question to the API server is created but never stored: not a write.
    admin.create(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}},
        },
    )
    end = log.offset()
    admin.delete(f"{cm}/a")  # after `end`: not counted

    mine = log.counts(start, end)[ADMIN]
    assert mine.writes == 2
    assert mine.writes_by_resource == {"configmaps": 2}
    assert mine.reads >= 2
    assert log.counts(start)[ADMIN].writes == 3


def test_the_controller_manager_restarts_with_extra_flags_and_works_on(
    audited: LocalCluster,
) -> None:
    flag = "--horizontal-pod-autoscaler-sync-period=1s"
    before = next(c for c in audited.state.components if c.name == "kube-controller-manager")
    assert flag not in _cmdline(before.pid)

    audited.restart_controller_manager([flag])

    after = next(c for c in audited.state.components if c.name == "kube-controller-manager")
    assert not before.alive() and after.alive()
    assert flag in _cmdline(after.pid)
    assert audited.state.controller_manager_flags == [flag]
    assert LocalCluster.attach(audited.state_dir).state.controller_manager_flags == [flag]

    # The restarted controllers act (a Deployment gets its ReplicaSet), each as its own
    # service account, which the audit log tells apart.
    admin = audited.admin_client()
    log = audited.audit_log()
    start = log.offset()
    admin.create("/apis/apps/v1/namespaces/default/deployments", _deployment("after-restart"))
    admin.wait_for(
        "/apis/apps/v1/namespaces/default/replicasets",
        lambda listed: bool(listed["items"]),
        timeout_s=30,
        what="a ReplicaSet from the restarted controller-manager",
    )
    counts = log.counts(start)
    assert counts[ADMIN].writes_by_resource["deployments"] == 1
    assert counts[DEPLOYMENT_CONTROLLER].writes_by_resource["replicasets"] == 1
