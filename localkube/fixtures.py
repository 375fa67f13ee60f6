"""pytest fixtures: one local cluster per test session, one fresh namespace per test.

`tests/kube/conftest.py` imports these. A fixture module imported by two conftests defines the
fixture twice (and would start two clusters), so a second suite that needs the cluster should
list `pytest_plugins = ["localkube.fixtures"]` in the root conftest instead, and the conftests
stop importing them.

Missing binaries fail the test with the command that builds them; they never skip it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from localkube.api import ApiClient
from localkube.build import find_binaries
from localkube.cluster import LocalCluster
from localkube.errors import ApiError, MissingBinariesError

__all__ = ["kube_admin", "kube_cluster", "kube_namespace", "kubeconfig"]


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running control plane with 3 Ready KWOK nodes, stopped when the session ends."""
    try:
        binaries = find_binaries()
    except MissingBinariesError as exc:
        pytest.fail(str(exc), pytrace=False)
    cluster = LocalCluster(tmp_path_factory.mktemp("localkube"), binaries=binaries)
    cluster.start()  # stops whatever it started if it fails
    try:
        yield cluster
    finally:
        # The logs stay in pytest's temporary directory (which keeps the last few runs).
        cluster.stop(remove_state=False)


@pytest.fixture(scope="session")
def kubeconfig(kube_cluster: LocalCluster) -> Path:
    """Path of the admin kubeconfig (group system:masters) for kubectl, Kopf or any client."""
    return kube_cluster.kubeconfig


@pytest.fixture
def kube_admin(kube_cluster: LocalCluster) -> ApiClient:
    """A REST client authenticated as the cluster admin."""
    return kube_cluster.admin_client()


@pytest.fixture
def kube_namespace(kube_admin: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (deletion is not awaited)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    kube_admin.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    try:
        yield name
    finally:
        try:
            kube_admin.delete(f"/api/v1/namespaces/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
