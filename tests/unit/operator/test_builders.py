"""The worker Deployment built from a BlueQueue: metadata, selector, env, pod security, the
template form, and the patch that undoes hand edits without touching replicas."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from blueque import environment as env
from blueque_operator import SpecError, parse_bluequeue
from blueque_operator.builders import (
    TEMPLATE_HASH,
    build_deployment,
    reconcile_patch,
    selector_changed,
    template_hash,
)
from blueque_operator.spec import RESERVED_ENV, BlueQueueSpec

UID = "0d9c6e0a-1111-4c4c-8888-2f5a9a0e7c11"
NS = "media"


def bluequeue(name: str = "videos", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "redis": {"url": "redis://redis.default.svc:6379/0"},
        "worker": {"image": "example/videos:1.0"},
    }
    body.update(spec)
    return {"metadata": {"name": name, "uid": UID}, "spec": body}


def build(obj: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return build_deployment(parse_bluequeue(obj or bluequeue()), namespace=NS, uid=UID, **kwargs)


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def worker(deployment: dict[str, Any], index: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec(deployment)["containers"][index]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- metadata and selector ---------------------------------------------------------------------


def test_metadata_labels_and_owner() -> None:
    d = build()
    assert (d["apiVersion"], d["kind"]) == ("apps/v1", "Deployment")
    meta = d["metadata"]
    assert (meta["name"], meta["namespace"]) == ("videos-workers", NS)
    assert meta["labels"] == {
        "app.kubernetes.io/name": "blueque-worker",
        "app.kubernetes.io/instance": "videos",
        "app.kubernetes.io/managed-by": "blueque-operator",
        "blueque.io/bluequeue": "videos",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "blueque.io/v1alpha1",
            "kind": "BlueQueue",
            "name": "videos",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert d["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "blueque-worker",
            "blueque.io/bluequeue": "videos",
        }
    }
    # The pods carry every label, so the selector matches them.
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    assert d["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels == meta["labels"]


def test_a_name_too_long_for_a_label_is_refused() -> None:
    assert build(bluequeue("q" * 63))["metadata"]["name"] == "q" * 63 + "-workers"
    with pytest.raises(SpecError, match="at most 63"):
        build(bluequeue("q" * 64))


def test_rollout_strategy_keeps_capacity() -> None:
    assert build()["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }


def test_replicas_start_at_the_minimum_or_are_kept() -> None:
    assert build()["spec"]["replicas"] == 0
    assert build(bluequeue(scaling={"minReplicas": 2}))["spec"]["replicas"] == 2
    assert build(bluequeue(scaling={"minReplicas": 2}), replicas=7)["spec"]["replicas"] == 7
    # The template does not depend on replicas: no rollout from a scale.
    assert template_hash(build(replicas=7)) == template_hash(build())


# -- the short form ----------------------------------------------------------------------------


def test_short_form_container() -> None:
    d = build()
    assert len(pod_spec(d)["containers"]) == 1
    c = worker(d)
    assert (c["name"], c["image"], c["command"], c["args"]) == (
        "worker",
        "example/videos:1.0",
        ["blueque", "worker"],
        [],
    )
    assert c["resources"] == {}
    assert pod_spec(d)["terminationGracePeriodSeconds"] == 3600
    given = bluequeue(
        worker={
            "image": "example/videos:2.0",
            "command": ["python", "-m", "blueque", "worker"],
            "args": ["--task", "videos.tasks:transcode"],
            "resources": {"requests": {"cpu": "500m"}},
            "terminationGracePeriodSeconds": 60,
            "env": [{"name": "LOG", "value": "debug"}],
        }
    )
    c = worker(build(given))
    assert c["command"] == ["python", "-m", "blueque", "worker"]
    assert c["args"] == ["--task", "videos.tasks:transcode"]
    assert c["resources"] == {"requests": {"cpu": "500m"}}
    assert env_of(c)["LOG"] == "debug"
    assert pod_spec(build(given))["terminationGracePeriodSeconds"] == 60


# -- environment -------------------------------------------------------------------------------


def test_env_names_values_and_order() -> None:
    c = worker(
        build(bluequeue(worker={"image": "x", "env": [{"name": "A", "value": "$(POD_NAME)"}]}))
    )
    names = [e["name"] for e in c["env"]]
    assert names == [
        "POD_NAME",
        "POD_UID",
        "BLUEQUE_REDIS_URL",
        "BLUEQUE_NAMESPACE",
        "BLUEQUE_QUEUE",
        "BLUEQUE_WORKER_ID",
        "BLUEQUE_OWNER",
        "A",  # the user's last: theirs may refer to ours
    ]
    # $(POD_NAME) expands only when POD_NAME comes earlier in the list.
    assert names.index(env.POD_NAME_FALLBACK) < names.index(env.WORKER_ID)
    values = env_of(c)
    assert values[env.POD_NAME_FALLBACK] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert values[env.POD_UID_FALLBACK] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert values[env.WORKER_ID] == "$(POD_NAME)"
    assert values[env.REDIS_URL] == "redis://redis.default.svc:6379/0"
    assert values[env.QUEUE] == "videos"
    assert values[env.OWNER] == UID
    assert values[env.NAMESPACE] == "blueque"  # written even at its default
    assert env.REDIS_PASSWORD not in values


def test_env_queue_key_prefix_and_password_secret() -> None:
    c = worker(
        build(
            bluequeue(
                queue="transcode",
                redis={
                    "url": "rediss://redis.default.svc:6380/2",
                    "passwordSecretRef": {"name": "redis-auth", "key": "password"},
                    "keyPrefix": "media:prod",
                },
            )
        )
    )
    values = env_of(c)
    assert values[env.QUEUE] == "transcode"
    assert values[env.REDIS_URL] == "rediss://redis.default.svc:6380/2"
    assert values[env.NAMESPACE] == "media:prod"
    assert values[env.REDIS_PASSWORD] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}
    assert not any("value" in e and e["name"] == env.REDIS_PASSWORD for e in c["env"])


def test_the_operator_sets_exactly_the_reserved_names() -> None:
    spec = bluequeue(
        redis={"url": "redis://r:6379/0", "passwordSecretRef": {"name": "s", "key": "k"}}
    )
    # ... and the two the worker would read before the downward API's POD_NAME and POD_UID.
    shadowing = {"BLUEQUE_POD_NAME", "BLUEQUE_POD_UID"}
    assert {e["name"] for e in worker(build(spec))["env"]} == set(RESERVED_ENV) - shadowing


@pytest.mark.parametrize("name", RESERVED_ENV)
def test_a_user_set_reserved_variable_is_refused(name: str) -> None:
    # The parser refuses it; so does the builder, for a spec made some other way.
    with pytest.raises(SpecError, match=name):
        parse_bluequeue(bluequeue(worker={"image": "x", "env": [{"name": name, "value": "v"}]}))
    spec = parse_bluequeue(bluequeue())
    forged = dataclasses.replace(
        spec, worker=dataclasses.replace(spec.worker, env=({"name": name, "value": "v"},))
    )
    with pytest.raises(SpecError, match=f"spec.worker.env\\[0\\]: {name}"):
        build_deployment(forged, namespace=NS, uid=UID)
    template = {"spec": {"containers": [{"name": "worker", "image": "x", "env": [{"name": name}]}]}}
    forged = dataclasses.replace(
        spec, worker=dataclasses.replace(spec.worker, image=None, template=template)
    )
    with pytest.raises(SpecError, match=name):
        build_deployment(forged, namespace=NS, uid=UID)


# -- pod security ------------------------------------------------------------------------------


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """The restricted Pod Security Standard's checks that a pod spec alone decides (the
    baseline's and restricted's, per container, as the PodSecurity admission applies them)."""
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            found.append(flag)
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in spec.get("volumes") or ():
        if not set(volume) - {"name"} <= allowed_volumes:
            found.append(f"volume {volume['name']}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("pod seccomp Unconfined")
    containers = [*(spec.get("initContainers") or ()), *spec["containers"]]
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            found.append(f"{name}: capabilities not dropped")
        if set(caps.get("add") or ()) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities added")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccomp")
        if any(p.get("hostPort") for p in c.get("ports") or ()):
            found.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
    return found


def test_restricted_defaults_pass_the_standard() -> None:
    d = build()
    assert restricted_violations(pod_spec(d)) == []
    assert pod_spec(d)["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert worker(d)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "readOnlyRootFilesystem" not in worker(d)["securityContext"]
    # The checker is not vacuous: the same pod without the defaults fails it.
    bare = copy.deepcopy(pod_spec(d))
    del bare["securityContext"], bare["containers"][0]["securityContext"]
    assert len(restricted_violations(bare)) == 4


def test_template_containers_get_the_defaults_and_pass() -> None:
    template = {
        "spec": {
            "initContainers": [{"name": "fetch", "image": "busybox"}],
            "containers": [{"name": "proxy", "image": "p"}, {"name": "worker", "image": "w"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        }
    }
    spec = pod_spec(build(bluequeue(worker={"template": template})))
    assert restricted_violations(spec) == []
    assert all("securityContext" in c for c in spec["initContainers"] + spec["containers"])


def test_a_security_context_the_user_set_is_kept() -> None:
    pod_sc = {"runAsUser": 1000, "fsGroup": 2000}
    container_sc = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": True}
    template = {
        "spec": {
            "securityContext": pod_sc,
            "containers": [{"name": "worker", "image": "w", "securityContext": container_sc}],
        }
    }
    spec = pod_spec(build(bluequeue(worker={"template": template})))
    assert spec["securityContext"] == pod_sc
    assert spec["containers"][0]["securityContext"] == container_sc


# -- the template form -------------------------------------------------------------------------


def test_template_form() -> None:
    template = {
        "metadata": {
            "labels": {"team": "media", "app.kubernetes.io/name": "mine"},
            "annotations": {"note": "x"},
        },
        "spec": {
            "serviceAccountName": "videos",
            "terminationGracePeriodSeconds": 120,
            "containers": [
                {"name": "proxy", "image": "proxy:1", "env": [{"name": "P", "value": "1"}]},
                {
                    "name": "worker",
                    "image": "example/videos:3.0",
                    "args": ["--task", "t:f"],
                    "env": [{"name": "A", "value": "1"}],
                },
            ],
        },
    }
    original = copy.deepcopy(template)
    spec = parse_bluequeue(bluequeue(worker={"template": template}))
    d = build_deployment(spec, namespace=NS, uid=UID)
    assert template == original  # the spec's template is not mutated
    meta = d["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "media"
    assert meta["labels"]["app.kubernetes.io/name"] == "blueque-worker"  # the selector's wins
    assert meta["annotations"]["note"] == "x"
    ps = pod_spec(d)
    assert ps["serviceAccountName"] == "videos"
    assert ps["terminationGracePeriodSeconds"] == 120
    proxy, w = ps["containers"]
    assert proxy["env"] == [{"name": "P", "value": "1"}]  # not the worker: untouched
    assert [e["name"] for e in w["env"]][-1] == "A"
    assert env_of(w)[env.WORKER_ID] == "$(POD_NAME)"
    assert env_of(w)[env.OWNER] == UID
    assert (w["image"], w["args"], "command" in w) == (
        "example/videos:3.0",
        ["--task", "t:f"],
        False,
    )


def test_template_without_a_worker_container_configures_the_first() -> None:
    template = {
        "spec": {"containers": [{"name": "main", "image": "a"}, {"name": "b", "image": "b"}]}
    }
    ps = pod_spec(build(bluequeue(worker={"template": template})))
    assert env.WORKER_ID in env_of(ps["containers"][0])
    assert "env" not in ps["containers"][1]
    assert ps["terminationGracePeriodSeconds"] == 3600


# -- the template hash -------------------------------------------------------------------------


def test_template_hash_follows_the_template() -> None:
    d = build()
    assert template_hash(d) == template_hash(build())
    assert d["spec"]["template"]["metadata"]["annotations"][TEMPLATE_HASH]
    changed = build(bluequeue(worker={"image": "example/videos:1.1"}))
    assert template_hash(changed) != template_hash(d)
    pod_hash = changed["spec"]["template"]["metadata"]["annotations"][TEMPLATE_HASH]
    assert pod_hash != d["spec"]["template"]["metadata"]["annotations"][TEMPLATE_HASH]


# -- reconciling hand edits --------------------------------------------------------------------


def as_served(built: dict[str, Any], replicas: int = 5) -> dict[str, Any]:
    """The built Deployment as the API server returns it: defaults filled in, empty fields
    dropped, quantities normalised, status and a replicas count of the scaler's."""
    live = copy.deepcopy(built)
    live["metadata"].update(uid="d-1", resourceVersion="42", generation=3)
    live["spec"].update(replicas=replicas, revisionHistoryLimit=10, progressDeadlineSeconds=600)
    ps = live["spec"]["template"]["spec"]
    ps.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    for c in ps["containers"]:
        c.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
        if not c.get("args"):
            c.pop("args", None)
        for e in c["env"]:
            ref = (e.get("valueFrom") or {}).get("fieldRef")
            if ref is not None:
                ref["apiVersion"] = "v1"
        requests = (c.get("resources") or {}).get("requests") or {}
        if requests.get("cpu") == 0.5:
            requests["cpu"] = "500m"
    live["status"] = {"replicas": replicas}
    return live


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies `application/merge-patch+json`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def spec_with_cpu() -> BlueQueueSpec:
    return parse_bluequeue(
        bluequeue(worker={"image": "example/videos:1.0", "resources": {"requests": {"cpu": 0.5}}})
    )


