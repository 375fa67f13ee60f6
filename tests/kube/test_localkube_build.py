"""The build recipe's pure parts: staging modules read from go.mod, the wrapper module, names."""

from __future__ import annotations

from devtools.localkube.build import _default_binary_name, staging_modules, wrapper_go_mod
from devtools.localkube.versions import PINNED, Versions

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/apiserver v0.0.0
\tk8s.io/klog/v2 v2.140.0
\tk8s.io/kube-aggregator v0.0.0
)

require (
\tk8s.io/sample-cli-plugin v0.0.0 // indirect
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
)
"""


def test_staging_modules_are_the_v0_0_0_requirements() -> None:
    assert staging_modules(KUBERNETES_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/apiserver",
        "k8s.io/kube-aggregator",
    ]


def test_wrapper_replaces_staging_modules_with_the_published_version() -> None:
    go_mod = wrapper_go_mod(PINNED, ["k8s.io/api", "k8s.io/client-go"])
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in go_mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.36.3\n" in go_mod
    assert "\tk8s.io/kubernetes v1.36.3\n" in go_mod
    assert "tool go.etcd.io/etcd/server/v3\n" in go_mod


def test_versions_key_and_staging() -> None:
    versions = Versions(kubernetes="v1.37.2", etcd="v3.6.16", kwok="v0.8.0", helm="v4.3.1")
    assert versions.staging == "v0.37.2"
    assert versions.kubernetes_minor == "37"
    assert versions.key == "k8s-v1.37.2_etcd-v3.6.16_kwok-v0.8.0_helm-v4.3.1_r1"


def test_binary_names_follow_go_build() -> None:
    assert _default_binary_name("go.etcd.io/etcd/server/v3") == "server"
    assert _default_binary_name("helm.sh/helm/v4/cmd/helm") == "helm"
