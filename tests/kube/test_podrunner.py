"""The pod runner plays the kubelet for KWOK pods: real `blueque worker` processes behind worker
pods, on a real control plane and a real Redis."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from blueque import Client, Queue
from devtools.localkube import ApiClient, ApiError, LocalCluster
from devtools.localkube.api import Json
from devtools.podrunner import FINALIZER, PodRunner, PodStatus, RunnerOptions
from devtools.processes import Process, pid_running, wait_until

pytestmark = pytest.mark.kube

QUEUE = "pods.work"
Env = list[Json]


def _worker_env(redis_url: str) -> Env:
    return [
        {"name": "BLUEQUE_REDIS_URL", "value": redis_url},
        {"name": "BLUEQUE_QUEUE", "value": QUEUE},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BLUEQUE_WORKER_ID", "value": "$(POD_NAME)"},
        # An idle worker notices SIGTERM within a claim: keep it short.
        {"name": "BLUEQUE_CLAIM_TIMEOUT_S", "value": "0.2"},
        {"name": "BLUEQUE_HEARTBEAT_INTERVAL_S", "value": "0.2"},
    ]


def _deployment(name: str, replicas: int, env: Env, grace_s: int = 30) -> Json:
    labels = {"app.kubernetes.io/name": "blueque-worker", "app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": grace_s,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.invalid/worker:1",
                            "args": ["--task", "worker_tasks:run"],
                            "env": env,
                        }
                    ],
                },
            },
        },
    }


def _live_pods(kube: ApiClient, ns: str, app: str) -> list[Json]:
    pods: list[Json] = kube.get(f"/api/v1/namespaces/{ns}/pods", {"labelSelector": f"app={app}"})[
        "items"
    ]
    return [p for p in pods if "deletionTimestamp" not in p["metadata"]]


def _start(kube: ApiClient, ns: str, runner: PodRunner, deployment: Json) -> list[str]:
    """Creates the Deployment; the names of its pods once each one's process runs."""
    kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment)
    app = deployment["metadata"]["name"]
    replicas = deployment["spec"]["replicas"]
    names = wait_until(
        lambda: (
            sorted(p["metadata"]["name"] for p in _live_pods(kube, ns, app))
            if len(_live_pods(kube, ns, app)) == replicas
            else None
        ),
        30,
        what=f"{replicas} pods of {app}",
    )
    for name in names:
        runner.wait_running(name)
    return names


def _registered(queue: Queue, ids: list[str]) -> None:
    wait_until(
        lambda: sorted(w.id for w in queue.workers()) == sorted(ids),
        15,
        what=lambda: f"workers {ids}; registered: {[w.id for w in queue.workers()]}",
    )


def _gone(kube: ApiClient, path: str) -> bool:
    try:
        kube.get(path)
    except ApiError as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_each_worker_pod_runs_a_worker_registered_under_its_name(
    kube_admin: ApiClient, kube_namespace: str, pod_runner: PodRunner, redis_url: str
) -> None:
    ns = kube_namespace
    names = _start(kube_admin, ns, pod_runner, _deployment("two", 2, _worker_env(redis_url)))

    with Client(redis_url) as client:
        queue = client.get_queue(QUEUE)
        _registered(queue, names)
        assert {w.pod for w in queue.workers()} == set(names)  # POD_NAME reached it too
        ids = queue.enqueue_many([{"echo": i} for i in range(6)])
        done = [client.get_task(task_id).wait(timeout=15) for task_id in ids]

    assert [t.status for t in done] == ["complete"] * 6
    assert [t.result for t in done] == list(range(6))
    assert {t.worker for t in done} <= set(names)
    for name in names:
        pod = kube_admin.get(f"/api/v1/namespaces/{ns}/pods/{name}")
        assert FINALIZER in pod["metadata"]["finalizers"]