def test_an_untouched_deployment_needs_no_patch() -> None:
    built = build_deployment(spec_with_cpu(), namespace=NS, uid=UID)
    assert reconcile_patch(built, as_served(built)) is None
    assert not selector_changed(built, as_served(built))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c, ps, live: c.update(image="evil:latest"), id="image"),
        pytest.param(lambda c, ps, live: c["env"].append({"name": "X", "value": "1"}), id="env+"),
        pytest.param(
            lambda c, ps, live: c["env"][2].update(value="redis://other:6379/0"), id="url"
        ),
        pytest.param(lambda c, ps, live: c["env"].pop(5), id="env-"),
        pytest.param(lambda c, ps, live: ps["containers"].append({"name": "s"}), id="container"),
        pytest.param(lambda c, ps, live: c["resources"]["requests"].update(cpu="2"), id="cpu"),
        pytest.param(lambda c, ps, live: c.pop("securityContext"), id="securityContext"),
        pytest.param(lambda c, ps, live: ps.update(terminationGracePeriodSeconds=1), id="grace"),
        pytest.param(
            lambda c, ps, live: live["spec"].update(strategy={"type": "Recreate"}), id="strategy"
        ),
        pytest.param(
            lambda c, ps, live: live["metadata"]["labels"].pop("blueque.io/bluequeue"), id="label"
        ),
    ],
)
def test_a_hand_edit_is_patched_back_but_replicas_are_not(edit: Any) -> None:
    built = build_deployment(spec_with_cpu(), namespace=NS, uid=UID)
    live = as_served(built, replicas=5)
    edit(live["spec"]["template"]["spec"]["containers"][0], live["spec"]["template"]["spec"], live)
    patch = reconcile_patch(built, live)
    assert patch is not None
    assert "replicas" not in patch["spec"] and "selector" not in patch["spec"]
    restored = merge_patch(live, patch)
    assert restored["spec"]["replicas"] == 5
    # Every field the builder sets is back (lists whole); the server's defaults may stay.
    built_pod, restored_pod = (
        built["spec"]["template"]["spec"],
        restored["spec"]["template"]["spec"],
    )
    assert {k: restored_pod[k] for k in built_pod} == built_pod
    assert restored["spec"]["template"]["metadata"] == built["spec"]["template"]["metadata"]
    assert restored["spec"]["strategy"] == built["spec"]["strategy"]
    assert restored["metadata"]["labels"] == built["metadata"]["labels"]
    # And once the server has it back, nothing more to do.
    assert reconcile_patch(built, as_served(merge_patch(built, patch), replicas=5)) is None


