"""LocalCluster's options for large fake fleets and for counting a client's API requests."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.localkube.cluster import LocalCluster, _node


def test_node_pod_capacity_is_the_kubelet_default_unless_raised(tmp_path: Path) -> None:
    assert LocalCluster(tmp_path).max_pods == 110
    node = _node("kwok-node-0", 600)
    assert node["status"]["capacity"]["pods"] == "600"
    assert node["status"]["allocatable"]["pods"] == "600"


def test_audit_log_flags_only_when_asked(tmp_path: Path) -> None:
    assert LocalCluster(tmp_path / "plain")._audit_argv() == []
    cluster = LocalCluster(tmp_path / "audited", audit=True)
    cluster.state_dir.mkdir(parents=True)
    argv = cluster._audit_argv()
    assert f"--audit-log-path={cluster.audit_log}" in argv
    policy_flag = next(a for a in argv if a.startswith("--audit-policy-file="))
    policy = json.loads(Path(policy_flag.split("=", 1)[1]).read_text())
    assert policy["rules"][0] == {"level": "None", "verbs": ["watch"]}
    assert policy["rules"][-1] == {"level": "Metadata"}
