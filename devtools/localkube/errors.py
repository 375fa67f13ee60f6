"""Errors of the local control plane, one class per thing a caller may want to branch on."""

from __future__ import annotations

from devtools.errors import DevtoolsError

__all__ = ["ApiError", "BuildError", "ClusterError", "LocalKubeError", "MissingBinariesError"]


class LocalKubeError(DevtoolsError):
    """Base of every error raised by localkube."""


class MissingBinariesError(LocalKubeError):
    """The binaries are not built (or kubectl is not installed); the message says how to fix it."""


class BuildError(LocalKubeError):
    """A `go` command failed while building the binaries; the message carries its output."""


class ClusterError(LocalKubeError):
    """A component failed to start, exited, or did not become ready in time."""


class ApiError(LocalKubeError):
    """The API server answered a request with a non-2xx status."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:1000]}")
        self.status = status
        self.body = body
