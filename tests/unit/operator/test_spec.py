"""Parsing a BlueQueue object into the typed spec: defaults, mapping, and refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from blueque import Client
from blueque.connection import connect
from blueque.errors import ConfigError
from blueque_operator import SpecError, parse_bluequeue
from blueque_operator.spec import (
    DEFAULT_COMMAND,
    DEFAULT_GRACE_PERIOD_S,
    REDIS_URL_SCHEMES,
    ScalingSpec,
    SecretKeyRef,
    TasksSpec,
    worker_container_index,
)


def bluequeue(name: str = "videos", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "redis": {"url": "redis://redis.default.svc:6379/0"},
        "worker": {"image": "example/videos:1.0"},
    }
    body.update(spec)
    return {
        "apiVersion": "blueque.io/v1alpha1",
        "kind": "BlueQueue",
        "metadata": {"name": name, "uid": "u-1"},
        "spec": body,
    }


def test_defaults() -> None:
    spec = parse_bluequeue(bluequeue())
    assert spec.name == spec.queue == "videos"
    assert spec.redis.url == "redis://redis.default.svc:6379/0"
    assert spec.redis.key_prefix == "blueque"
    assert spec.redis.password_secret_ref is None
    assert spec.worker.image == "example/videos:1.0"
    assert spec.worker.command == DEFAULT_COMMAND == ("blueque", "worker")
    assert spec.worker.termination_grace_period_s == DEFAULT_GRACE_PERIOD_S == 3600
    assert spec.worker.template is None
    assert spec.scaling == ScalingSpec(
        min_replicas=0,
        max_replicas=10,
        tasks_per_worker=1,
        scale_down_delay_s=30,
        poll_interval_s=1,
        paused=False,
    )
    assert spec.tasks.as_config() == {
        "max_attempts": 3,
        "keep_finished": 10000,
        "finished_ttl_s": 604800,
        "retry_max": 0,
        "retry_delay_s": 10,
        "retry_backoff": 2,
    }


def test_every_field_is_mapped() -> None:
    obj = bluequeue(
        queue="transcode.v2",
        redis={
            "url": "rediss://redis:6380/1",
            "passwordSecretRef": {"name": "redis-auth", "key": "password"},
            "keyPrefix": "media",
        },
        worker={
            "image": "example/videos:1.1",
            "command": ["python", "-m", "blueque", "worker"],
            "args": ["--task", "videos.tasks:transcode"],
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "resources": {"limits": {"cpu": "2"}},
            "terminationGracePeriodSeconds": 7200,
        },
        scaling={
            "minReplicas": 1,
            "maxReplicas": 4,
            "tasksPerWorker": 2,
            "scaleDownDelaySeconds": 1.5,
            "pollIntervalSeconds": 0.2,
            "paused": True,
        },
        tasks={
            "maxAttempts": 5,
            "keepFinished": 10,
            "finishedTtlSeconds": 60,
            "retryMax": 2,
            "retryDelaySeconds": 0.5,
            "retryBackoff": 3,
        },
    )
    spec = parse_bluequeue(obj)
    assert spec.queue == "transcode.v2"
    assert spec.redis.password_secret_ref == SecretKeyRef("redis-auth", "password")
    assert spec.redis.key_prefix == "media"
    assert spec.worker.command == ("python", "-m", "blueque", "worker")
    assert spec.worker.args == ("--task", "videos.tasks:transcode")
    assert spec.worker.env == ({"name": "LOG_LEVEL", "value": "debug"},)
    assert spec.worker.resources == {"limits": {"cpu": "2"}}
    assert spec.worker.termination_grace_period_s == 7200
    assert spec.scaling == ScalingSpec(1, 4, 2, 1.5, 0.2, True)
    assert spec.tasks.as_config() == {
        "max_attempts": 5,
        "keep_finished": 10,
        "finished_ttl_s": 60,
        "retry_max": 2,
        "retry_delay_s": 0.5,
        "retry_backoff": 3.0,
    }


def test_an_unset_task_field_resets_to_its_default() -> None:
    spec = parse_bluequeue(bluequeue(tasks={"maxAttempts": 7}))
    assert spec.tasks == TasksSpec(max_attempts=7)
    assert spec.tasks.as_config()["keep_finished"] == TasksSpec().keep_finished


def test_task_defaults_are_the_librarys(fake_client: Client) -> None:
    # A queue nobody configured reads the library's defaults; the CRD must write the same.
    library = fake_client.get_queue("never.configured").config().as_dict()
    assert TasksSpec().as_config() == library


def test_task_limits_are_the_librarys() -> None:
    # The lowest value each field accepts is the lowest the library's validation accepts.
    from dataclasses import fields

    from blueque.config import validate_settings

    for f in fields(TasksSpec):
        lowest = f.metadata["minimum"]
        validate_settings({f.name: lowest})
        below = lowest - 1 if isinstance(f.default, int) else lowest - 0.001
        with pytest.raises(ConfigError):
            validate_settings({f.name: below})
        with pytest.raises(SpecError, match=f"spec.tasks.{f.metadata['crd']}: must be >="):
            parse_bluequeue(bluequeue(tasks={f.metadata["crd"]: below}))


def test_a_template_instead_of_the_short_form() -> None:
    template: dict[str, Any] = {
        "metadata": {"labels": {"team": "media"}},
        "spec": {
            "terminationGracePeriodSeconds": 900,
            "containers": [
                {"name": "sidecar", "image": "proxy", "env": [{"name": "POD_NAME", "value": "x"}]},
                {"name": "worker", "image": "example/videos:2", "args": ["--task", "t:f"]},
            ],
        },
    }
    spec = parse_bluequeue(bluequeue(worker={"template": template}))
    assert spec.worker.template == template
    assert spec.worker.image is None
    assert spec.worker.termination_grace_period_s == 900
    no_grace = copy.deepcopy(template)
    del no_grace["spec"]["terminationGracePeriodSeconds"]
    spec = parse_bluequeue(bluequeue(worker={"template": no_grace}))
    assert spec.worker.termination_grace_period_s == DEFAULT_GRACE_PERIOD_S


def test_worker_container() -> None:
    assert worker_container_index([{"name": "a"}, {"name": "worker"}]) == 1
    assert worker_container_index([{"name": "a"}, {"name": "b"}]) == 0


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (bluequeue(queue="a{b}"), r"spec.queue: invalid queue name 'a\{b\}'"),
        (bluequeue(queue=""), "spec.queue: invalid queue name"),
        (bluequeue("x" * 201), r"spec.queue \(default: metadata.name\): invalid queue name"),
        (bluequeue(scaling={"minReplicas": 5, "maxReplicas": 4}), "minReplicas .5. is above"),
        (bluequeue(scaling={"tasksPerWorker": 0}), "spec.scaling.tasksPerWorker: must be >= 1"),
        (bluequeue(scaling={"maxReplicas": -1}), "spec.scaling.maxReplicas: must be >= 0"),
        (bluequeue(scaling={"maxReplicas": 2.5}), "maxReplicas: must be a whole number"),
        (bluequeue(scaling={"maxReplicas": True}), "maxReplicas: must be a whole number"),
        (bluequeue(scaling={"paused": "yes"}), "spec.scaling.paused: must be true or false"),
        (bluequeue(scaling={"pollIntervalSeconds": "1s"}), "pollIntervalSeconds: must be a num"),
        (bluequeue(scaling={"pollIntervalSeconds": 0}), "pollIntervalSeconds: must be >= 0.1"),
        (bluequeue(tasks={"retryBackoff": 0.5}), "spec.tasks.retryBackoff: must be >= 1"),
        (bluequeue(scaling=[]), "spec.scaling: must be an object"),
        (bluequeue(redis={}), "spec.redis.url: missing"),
        (bluequeue(redis={"url": "http://redis"}), "unsupported scheme 'http'"),
        (bluequeue(redis={"url": "redis://:s3cret@redis:6379"}), "holds a password"),
        (bluequeue(redis={"url": "redis://u:s3cret@redis"}), "spec.redis.passwordSecretRef"),
        (bluequeue(redis={"url": "redis://redis?password=s3cret"}), "holds a password"),
        (bluequeue(redis={"url": "redis://r", "keyPrefix": "a{b}"}), "spec.redis.keyPrefix"),
        (bluequeue(redis={"url": "redis://r", "keyPrefix": "p" * 201}), "spec.redis.keyPrefix"),
        (
            bluequeue(redis={"url": "redis://r", "passwordSecretRef": {"name": "s"}}),
            "spec.redis.passwordSecretRef.key: must be a non-empty string",
        ),
        (bluequeue(worker={}), "spec.worker: give an image"),
        (
            bluequeue(worker={"image": "i", "template": {"spec": {"containers": [{}]}}}),
            "spec.worker: image cannot be given with a template",
        ),
        (
            bluequeue(worker={"command": ["x"], "template": {"spec": {"containers": [{}]}}}),
            "spec.worker: command cannot be given with a template",
        ),
        (
            bluequeue(worker={"template": {"spec": {"containers": []}}}),
            "containers: at least one container",
        ),
        (
            bluequeue(worker={"image": "i", "env": [{"name": "BLUEQUE_WORKER_ID", "value": "w"}]}),
            r"spec.worker.env\[0\]: BLUEQUE_WORKER_ID is set by the operator",
        ),
        (
            bluequeue(
                worker={
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "worker", "env": [{"name": "a"}, {"name": "POD_UID"}]}
                            ]
                        }
                    }
                }
            ),
            r"containers\[0\].env\[1\]: POD_UID is set by the operator",
        ),
        (
            bluequeue(worker={"image": "i", "terminationGracePeriodSeconds": -1}),
            "terminationGracePeriodSeconds: must be a whole number of seconds >= 0",
        ),
        (bluequeue(worker={"image": "i", "args": "--task x"}), "args: must be a list of strings"),
        ({"metadata": {}, "spec": {}}, "metadata.name: missing"),
    ],
)
def test_refused(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_bluequeue(obj)


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_bluequeue(bluequeue(queue="no spaces"))


URLS = {
    "redis": "redis://127.0.0.1:1/0",
    "rediss": "rediss://127.0.0.1:1/0",
    "unix": "unix:///nonexistent/redis.sock",
    "redis+cluster": "redis+cluster://127.0.0.1:1",
    "rediss+cluster": "rediss+cluster://127.0.0.1:1",
    "redis+sentinel": "redis+sentinel://127.0.0.1:1/mymaster",
    "rediss+sentinel": "rediss+sentinel://127.0.0.1:1/mymaster",
}


@pytest.mark.parametrize("scheme", REDIS_URL_SCHEMES)
def test_url_schemes_are_the_clients(scheme: str) -> None:
    # Every scheme the spec accepts is one the library's connect() takes (it may then fail to
    # connect: nothing listens there); connect() refuses the others, as the spec does.
    url = URLS[scheme]
    parse_bluequeue(bluequeue(redis={"url": url}))
    try:
        client = connect(url)
    except ConfigError:
        pytest.fail(f"connect() refuses {url}")
    except Exception:  # a connection failure: the scheme was accepted
        return
    client.close()


def test_other_schemes_are_refused_by_both() -> None:
    with pytest.raises(ConfigError, match="unsupported Redis URL scheme"):
        connect("http://localhost:6379")
    with pytest.raises(SpecError, match="unsupported scheme"):
        parse_bluequeue(bluequeue(redis={"url": "http://localhost:6379"}))
