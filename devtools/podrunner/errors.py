"""Errors of the pod runner."""

from __future__ import annotations

from devtools.errors import DevtoolsError

__all__ = ["ContainerConfigError", "PodRunnerError", "UnknownPodError"]


class PodRunnerError(DevtoolsError):
    """Base of every error raised by the pod runner."""


class ContainerConfigError(PodRunnerError):
    """The container cannot start as specified (a missing Secret or key, a field the runner does
    not emulate); the kubelet's CreateContainerConfigError. The runner reports it and retries."""


class UnknownPodError(PodRunnerError, KeyError):
    """No pod of that name is known to the runner."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