def test_scale_down_lets_the_removed_workers_task_finish_before_its_pod_goes(
    kube_admin: ApiClient,
    kube_namespace: str,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    pods = f"/api/v1/namespaces/{ns}/pods"
    names = _start(kube_admin, ns, pod_runner, _deployment("down", 2, _worker_env(redis_url)))
    release = tmp_path / "release"
    with Client(redis_url) as client:
        queue = client.get_queue(QUEUE)
        _registered(queue, names)
        ids = queue.enqueue_many([{"hold": str(release)}] * 2)
        wait_until(
            lambda: all(client.get_task(i).status == "running" for i in ids), 15, what="2 busy"
        )
        listed = kube_admin.get(pods, {"labelSelector": "app=down"})

        kube_admin.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/down/scale", {"spec": {"replicas": 1}}
        )
        victim = wait_until(
            lambda: next(
                (
                    n
                    for n in names
                    if n not in {p["metadata"]["name"] for p in _live_pods(kube_admin, ns, "down")}
                ),
                None,
            ),
            15,
            what="the ReplicaSet to delete a pod",
        )
        wait_until(lambda: _state(pod_runner, victim) == "terminating", 5, what="SIGTERM")
        # Terminating, held by the finalizer, while its worker is still busy.
        held = kube_admin.get(f"{pods}/{victim}")
        (victims_task,) = [i for i in ids if client.get_task(i).worker == victim]
        assert "deletionTimestamp" in held["metadata"]
        assert FINALIZER in held["metadata"]["finalizers"]
        assert client.get_task(victims_task).status == "running"

        release.touch()
        deleted_seen_at = None
        for event in kube_admin.watch(
            pods,
            resource_version=listed["metadata"]["resourceVersion"],
            query={"labelSelector": "app=down"},
            timeout_s=20,
        ):
            if event["type"] == "DELETED" and event["object"]["metadata"]["name"] == victim:
                deleted_seen_at = time.monotonic()
                break
        finished = client.get_task(victims_task)

    assert deleted_seen_at is not None, "the victim pod never went"
    status = pod_runner.status(victim)
    assert status is not None
    assert status.exit_codes == (0,)  # it finished its task and exited on its own
    assert status.exited_at is not None and status.exited_at <= deleted_seen_at
    assert (finished.status, finished.result, finished.attempts) == ("complete", "released", 1)


def test_a_process_killed_from_outside_is_restarted_while_its_pod_lives(
    kube_admin: ApiClient, kube_namespace: str, pod_runner: PodRunner, redis_url: str
) -> None:
    ns = kube_namespace
    (name,) = _start(kube_admin, ns, pod_runner, _deployment("crash", 1, _worker_env(redis_url)))
    first = pod_runner.wait_running(name)
    assert first.pid is not None

    os.kill(first.pid, signal.SIGKILL)

    def restarted() -> PodStatus | None:
        s = pod_runner.status(name)
        return s if s is not None and s.state == "running" and s.restarts == 1 else None

    again = wait_until(restarted, 15, what=lambda: f"a restart: {pod_runner.status(name)}")

    assert again.pid != first.pid
    assert again.exit_codes == (-signal.SIGKILL,)
    pod = kube_admin.get(f"/api/v1/namespaces/{ns}/pods/{name}")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
    with Client(redis_url) as client:
        queue = client.get_queue(QUEUE)
        wait_until(
            lambda: [(w.id, w.pid) for w in queue.workers()] == [(name, again.pid)],
            15,
            what="the restarted worker registered",
        )


