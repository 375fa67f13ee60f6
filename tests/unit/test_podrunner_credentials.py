"""The pod runner's ServiceAccount credentials, as the kubelet would mount them (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devtools.podrunner.credentials import (
    kubeconfig,
    mounts_token,
    service_account,
    token_request,
)

Json = dict[str, Any]

POD: Json = {"metadata": {"name": "op-1", "namespace": "ops", "uid": "u-1"}, "spec": {}}


def test_the_token_is_for_the_pods_account_bound_to_the_pod() -> None:
    assert service_account(POD) == "default"
    assert service_account({**POD, "spec": {"serviceAccountName": "blueque"}}) == "blueque"
    request = token_request(POD, ttl_s=600)
    assert request["spec"] == {
        "expirationSeconds": 600,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "op-1", "uid": "u-1"},
    }


def test_only_a_pod_that_opts_out_gets_no_token() -> None:
    assert mounts_token(POD)
    assert mounts_token({**POD, "spec": {"automountServiceAccountToken": True}})
    assert not mounts_token({**POD, "spec": {"automountServiceAccountToken": False}})


def test_the_kubeconfig_names_server_ca_token_and_the_pods_namespace() -> None:
    config = kubeconfig("https://127.0.0.1:6443", Path("/pki/ca.crt"), "tok", "ops")
    (context,) = config["contexts"]
    assert config["current-context"] == context["name"]
    (cluster,) = config["clusters"]
    (user,) = config["users"]
    assert context["context"] == {
        "cluster": cluster["name"],
        "user": user["name"],
        "namespace": "ops",
    }
    assert cluster["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": "/pki/ca.crt",
    }
    assert user["user"] == {"token": "tok"}
