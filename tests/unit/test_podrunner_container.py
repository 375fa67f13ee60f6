"""The pod runner's container env and argv, as the kubelet builds them (no cluster needed)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from devtools.podrunner import ContainerConfigError
from devtools.podrunner.container import (
    container_argv,
    container_env,
    expand,
    select_container,
)

Json = dict[str, Any]


def _pod(container: Json, **spec: Any) -> Json:
    return {
        "metadata": {
            "name": "videos-7d9-abcde",
            "namespace": "ns1",
            "uid": "1234-uid",
            "labels": {"app": "videos"},
            "annotations": {"note": "hello"},
        },
        "spec": {"nodeName": "kwok-node-1", "containers": [container], **spec},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
            "hostIP": "10.1.0.1",
        },
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS: dict[tuple[str, str], Json] = {
    ("Secret", "redis"): {"data": {"url": _b64("redis://127.0.0.1:7000/0"), "pw": _b64("s3cret")}},
    ("ConfigMap", "settings"): {
        "data": {"BLUEQUE_CLAIM_TIMEOUT_S": "0.2", "bad=key": "x"},
        "binaryData": {"blob": _b64("bytes")},
    },
}
reads: list[tuple[str, str, str]] = []


def read(kind: str, namespace: str, name: str) -> Json | None:
    reads.append((kind, namespace, name))
    return OBJECTS.get((kind, name))


def env_of(env: list[Json], env_from: list[Json] | None = None) -> dict[str, str]:
    container: Json = {"name": "worker", "env": env}
    if env_from is not None:
        container["envFrom"] = env_from
    return container_env(_pod(container), container, read)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "videos-7d9-abcde"),
        ("metadata.namespace", "ns1"),
        ("metadata.uid", "1234-uid"),
        ("metadata.labels['app']", "videos"),
        ("metadata.annotations['note']", "hello"),
        ("metadata.labels['missing']", ""),
        ("spec.nodeName", "kwok-node-1"),
        ("status.podIP", "10.0.0.7"),
        ("status.podIPs", "10.0.0.7,fd00::7"),
        ("status.hostIP", "10.1.0.1"),
    ],
)
def test_field_refs_resolve_from_the_pod(path: str, value: str) -> None:
    env = env_of([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}])
    assert env == {"X": value}


def test_secret_and_config_map_keys_are_decoded() -> None:
    env = env_of(
        [
            {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "pw"}}},
            {"name": "BLOB", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "blob"}}},
        ]
    )
    assert env == {"URL": "redis://127.0.0.1:7000/0", "PW": "s3cret", "BLOB": "bytes"}
    assert reads.count(("Secret", "ns1", "redis")) == 1  # read once per start, not per key


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"secretKeyRef": {"name": "nope", "key": "url"}}, 'secret "nope" not found'),
        (
            {"secretKeyRef": {"name": "redis", "key": "nope"}},
            "couldn't find key nope in Secret ns1/redis",
        ),
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
        ({"resourceFieldRef": {"resource": "limits.cpu"}}, "not emulated"),
        ({"fieldRef": {"fieldPath": "metadata.labels"}}, "not supported"),
    ],
)
def test_an_unresolvable_reference_is_a_config_error(ref: Json, message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        env_of([{"name": "X", "valueFrom": ref}])


def test_an_optional_missing_reference_leaves_the_variable_out() -> None:
    env = env_of(
        [
            {
                "name": "A",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
            {
                "name": "B",
                "valueFrom": {"secretKeyRef": {"name": "redis", "key": "k", "optional": True}},
            },
        ],
        [{"secretRef": {"name": "nope", "optional": True}}],
    )
    assert env == {}


def test_env_from_comes_first_with_its_prefix_and_env_overrides_it() -> None:
    env = env_of(
        [{"name": "CM_BLUEQUE_CLAIM_TIMEOUT_S", "value": "1"}],
        [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}, {"secretRef": {"name": "redis"}}],
    )
    # A key that cannot be a variable name is skipped, as the kubelet does.
    assert env == {
        "CM_BLUEQUE_CLAIM_TIMEOUT_S": "1",
        "CM_blob": "bytes",
        "url": "redis://127.0.0.1:7000/0",
        "pw": "s3cret",
    }


def test_values_expand_earlier_variables_only() -> None:
    env = env_of(
        [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "BLUEQUE_WORKER_ID", "value": "$(POD_NAME)"},
            {"name": "EARLY", "value": "$(LATE)"},
            {"name": "LATE", "value": "x"},
        ]
    )
    assert env["BLUEQUE_WORKER_ID"] == "videos-7d9-abcde"
    assert env["EARLY"] == "$(LATE)"


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)-$(B)", "1-2"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("cost $5 $", "cost $5 $"),
        ("$()", "$()"),
    ],
)
def test_expansion_follows_kubernetes(text: str, expanded: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expanded


def test_the_default_command_is_the_worker_entrypoint_from_the_venv(tmp_path: Path) -> None:
    (tmp_path / "blueque").write_text("#!/bin/sh\n")
    container = {"name": "worker", "args": ["--task", "$(TASK)"]}
    argv = container_argv(container, {"TASK": "m:f"}, bin_dir=tmp_path)
    assert argv == [str(tmp_path / "blueque"), "worker", "--task", "m:f"]


def test_a_command_replaces_the_entrypoint_and_is_found_on_path(tmp_path: Path) -> None:
    container = {"name": "worker", "command": ["sh", "-c"], "args": ["exit 3"]}
    argv = container_argv(container, {"PATH": "/usr/bin:/bin"}, bin_dir=tmp_path)
    assert argv[0].endswith("/sh") and argv[1:] == ["-c", "exit 3"]
    with pytest.raises(ContainerConfigError, match="executable file not found"):
        container_argv({"command": ["no-such-program"]}, {"PATH": "/bin"}, bin_dir=tmp_path)


def test_the_worker_container_is_chosen_among_several() -> None:
    pod = _pod({"name": "sidecar"})
    pod["spec"]["containers"].append({"name": "worker"})
    assert select_container(pod)["name"] == "worker"
    assert select_container(pod, "sidecar")["name"] == "sidecar"
    assert select_container(_pod({"name": "only"}))["name"] == "only"
    with pytest.raises(ContainerConfigError):
        select_container(pod, "other")