def test_kill_sigkills_a_busy_pod_at_once_and_releases_it(
    kube_admin: ApiClient,
    kube_namespace: str,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    path = f"/api/v1/namespaces/{ns}/pods"
    (name,) = _start(kube_admin, ns, pod_runner, _deployment("force", 1, _worker_env(redis_url)))
    with Client(redis_url) as client:
        task_id = client.get_queue(QUEUE).enqueue({"hold": str(tmp_path / "never")})
        child = _task_process(client, task_id)

        pod_runner.kill(name)  # a grace of 30 s: this returns long before it would end
        status = pod_runner.status(name)
        assert status is not None
        assert (status.state, status.exit_codes) == ("exited", (-signal.SIGKILL,))
        assert not pid_running(child)  # the whole container: the worker's task process too
        assert FINALIZER not in kube_admin.get(f"{path}/{name}")["metadata"].get("finalizers", [])

        kube_admin.request("DELETE", f"{path}/{name}", query={"gracePeriodSeconds": "0"})
        kube_admin.wait_for(
            f"/api/v1/namespaces/{ns}",
            lambda _: _gone(kube_admin, f"{path}/{name}"),
            what="the killed pod gone",
        )
        # Nobody finished the task: it waits in the dead worker's list for the reaper.
        assert client.get_task(task_id).status == "running"
    final = pod_runner.status(name)
    assert final is not None and final.restarts == 0 and final.exit_codes == (-signal.SIGKILL,)


def test_a_secret_key_ref_resolves_once_the_secret_exists(
    kube_admin: ApiClient, kube_namespace: str, pod_runner: PodRunner, redis_url: str
) -> None:
    ns = kube_namespace
    env = [
        {
            "name": "BLUEQUE_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}},
        },
        *_worker_env(redis_url)[1:],
    ]
    kube_admin.create(f"/apis/apps/v1/namespaces/{ns}/deployments", _deployment("sec", 1, env))
    (name,) = wait_until(
        lambda: [p["metadata"]["name"] for p in _live_pods(kube_admin, ns, "sec")], 30, what="pod"
    )

    def config_error() -> PodStatus | None:
        s = pod_runner.status(name)
        return s if s is not None and s.last_error else None

    waiting = wait_until(
        config_error, 15, what=lambda: f"a config error: {pod_runner.status(name)}"
    )
    assert (waiting.state, waiting.pid) == ("waiting", None)
    assert waiting.last_error == 'Error: secret "redis" not found'
    events = kube_admin.get(
        f"/api/v1/namespaces/{ns}/events", {"fieldSelector": f"involvedObject.name={name}"}
    )["items"]
    assert ("Failed", 'Error: secret "redis" not found') in {
        (e["reason"], e["message"]) for e in events
    }

    kube_admin.create(
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "redis"},
            "stringData": {"url": redis_url},
        },
    )
    pod_runner.wait_running(name)
    with Client(redis_url) as client:
        _registered(client.get_queue(QUEUE), [name])  # it reached Redis through the Secret


def test_deletion_waits_for_the_pods_own_grace_period_then_sigkills(
    kube_admin: ApiClient, kube_namespace: str, pod_runner: PodRunner
) -> None:
    """KWOK deletes with grace 0 at once: the grace comes from the pod's spec."""
    ns = kube_namespace
    path = f"/api/v1/namespaces/{ns}/pods"
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring SIGTERM', flush=True); time.sleep(60)"
    )
    kube_admin.create(
        path,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "stubborn",
                "labels": {"app.kubernetes.io/name": "blueque-worker"},
            },
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "worker", "image": "x", "command": ["python", "-c", stubborn]}
                ],
            },
        },
    )
    pod_runner.wait_running("stubborn")
    wait_until(
        lambda: "ignoring SIGTERM" in pod_runner.tail("stubborn").splitlines(),
        10,
        what="its handler",
    )

    deleted_at = time.monotonic()
    kube_admin.delete(f"{path}/stubborn")
    kube_admin.wait_for(
        f"/api/v1/namespaces/{ns}",
        lambda _: _gone(kube_admin, f"{path}/stubborn"),
        what="the pod gone",
    )

    status = pod_runner.status("stubborn")
    assert status is not None and status.exited_at is not None
    assert status.exit_codes == (-signal.SIGKILL,)
    assert status.exited_at - deleted_at >= 1.0  # not before its grace period