def test_a_spec_change_is_patched_by_the_hash_alone() -> None:
    old = build()
    new = build(bluequeue(worker={"image": "example/videos:2.0"}))
    patch = reconcile_patch(new, as_served(old, replicas=3))
    assert patch is not None
    assert patch["metadata"]["annotations"] == {TEMPLATE_HASH: template_hash(new)}
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "example/videos:2.0"
    assert merge_patch(as_served(old, replicas=3), patch)["spec"]["replicas"] == 3
    # A changed hash annotation alone (edited by hand) is also put back.
    live = as_served(new)
    live["metadata"]["annotations"][TEMPLATE_HASH] = "0"
    assert reconcile_patch(new, live) is not None


def test_a_changed_selector_needs_a_new_deployment() -> None:
    built = build()
    live = as_served(built)
    live["spec"]["selector"] = {"matchLabels": {"app": "x"}}
    assert selector_changed(built, live)


def test_a_spec_change_drops_what_the_spec_no_longer_has() -> None:
    def with_template(pod: dict[str, Any]) -> dict[str, Any]:
        containers = [{"name": "worker", "image": "example/videos:1.0"}]
        return build(bluequeue(worker={"template": {"spec": {"containers": containers, **pod}}}))

    old = with_template({"nodeSelector": {"gpu": "yes"}, "priorityClassName": "high"})
    new = with_template({"nodeSelector": {"zone": "a"}})
    live = as_served(old)
    patch = reconcile_patch(new, live)
    assert patch is not None
    restored = merge_patch(live, patch)
    pod = restored["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"zone": "a"}
    assert "priorityClassName" not in pod
    assert restored["spec"]["template"] == new["spec"]["template"]  # the server defaults again
    assert restored["spec"]["replicas"] == live["spec"]["replicas"]


def test_a_rollout_restart_is_not_undone() -> None:
    built = build()
    live = as_served(built)
    live["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = "now"
    assert reconcile_patch(built, live) is None
