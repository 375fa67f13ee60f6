"""The pinned versions of every control-plane component, in one place.

All Go-built binaries come from one wrapper module, so their Kubernetes libraries must agree:
kubernetes 1.36.x is chosen because etcd 3.6.x, KWOK 0.8.0 and Helm 4.2.x all build against
the 0.36 staging modules, which lets one `go build` compile the shared packages once.
(kubernetes 1.37 pulls etcd 3.7 into the module graph, which would force a second module.)
kubectl 1.37 from PyPI is within the one-minor skew kubectl supports against a 1.36 server.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PINNED", "Versions"]


@dataclass(frozen=True)
class Versions:
    """Module versions of one build; `key` names its cache directory."""

    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    #: Bumped when the build recipe (flags, binary set) changes, so old caches are not reused.
    recipe: int = 1

    @property
    def key(self) -> str:
        return (
            f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}"
            f"_helm-{self.helm}_r{self.recipe}"
        )

    @property
    def staging(self) -> str:
        """The version the published staging modules (k8s.io/api, ...) carry: v1.36.3 -> v0.36.3."""
        major_minor_patch = self.kubernetes.removeprefix("v").split(".")
        return f"v0.{major_minor_patch[1]}.{major_minor_patch[2]}"

    @property
    def kubernetes_minor(self) -> str:
        return self.kubernetes.removeprefix("v").split(".")[1]


PINNED = Versions(kubernetes="v1.36.3", etcd="v3.6.16", kwok="v0.8.0", helm="v4.2.4")
