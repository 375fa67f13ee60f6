"""A real local Kubernetes control plane for tests and the demo, built from Go modules.

No container engine is needed: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
KWOK (fake kubelets) and Helm are compiled once from the Go module proxy into a cache outside
the repository (`devtools.localkube.build`) and run as plain loopback processes
(`devtools.localkube.cluster`, through `devtools.processes`). Not part of the blueque wheel: it
is test and demo tooling.
"""

from devtools.localkube.api import ApiClient
from devtools.localkube.audit import AuditCounts, AuditLog
from devtools.localkube.build import Binaries, build, find_binaries
from devtools.localkube.cluster import LocalCluster, default_state_dir
from devtools.localkube.errors import (
    ApiError,
    BuildError,
    ClusterError,
    LocalKubeError,
    MissingBinariesError,
)
from devtools.localkube.versions import PINNED, Versions

__all__ = [
    "PINNED",
    "ApiClient",
    "ApiError",
    "AuditCounts",
    "AuditLog",
    "Binaries",
    "BuildError",
    "ClusterError",
    "LocalCluster",
    "LocalKubeError",
    "MissingBinariesError",
    "Versions",
    "build",
    "default_state_dir",
    "find_binaries",
]
