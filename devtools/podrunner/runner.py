"""`PodRunner`: plays the kubelet for the pods on KWOK nodes, with host processes.

Two kinds of threads. The watch threads (`devtools.podrunner.watching`) queue what they see of
the pods that match the label selector. One reconciler thread owns all the state:
it applies those events, polls its processes (every 50 ms: no event tells a child's exit), and
moves each pod along

    waiting -> running -> (exited -> waiting, with a back-off) ... -> terminating -> exited

calling the API itself (finalizers, Secrets, Events, status). Every process is started from that
thread, which lives until `close()`, so the processes' death signal (PR_SET_PDEATHSIG, see
`devtools.processes`) fires only if the whole test process dies. `kill()` is a request to that
thread, answered once done.

A pod's "container" is the session of its main process: SIGTERM goes to the main process alone,
as the kubelet sends it to PID 1; SIGKILL, and the main process's end, kill every process of the
session, as the end of a container does (`devtools.podrunner.sessions`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from devtools.errors import ProcessError
from devtools.localkube.api import PATCH_MERGE, PATCH_STRATEGIC, ApiClient, Json
from devtools.localkube.cluster import KWOK_NODE_ANNOTATION
from devtools.localkube.errors import ApiError
from devtools.podrunner import credentials, reporting
from devtools.podrunner.container import container_argv, container_env, select_container
from devtools.podrunner.errors import ContainerConfigError, PodRunnerError, UnknownPodError
from devtools.podrunner.options import RunnerOptions
from devtools.podrunner.sessions import kill_session
from devtools.podrunner.watching import Listed, PodWatch
from devtools.processes import Process, wait_until

__all__ = ["PodRunner", "PodState", "PodStatus"]

log = logging.getLogger("devtools.podrunner")

PodState = Literal["waiting", "running", "terminating", "exited"]

_TICK_S = 0.05
_IDLE_TICK_S = 0.5
_DEFAULT_GRACE_S = 30
_HOST_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class PodStatus:
    """What the runner knows of one pod, as of its last pass."""

    namespace: str
    name: str
    uid: str
    state: PodState
    """waiting (to start, or to restart after a back-off), running, terminating (SIGTERM sent),
    exited (for good: deleted, killed, or done under restartPolicy Never/OnFailure)."""
    pid: int | None
    """The current process, or the last one."""
    restarts: int
    exit_codes: tuple[int, ...]
    """Of every process that ended, in order; -N means killed by signal N."""
    exited_at: float | None
    """time.monotonic() when the last process ended."""
    last_error: str | None
    """Why it could not start (a missing Secret...), until it starts."""
    has_finalizer: bool
    gone: bool
    """The pod object no longer exists."""
    log_file: Path


@dataclass
class _Pod:
    uid: str
    obj: Json
    log_file: Path
    process: Process | None = None
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    started_at: float = 0.0
    exited_at: float | None = None
    next_start_at: float = 0.0
    backoff_s: float = 0.0
    term_deadline: float | None = None
    has_finalizer: bool = False
    killed: bool = False
    done: bool = False
    gone: bool = False
    last_error: str | None = None
    reported: set[str] = field(default_factory=set)
    retry_api_at: float = 0.0
    restart_planned: bool = False

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(frozen=True)
class _Kill:
    namespace: str | None
    name: str
    done: Future[None]


class PodRunner:
    """Runs the worker container of every matching Running pod as a host process; see the package
    docstring. Use as a context manager, or `start()` and `close()`."""

    def __init__(self, api: ApiClient, options: RunnerOptions) -> None:
        self.api = api
        self.options = options
        self._inbox: queue.Queue[Json | Listed | _Kill] = queue.Queue()
        self._watch = PodWatch(api, options.namespaces, options.label_selector, self._inbox.put)
        self._stopping = threading.Event()
        self._pods: dict[str, _Pod] = {}
        self._statuses: dict[tuple[str, str], PodStatus] = {}
        self._history: dict[tuple[str, str], PodStatus] = {}
        self._processes: list[Process] = []
        self._reconciler: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._kwok_nodes: dict[str, bool] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> PodRunner:
        if self._reconciler is not None:
            raise PodRunnerError("the pod runner is already started")
        self.options.log_dir.mkdir(parents=True, exist_ok=True)
        self._reconciler = threading.Thread(
            target=self._reconcile_forever, name="pod-runner", daemon=True
        )
        self._reconciler.start()
        self._watch.start()
        return self

    def close(self) -> None:
        """Stops every process it started (SIGTERM, SIGKILL after `close_grace_s`), removes its
        finalizers, and ends its threads. PodRunnerError if the reconciler had crashed."""
        self._stopping.set()
        self._watch.close()
        if self._reconciler is not None:
            self._reconciler.join()
        if self._failure is not None:
            raise PodRunnerError(f"the pod runner failed: {self._failure!r}") from self._failure

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing ----------------------------------------------------------------------------

    def statuses(self) -> list[PodStatus]:
        """Every pod seen, including those gone, as of the reconciler's last pass."""
        self._check()
        return list(self._statuses.values())

    def status(self, pod: str, namespace: str | None = None) -> PodStatus | None:
        self._check()
        return self._statuses.get((self._namespace(namespace), pod))

    def processes(self) -> list[Process]:
        """Every process it started, running or not, in order."""
        return list(self._processes)

    def tail(self, pod: str, namespace: str | None = None, lines: int = 30) -> str:
        """The end of the pod's log (all its processes, each start marked)."""
        status = self.status(pod, namespace)
        if status is None:
            return "(unknown pod)"
        try:
            text = status.log_file.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def wait_running(
        self, pod: str, namespace: str | None = None, timeout_s: float = 30.0
    ) -> PodStatus:
        """The pod's status once its process runs; WaitTimeoutError with its log tail."""

        def running() -> PodStatus | None:
            status = self.status(pod, namespace)
            return status if status is not None and status.state == "running" else None

        return wait_until(
            running,
            timeout_s,
            what=lambda: (
                f"pod {pod} running: {self.status(pod, namespace)}\n{self.tail(pod, namespace)}"
            ),
        )

    # -- acting -------------------------------------------------------------------------------

    def kill(self, pod: str, namespace: str | None = None, *, timeout_s: float = 15.0) -> None:
        """SIGKILL the pod's process at once (a force delete: the pod object cannot say so),
        never start it again, and release the finalizer; returns once done. UnknownPodError
        when the runner has not seen the pod."""
        self._check()
        if self._stopping.is_set() or self._reconciler is None:
            raise PodRunnerError("the pod runner is not running")
        done: Future[None] = Future()
        self._inbox.put(_Kill(namespace, pod, done))
        done.result(timeout_s)

    # -- internals: the reconciler -------------------------------------------------------------

    def _check(self) -> None:
        if self._failure is not None:
            raise PodRunnerError(f"the pod runner failed: {self._failure!r}") from self._failure

    def _namespace(self, namespace: str | None) -> str:
        if namespace is not None:
            return namespace
        if len(self.options.namespaces) == 1:
            return self.options.namespaces[0]
        raise PodRunnerError("say which namespace: the runner watches more than one")

    def _reconcile_forever(self) -> None:
        try:
            while not self._stopping.is_set():
                self._receive(_TICK_S if self._pods else _IDLE_TICK_S)
                now = time.monotonic()
                for pod in list(self._pods.values()):
                    self._step(pod, now)
                self._publish()
        except BaseException as exc:
            log.exception("pod runner: the reconciler failed")
            self._failure = exc
        finally:
            try:
                self._shutdown()
            except BaseException as exc:
                log.exception("pod runner: stopping failed")
                self._failure = self._failure or exc
            self._publish()

    def _receive(self, timeout_s: float) -> None:
        try:
            item = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return
        while True:
            self._apply(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _apply(self, item: Json | Listed | _Kill) -> None:
        if isinstance(item, _Kill):
            self._kill(item)
        elif isinstance(item, Listed):
            seen = {obj["metadata"]["uid"] for obj in item.items}
            for pod in self._pods.values():
                if item.namespace in (None, pod.namespace) and pod.uid not in seen:
                    pod.gone = True  # deleted while no watch was open
            for obj in item.items:
                self._upsert(obj)
        elif item["type"] in ("ADDED", "MODIFIED"):
            self._upsert(item["object"])
        elif item["type"] == "DELETED":
            deleted = self._pods.get(item["object"]["metadata"]["uid"])
            if deleted is not None:
                deleted.obj = item["object"]
                deleted.gone = True

    def _upsert(self, obj: Json) -> None:
        uid = obj["metadata"]["uid"]
        pod = self._pods.get(uid)
        if pod is None:
            meta = obj["metadata"]
            log_file = self.options.log_dir / f"{meta['namespace']}.{meta['name']}.log"
            pod = self._pods[uid] = _Pod(uid, obj, log_file)
        elif _version(obj) < _version(pod.obj):
            return  # a patch's answer was newer than this queued event
        pod.obj = obj
        pod.has_finalizer = self.options.finalizer in (obj["metadata"].get("finalizers") or [])

    def _step(self, pod: _Pod, now: float) -> None:
        if pod.process is not None and pod.exited_at is None and not pod.running():
            self._record_exit(pod)
        if pod.gone:
            if pod.running():
                log.warning("pod %s/%s is gone while its process ran: SIGKILL", *_key(pod))
                self._kill_container(pod)
            if pod.has_finalizer:  # "gone" from the selector only: it was relabelled
                self._release_finalizer(pod, now)
            self._history[_key(pod)] = _status_of(pod)
            del self._pods[pod.uid]
            return
        if self._stopping_pod(pod):
            self._stop(pod, now)
            return
        if pod.done or now < pod.retry_api_at or not self._runnable(pod):
            return
        if not pod.has_finalizer and not self._add_finalizer(pod, now):
            return
        if pod.running():
            return
        if pod.exited_at is not None and not pod.restart_planned:
            self._after_exit(pod)
        if not pod.done and now >= pod.next_start_at:
            self._start(pod, now)

    def _stopping_pod(self, pod: _Pod) -> bool:
        phase = (pod.obj.get("status") or {}).get("phase")
        return (
            pod.killed
            or "deletionTimestamp" in pod.obj["metadata"]
            or phase in ("Succeeded", "Failed")
        )

    def _runnable(self, pod: _Pod) -> bool:
        """Running, on a node KWOK plays (another node has a kubelet of its own)."""
        node = pod.obj["spec"].get("nodeName")
        if not node or (pod.obj.get("status") or {}).get("phase") != "Running":
            return False
        if node not in self._kwok_nodes:
            try:
                annotations = self.api.get(f"/api/v1/nodes/{node}")["metadata"].get(
                    "annotations", {}
                )
            except (ApiError, OSError) as exc:
                log.warning("pod runner: cannot read node %s: %s", node, exc)
                return False
            self._kwok_nodes[node] = annotations.get(KWOK_NODE_ANNOTATION) == "fake"
        return self._kwok_nodes[node]

    def _stop(self, pod: _Pod, now: float) -> None:
        """The pod is being deleted (or killed, or has ended): SIGTERM, SIGKILL after the pod's
        own grace period, then release the finalizer."""
        if pod.running():
            assert pod.process is not None
            if pod.killed:
                self._kill_container(pod)
            elif pod.term_deadline is None:
                grace_s = pod.obj["spec"].get("terminationGracePeriodSeconds", _DEFAULT_GRACE_S)
                self._event(pod, "Normal", "Killing", f"Stopping container {self._cname(pod)}")
                log.info("pod %s/%s: SIGTERM (grace %s s)", *_key(pod), grace_s)
                pod.process.signal(signal.SIGTERM)
                pod.term_deadline = now + float(grace_s)
                return
            elif now >= pod.term_deadline:
                log.info("pod %s/%s: grace period over, SIGKILL", *_key(pod))
                self._kill_container(pod)
            else:
                return
        if pod.process is not None and pod.exited_at is None:
            self._record_exit(pod)
        pod.done = True
        if pod.has_finalizer and now >= pod.retry_api_at:
            self._release_finalizer(pod, now)

    def _after_exit(self, pod: _Pod) -> None:
        """The process ended while its pod lives: restart it, or not, per restartPolicy."""
        code = pod.exit_codes[-1]
        policy = pod.obj["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            pod.done = True
            return
        assert pod.exited_at is not None
        ran_s = pod.exited_at - pod.started_at
        if pod.backoff_s == 0.0 or ran_s >= self.options.backoff_reset_after_s:
            pod.backoff_s = self.options.restart_backoff_s
        else:
            pod.backoff_s = min(2 * pod.backoff_s, self.options.max_restart_backoff_s)
        pod.next_start_at = pod.exited_at + pod.backoff_s
        pod.restart_planned = True
        log.info(
            "pod %s/%s: process exited with %s, restart in %.1f s",
            *_key(pod),
            code,
            pod.backoff_s,
        )

    def _start(self, pod: _Pod, now: float) -> None:
        try:
            container = select_container(pod.obj, self.options.container)
            env = container_env(pod.obj, container, self._read_object, self._base_env(pod))
            argv = container_argv(
                container, env, entrypoint=self.options.entrypoint, bin_dir=self.options.bin_dir
            )
            with pod.log_file.open("a") as out:
                out.write(f"--- pod-runner: start #{pod.starts + 1}: {' '.join(argv)}\n")
            process = Process.start(
                f"pod {pod.namespace}/{pod.name}",
                argv,
                log_file=pod.log_file,
                cwd=self.options.cwd,
                env=env,
            )
        except (ContainerConfigError, ProcessError, ApiError, OSError) as exc:
            message = f"Error: {exc}"
            pod.last_error = message
            pod.next_start_at = now + self.options.config_retry_s
            if message not in pod.reported:
                pod.reported.add(message)
                log.warning("pod %s/%s cannot start: %s", *_key(pod), exc)
                self._event(pod, "Warning", "Failed", message)
            return
        self._processes.append(process)
        pod.process = process
        pod.starts += 1
        pod.started_at = now
        pod.exited_at = None
        pod.restart_planned = False
        pod.last_error = None
        log.info("pod %s/%s: started pid %s: %s", *_key(pod), process.pid, " ".join(argv))
        self._event(pod, "Normal", "Started", f"Started container {container['name']}")
        if pod.starts > 1 and self.options.report_restarts:
            self._patch_restart_count(pod, container["name"])

    def _base_env(self, pod: _Pod) -> dict[str, str]:
        """What the image would set: PATH with the venv first, the host's locale and home,
        the runner's `env`, and with `service_account_tokens` the KUBECONFIG of the pod's
        ServiceAccount (what the kubelet mounts); the pod's own env goes over it."""
        env = {name: os.environ[name] for name in _HOST_ENV if name in os.environ}
        path = os.environ.get("PATH", os.defpath)
        env["PATH"] = f"{self.options.bin_dir}{os.pathsep}{path}"
        env["HOSTNAME"] = pod.name
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.options.env)
        if self.options.service_account_tokens and credentials.mounts_token(pod.obj):
            env["KUBECONFIG"] = str(self._write_kubeconfig(pod))
        return env

    def _write_kubeconfig(self, pod: _Pod) -> Path:
        """A fresh token of the pod's ServiceAccount, bound to the pod, in a kubeconfig next to
        its log (one per start: a restarted container gets a new token, as it would)."""
        account = credentials.service_account(pod.obj)
        answer = self.api.create(
            f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{account}/token",
            credentials.token_request(pod.obj),
        )
        server = f"https://{self.api.host}:{self.api.port}"
        config = credentials.kubeconfig(
            server, self.api.ca_file, answer["status"]["token"], pod.namespace
        )
        path = pod.log_file.with_suffix(".kubeconfig")
        path.touch(mode=0o600)
        path.write_text(json.dumps(config))
        return path

    def _read_object(self, kind: str, namespace: str, name: str) -> Json | None:
        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
        try:
            return self.api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _record_exit(self, pod: _Pod) -> None:
        assert pod.process is not None
        code = pod.process.poll()
        if code is None:
            return
        pod.exit_codes.append(code)
        pod.exited_at = time.monotonic()
        # The main process's end is the container's end: nothing of its session survives it.
        self._kill_container(pod)

    def _kill_container(self, pod: _Pod) -> None:
        assert pod.process is not None
        kill_session(pod.process)
        if pod.exited_at is None:
            self._record_exit(pod)

    def _kill(self, request: _Kill) -> None:
        try:
            namespace = self._namespace(request.namespace)
            pod = next(
                (
                    p
                    for p in self._pods.values()
                    if (p.namespace, p.name) == (namespace, request.name) and not p.gone
                ),
                None,
            )
            if pod is None:
                raise UnknownPodError(f"no pod {namespace}/{request.name} is known to the runner")
            log.info("pod %s/%s: killed on request (SIGKILL)", *_key(pod))
            pod.killed = True
            pod.retry_api_at = 0.0
            self._stop(pod, time.monotonic())
            if pod.has_finalizer:
                raise PodRunnerError(f"cannot release the finalizer of {namespace}/{request.name}")
        except BaseException as exc:
            request.done.set_exception(exc)
        else:
            request.done.set_result(None)

    def _shutdown(self) -> None:
        """On close: every process stopped, every finalizer of ours released, every kill
        request still queued answered."""
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._inbox.get_nowait()
                if isinstance(item, _Kill):
                    item.done.set_exception(PodRunnerError("the pod runner was closed"))
        running = [pod for pod in self._pods.values() if pod.running()]
        for pod in running:
            assert pod.process is not None
            pod.process.signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            wait_until(
                lambda: not any(pod.running() for pod in running),
                self.options.close_grace_s,
                interval_s=0.02,
            )
        errors: list[BaseException] = []
        for pod in self._pods.values():
            if pod.process is not None:
                try:
                    self._kill_container(pod)
                except Exception as exc:  # stop the others all the same
                    errors.append(exc)
        for pod in self._pods.values():
            if pod.has_finalizer and not pod.gone:
                self._release_finalizer(pod, time.monotonic())
        if errors:
            raise errors[0]

    # -- internals: API writes ---------------------------------------------------------------

    def _pod_path(self, pod: _Pod) -> str:
        return f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}"

    def _add_finalizer(self, pod: _Pod, now: float) -> bool:
        body = {"metadata": {"finalizers": [self.options.finalizer]}}
        return self._patch_pod(pod, body, now, "add the finalizer")

    def _release_finalizer(self, pod: _Pod, now: float) -> None:
        # Publish first: whoever sees the pod go (a watch's DELETED) must find its exit here.
        self._publish()
        body = {"metadata": {"$deleteFromPrimitiveList/finalizers": [self.options.finalizer]}}
        if self._patch_pod(pod, body, now, "release the finalizer"):
            log.info("pod %s/%s: finalizer released", *_key(pod))

    def _patch_pod(self, pod: _Pod, body: Json, now: float, what: str) -> bool:
        try:
            obj = self.api.patch(self._pod_path(pod), body, PATCH_STRATEGIC)
        except ApiError as exc:
            if exc.status == 404:
                pod.gone = True
                pod.has_finalizer = False
                return False
            log.warning("pod %s/%s: cannot %s: %s", *_key(pod), what, exc)
            pod.retry_api_at = now + 0.5
            return False
        except OSError as exc:
            log.warning("pod %s/%s: cannot %s: %s", *_key(pod), what, exc)
            pod.retry_api_at = now + 0.5
            return False
        self._upsert(obj)
        return True

    def _patch_restart_count(self, pod: _Pod, container: str) -> None:
        body = reporting.restart_status(pod.obj, container, pod.starts - 1, pod.exit_codes[-1])
        if body is None:
            return
        try:
            obj = self.api.patch(f"{self._pod_path(pod)}/status", body, PATCH_MERGE)
        except (ApiError, OSError) as exc:
            log.warning("pod %s/%s: cannot patch its restart count: %s", *_key(pod), exc)
            return
        self._upsert(obj)

    def _event(self, pod: _Pod, kind: str, reason: str, message: str) -> None:
        if not self.options.events:
            return
        body = reporting.event(pod.obj, self._cname(pod), kind, reason, message)
        try:
            self.api.create(f"/api/v1/namespaces/{pod.namespace}/events", body)
        except (ApiError, OSError) as exc:
            log.warning("pod %s/%s: cannot record an Event: %s", *_key(pod), exc)

    def _cname(self, pod: _Pod) -> str:
        try:
            return str(select_container(pod.obj, self.options.container)["name"])
        except ContainerConfigError:
            return self.options.container or "worker"

    # -- internals: publishing ----------------------------------------------------------------

    def _publish(self) -> None:
        statuses = dict(self._history)
        for pod in self._pods.values():
            statuses[pod.namespace, pod.name] = _status_of(pod)
        self._statuses = statuses  # one assignment: readers see a whole pass


def _status_of(pod: _Pod) -> PodStatus:
    state: PodState
    if pod.running():
        state = "terminating" if pod.term_deadline is not None else "running"
    elif pod.done or pod.gone:
        state = "exited"
    else:
        state = "waiting"
    return PodStatus(
        namespace=pod.namespace,
        name=pod.name,
        uid=pod.uid,
        state=state,
        pid=None if pod.process is None else pod.process.pid,
        restarts=max(0, pod.starts - 1),
        exit_codes=tuple(pod.exit_codes),
        exited_at=pod.exited_at,
        last_error=pod.last_error,
        has_finalizer=pod.has_finalizer,
        gone=pod.gone,
        log_file=pod.log_file,
    )


def _version(obj: Json) -> int:
    # Opaque by contract, but etcd revisions in practice: enough to drop a stale event.
    version = str(obj["metadata"].get("resourceVersion", ""))
    return int(version) if version.isdigit() else 0


def _key(pod: _Pod) -> tuple[str, str]:
    return pod.namespace, pod.name
