"""Errors stay inside the hierarchy: every error Blueque raises on purpose is a BluequeError
and also the built-in a caller would catch (`except ValueError` keeps working)."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from blueque import Client, ConfigError, Task, TaskState
from blueque.errors import (
    BluequeError,
    DetachedTaskError,
    InvalidArgumentError,
    RedisTimeoutError,
)
from blueque.events import EventStream, SubscriberPool

REPO = Path(__file__).resolve().parents[2]
BARE = {"ValueError", "RuntimeError", "TimeoutError", "KeyError", "TypeError", "LookupError"}


def test_no_bare_builtin_is_raised_in_the_library() -> None:
    found = []
    for path in sorted((REPO / "blueque").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in BARE:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {exc.id}")
    assert found == []


@pytest.mark.parametrize(
    ("call", "error", "builtin"),
    [
        (lambda q: q.schedule("x"), InvalidArgumentError, ValueError),
        (lambda q: q.schedule("x", delay=1, eta=datetime.now()), InvalidArgumentError,
         ValueError),
        (lambda q: q.tasks("running"), InvalidArgumentError, ValueError),
        (lambda q: q.purge("bogus"), InvalidArgumentError, ValueError),
    ],
)  # fmt: skip
def test_queue_argument_mistakes(
    fake_client: Client, call: Any, error: type[BluequeError], builtin: type[Exception]
) -> None:
    queue = fake_client.get_queue("err.q")
    with pytest.raises(error) as caught:
        call(queue)
    assert isinstance(caught.value, BluequeError) and isinstance(caught.value, builtin)


def test_a_task_built_by_hand_cannot_act() -> None:
    task = Task(id="q:" + "0" * 32, queue="q", status=TaskState.PENDING, parameters=1, attempts=0)
    with pytest.raises(DetachedTaskError) as caught:
        task.refresh()
    assert isinstance(caught.value, RuntimeError)


@pytest.mark.parametrize("url", ["redis://h:abc/0", "redis+sentinel://h:xx/master"])
def test_malformed_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid Redis URL"):
        Client(url)


class _Silent:
    """A pub/sub connection whose server never confirms anything."""

    def ssubscribe(self, channel: str) -> None:
        pass

    def get_sharded_message(self, **options: Any) -> None:
        return None

    def close(self) -> None:
        pass


class _SilentPool(SubscriberPool):
    def __init__(self) -> None:
        pass

    def acquire(self) -> Any:
        return _Silent()


def test_no_subscribe_confirmation_is_a_redis_timeout(fake_client: Client) -> None:
    stream = EventStream(fake_client.redis, "blueque:{q}:events", _SilentPool())
    with pytest.raises(RedisTimeoutError) as caught, stream:
        pass
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, ConnectionError)
