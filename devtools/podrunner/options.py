"""The pod runner's settings: one typed object, every field defaulted and documented."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devtools.podrunner.container import DEFAULT_ENTRYPOINT

__all__ = ["FINALIZER", "WORKER_SELECTOR", "RunnerOptions"]

FINALIZER = "devtools.blueque.io/pod-runner"
"""Holds each pod it runs until the pod's process has exited."""

WORKER_SELECTOR = "app.kubernetes.io/name=blueque-worker"
"""The label every worker pod of the operator carries."""


@dataclass(frozen=True)
class RunnerOptions:
    log_dir: Path
    """One log file per pod, `<namespace>.<pod>.log`, appended to across restarts."""
    namespaces: tuple[str, ...] = ()
    """The namespaces to watch; empty: all of them."""
    label_selector: str = WORKER_SELECTOR
    """Which pods to run ("": every pod on a KWOK node)."""
    container: str | None = None
    """The container to run; default: the one named "worker", else the first. Only one runs."""
    cwd: Path | None = None
    """Working directory of every process (default: the runner's). A container's `workingDir`
    names a path in its image, so it is ignored; `blueque worker --task module:function` imports
    from here."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment the image would set (e.g. PYTHONPATH); the pod's own env goes over it."""
    entrypoint: tuple[str, ...] = DEFAULT_ENTRYPOINT
    """What runs when a container has no `command` (the worker image's entrypoint)."""
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    """Where a bare program name (`blueque`, `python`) is looked up first: the venv's scripts."""
    finalizer: str = FINALIZER
    restart_backoff_s: float = 0.5
    """Delay before the first restart of a process that exited; doubled on each restart..."""
    max_restart_backoff_s: float = 8.0
    """...up to this..."""
    backoff_reset_after_s: float = 10.0
    """...and back to the first delay for a process that ran at least this long."""
    config_retry_s: float = 1.0
    """Retry delay when a container cannot start (a missing Secret...)."""
    close_grace_s: float = 2.0
    """On close: SIGTERM to every process, SIGKILL to those still running after this."""
    report_restarts: bool = True
    """Patch the pod's containerStatuses (restartCount, lastState) on each restart."""
    events: bool = True
    """Record Events on the pod (Started, Killing, Failed), as the kubelet does."""
    service_account_tokens: bool = False
    """Give each process the credentials of its pod's ServiceAccount, as a kubeconfig in
    $KUBECONFIG (a token bound to the pod; `devtools.podrunner.credentials`), unless the pod
    sets `automountServiceAccountToken: false`. For pods that talk to the API server, such as
    the operator's; worker pods talk to Redis only."""