def test_closing_the_runner_stops_every_process_and_releases_its_pods(
    kube_admin: ApiClient, kube_namespace: str, redis_url: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    options = RunnerOptions(
        log_dir=tmp_path / "pods",
        namespaces=(ns,),
        cwd=Path(__file__).parent,
        close_grace_s=0.5,
    )
    runner = PodRunner(kube_admin, options).start()
    try:
        names = _start(kube_admin, ns, runner, _deployment("closing", 2, _worker_env(redis_url)))
        with Client(redis_url) as client:
            ids = client.get_queue(QUEUE).enqueue_many([{"hold": str(tmp_path / "never")}] * 2)
            children = [_task_process(client, i) for i in ids]
    finally:
        runner.close()

    pids = [p.pid for p in runner.processes()] + children
    assert len(pids) == 4
    assert [pid for pid in pids if pid_running(pid)] == []
    # Its watches were closed, not left to the server's timeout: no thread of it remains.
    assert [t.name for t in threading.enumerate() if t.name.startswith("pod-runner")] == []
    for name in names:
        pod = kube_admin.get(f"/api/v1/namespaces/{ns}/pods/{name}")
        assert FINALIZER not in pod["metadata"].get("finalizers", [])


def test_the_runner_as_its_own_process_stops_cleanly_on_sigterm(
    kube_cluster: LocalCluster,
    kube_admin: ApiClient,
    kube_namespace: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """`python -m devtools.podrunner`, as the demo runs it."""
    ns = kube_namespace
    argv = [sys.executable, "-m", "devtools.podrunner", "--state-dir", str(kube_cluster.state_dir)]
    argv += ["-n", ns, "--cwd", str(Path(__file__).parent), "--log-dir", str(tmp_path / "pods")]
    runner = Process.start("podrunner", argv, log_file=tmp_path / "podrunner.log")
    try:
        kube_admin.create(
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            _deployment("cli", 1, _worker_env(redis_url)),
        )
        with Client(redis_url) as client:
            queue = client.get_queue(QUEUE)
            (worker,) = wait_until(
                queue.workers, 30, what=lambda: f"a worker; runner log:\n{runner.tail()}"
            )
        assert worker.pid is not None and worker.pod is not None

        assert runner.stop(grace_s=10) == 0
    finally:
        runner.kill()
    assert not pid_running(worker.pid)
    pod = kube_admin.get(f"/api/v1/namespaces/{ns}/pods/{worker.pod}")
    assert FINALIZER not in pod["metadata"].get("finalizers", [])


def _state(runner: PodRunner, name: str) -> str | None:
    status: PodStatus | None = runner.status(name)
    return None if status is None else status.state


def _task_process(client: Client, task_id: str) -> int:
    """The pid of the process running a "hold" task (a child of its worker's), once it runs."""
    task = wait_until(
        lambda: (t := client.get_task(task_id)).status == "running" and t.progress and t,
        15,
        what="the task running",
    )
    pid: int = task.progress["pid"]
    return pid


def test_with_service_account_tokens_a_process_acts_as_its_pods_service_account(
    kube_admin: ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    """The credentials a kubelet mounts, as a kubeconfig: the process is the pod's
    ServiceAccount (RBAC and all), by a token bound to the pod."""
    ns = kube_namespace
    kube_admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
    )
    # Prints who it is to the API server, then the token, and waits to be stopped.
    whoami = (
        "import json, os, subprocess, time; "
        "print(subprocess.run(['kubectl', 'auth', 'whoami', '-o', "
        "'jsonpath={.status.userInfo.username}'], capture_output=True, text=True).stdout); "
        "config = json.load(open(os.environ['KUBECONFIG'])); "
        "print('token', config['users'][0]['user']['token'], flush=True); time.sleep(60)"
    )

    def pod(name: str, **spec: object) -> Json:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "api-client"}},
            "spec": {
                **spec,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "x", "command": ["python", "-c", whoami]}],
            },
        }

    path = f"/api/v1/namespaces/{ns}/pods"
    kube_admin.create(path, pod("robot", serviceAccountName="robot"))
    kube_admin.create(path, pod("no-token", automountServiceAccountToken=False))
    options = RunnerOptions(
        log_dir=tmp_path / "pods",
        namespaces=(ns,),
        label_selector="app=api-client",
        service_account_tokens=True,
    )
    with PodRunner(kube_admin, options) as runner:

        def output(pod: str, mark: str) -> str:
            def marked() -> str | None:
                text = runner.tail(pod)
                return text if mark in text else None

            return wait_until(marked, 30, what=lambda: f"{mark!r} from {pod}: {runner.tail(pod)}")

        out = output("robot", "token ")
        assert f"system:serviceaccount:{ns}:robot" in out.splitlines()
        token = next(line for line in out.splitlines() if line.startswith("token "))[6:]
        as_robot = kube_admin.with_token(token)
        with pytest.raises(ApiError) as forbidden:  # no RBAC granted: it is nobody special
            as_robot.get(path)
        assert forbidden.value.status == 403
        # Bound to the pod, as a projected token: the API server says so in its review.
        review = kube_admin.create(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )["status"]
        assert review["authenticated"] is True
        assert review["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["robot"]

        assert "KeyError: 'KUBECONFIG'" in output("no-token", "Error")
