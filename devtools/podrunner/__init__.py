"""A stand-in kubelet for the pods on KWOK nodes: it runs each worker pod as a host process.

KWOK fakes the nodes' kubelets but runs no containers, so a test, the e2e test or the demo that
wants real workers behind its worker pods starts a `PodRunner` (in a thread of its own process,
or as `python -m devtools.podrunner`). For every pod that matches its label selector and is
Running on a KWOK node, it:

- adds a finalizer of its own (`devtools.blueque.io/pod-runner`), then runs the pod's worker
  container's `command` + `args` (`blueque worker` when it has none, the worker image's
  entrypoint; a bare program name is taken from the venv the runner runs in) as a host process,
  in a configurable working directory, with the container's environment: `env` (with `$(VAR)`
  references), `envFrom`, `valueFrom.fieldRef`, `secretKeyRef` and `configMapKeyRef` read through
  the API (a missing one is a `Failed` Event on the pod, and a retry every second);
- restarts a process that exits while its pod lives, per `restartPolicy`, with a doubling
  back-off, counting restarts (`PodStatus.restarts`, and the pod's `restartCount`);
- on deletion sends SIGTERM, then SIGKILL after the pod's `terminationGracePeriodSeconds`
  (never the deletion's grace: KWOK deletes with grace 0 at once), and removes its finalizer
  once the process has exited, so the pod object disappears only after its process: a watch's
  DELETED event means "the process is gone", as the operator's reaper assumes;
- with `service_account_tokens`, hands each process its pod's ServiceAccount as the kubelet
  would mount it, a token bound to the pod, in a kubeconfig named by $KUBECONFIG
  (`devtools.podrunner.credentials`): how the operator's own pod runs with the chart's RBAC;
- `kill(pod)` SIGKILLs at once and releases the finalizer: how a test that force-deletes a pod
  says so (KWOK's own delete has grace 0, so the pod object cannot tell);
- on `close()` stops every process it started, by pid, and removes its finalizers.

Each pod's processes write to one log file (`PodRunner.tail`). SIGTERM goes to the main process
only, as a kubelet sends it to PID 1; SIGKILL and the main process's end kill the whole session,
as the end of a container does.

Not emulated: probes (pods are Ready as KWOK sets them), resources and limits (no cgroup; a
`resourceFieldRef` is an error), volumes and mounts, init and sidecar containers (only one
container runs), `workingDir`, security contexts, service links, and the image: whatever image
the pod names, the host's venv runs.
"""

from devtools.podrunner.container import DEFAULT_ENTRYPOINT
from devtools.podrunner.errors import ContainerConfigError, PodRunnerError, UnknownPodError
from devtools.podrunner.options import FINALIZER, WORKER_SELECTOR, RunnerOptions
from devtools.podrunner.runner import PodRunner, PodState, PodStatus

__all__ = [
    "DEFAULT_ENTRYPOINT",
    "FINALIZER",
    "WORKER_SELECTOR",
    "ContainerConfigError",
    "PodRunner",
    "PodRunnerError",
    "PodState",
    "PodStatus",
    "RunnerOptions",
    "UnknownPodError",
]
