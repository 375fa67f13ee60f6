"""Fixtures for the tests against the local control plane (see localkube/fixtures.py)."""

from localkube.fixtures import kube_admin, kube_cluster, kube_namespace, kubeconfig

__all__ = ["kube_admin", "kube_cluster", "kube_namespace", "kubeconfig"]
