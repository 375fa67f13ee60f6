"""A stand-in kubelet for the pods on KWOK nodes (work in progress: what a container runs)."""

from devtools.podrunner.container import DEFAULT_ENTRYPOINT
from devtools.podrunner.errors import ContainerConfigError, PodRunnerError, UnknownPodError

__all__ = ["DEFAULT_ENTRYPOINT", "ContainerConfigError", "PodRunnerError", "UnknownPodError"]
