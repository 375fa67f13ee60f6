"""Worker settings: defaults, BLUEQUE_* environment, validation, worker id resolution."""

from __future__ import annotations

import os
import socket

import pytest

from blueque import ConfigError, InvalidNameError, WorkerSettings
from blueque.keys import sanitize_worker_id


def test_defaults() -> None:
    s = WorkerSettings.from_env({})
    assert s.worker_id is None and s.pod_name is None
    assert s.claim_timeout_s > 0 and s.heartbeat_ttl_s >= 2 * s.heartbeat_interval_s
    assert s.fork is True and s.max_tasks == 0


def test_every_type_is_parsed_from_the_environment() -> None:
    s = WorkerSettings.from_env(
        {
            "BLUEQUE_WORKER_ID": "w-1",
            "BLUEQUE_CLAIM_TIMEOUT_S": "0.5",
            "BLUEQUE_HEARTBEAT_INTERVAL_S": "3",
            "BLUEQUE_HEARTBEAT_TTL_S": "60",
            "BLUEQUE_MAX_TASKS": "12",
            "BLUEQUE_FORK": "no",
            "UNRELATED": "x",
        }
    )
    assert (s.worker_id, s.claim_timeout_s, s.heartbeat_interval_s) == ("w-1", 0.5, 3.0)
    assert (s.heartbeat_ttl_s, s.max_tasks, s.fork) == (60.0, 12, False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert WorkerSettings.from_env({"BLUEQUE_FORK": raw}).fork is expected


def test_empty_values_mean_the_default() -> None:
    assert WorkerSettings.from_env({"BLUEQUE_MAX_TASKS": ""}).max_tasks == 0


@pytest.mark.parametrize(
    ("name", "raw"),
    [("BLUEQUE_MAX_TASKS", "many"), ("BLUEQUE_MAX_TASKS", "1.5"), ("BLUEQUE_FORK", "maybe"),
     ("BLUEQUE_HEARTBEAT_TTL_S", "soon")],
)  # fmt: skip
def test_unparsable_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WorkerSettings.from_env({name: raw})


@pytest.mark.parametrize(
    "env",
    [
        {"BLUEQUE_CLAIM_TIMEOUT_S": "0"},
        {"BLUEQUE_HEARTBEAT_INTERVAL_S": "-1"},
        {"BLUEQUE_HEARTBEAT_INTERVAL_S": "10", "BLUEQUE_HEARTBEAT_TTL_S": "15"},
        {"BLUEQUE_CLAIM_TIMEOUT_S": "20", "BLUEQUE_HEARTBEAT_TTL_S": "30"},
        {"BLUEQUE_MAX_TASKS": "-1"},
        {"BLUEQUE_CANCEL_GRACE_S": "-1"},
        # A 1 ms heartbeat was accepted; NaN passed every comparison.
        {"BLUEQUE_HEARTBEAT_INTERVAL_S": "0.001", "BLUEQUE_HEARTBEAT_TTL_S": "1"},
        {"BLUEQUE_HEARTBEAT_INTERVAL_S": "nan"},
        {"BLUEQUE_HEARTBEAT_TTL_S": "inf"},
        {"BLUEQUE_CLAIM_TIMEOUT_S": "0.0001"},
        {"BLUEQUE_CANCEL_GRACE_S": "1e30"},
        {"BLUEQUE_RECONNECT_MAX_DELAY_S": "0"},
        {"BLUEQUE_PROMOTE_INTERVAL_S": "-inf"},
    ],
)
def test_out_of_range_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        WorkerSettings.from_env(env)


def test_range_errors_say_the_range() -> None:
    with pytest.raises(ConfigError, match=r"heartbeat_interval_s must be 0\.05 to 3600 seconds"):
        WorkerSettings(heartbeat_interval_s=0.001).validated()


def test_invalid_worker_id_is_refused() -> None:
    with pytest.raises(InvalidNameError):
        WorkerSettings.from_env({"BLUEQUE_WORKER_ID": "has space"})


def test_overrides_win_over_the_environment() -> None:
    s = WorkerSettings.from_env({"BLUEQUE_MAX_TASKS": "5"}, max_tasks=2, worker_id=None)
    assert s.max_tasks == 2
    assert s.with_(fork=False).fork is False
    with pytest.raises(ConfigError):
        s.with_(claim_timeout_s=0)


def test_worker_id_precedence() -> None:
    both = WorkerSettings.from_env({"BLUEQUE_WORKER_ID": "explicit", "POD_NAME": "pod-1"})
    assert both.resolved_worker_id() == "explicit" and both.pod_name == "pod-1"
    pod = WorkerSettings.from_env({"POD_NAME": "blue-7c9f-abcde"})
    assert pod.resolved_worker_id() == "blue-7c9f-abcde"
    assert WorkerSettings.from_env({"BLUEQUE_POD_NAME": "p2"}).resolved_worker_id() == "p2"
    plain = WorkerSettings.from_env({})
    assert plain.resolved_worker_id() == sanitize_worker_id(f"{socket.gethostname()}-{os.getpid()}")
    assert plain.resolved_worker_id().endswith(f"-{os.getpid()}")
