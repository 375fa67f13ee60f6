"""Helm, built with the control plane, installs a chart and waits for it on this cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.localkube import ApiClient, LocalCluster

pytestmark = pytest.mark.kube


def test_helm_install_wait_sees_the_deployment_become_ready(
    kube_cluster: LocalCluster, kube_admin: ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "demo"
    kube_cluster.helm("create", str(chart))  # Helm's starter chart: a Deployment and a Service
    # A Helm v3 built with plain Go tools would judge this against Kubernetes 1.20 and refuse.
    with (chart / "Chart.yaml").open("a") as chart_yaml:
        chart_yaml.write('kubeVersion: ">=1.30.0-0"\n')
    kube_cluster.helm("template", "demo", str(chart))
    kube_cluster.helm(
        "install", "demo", str(chart), "--namespace", kube_namespace, "--wait", "--timeout", "60s"
    )

    deployment = kube_admin.get(f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/demo")
    assert deployment["status"]["availableReplicas"] == 1
    releases = kube_cluster.helm("list", "--namespace", kube_namespace, "--short")
    assert releases.split() == ["demo"]
