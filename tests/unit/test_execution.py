"""How the sync runner packs commands: hiredis's packer where it writes the same bytes as
redis-py's, redis-py's everywhere else."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import redis
from redis.connection import Connection as _Connection
from redis.exceptions import DataError

from blueque import execution
from blueque.steps import Call, Steps

Connection: Any = _Connection  # (untyped in redis-py)

CALLS = [
    Call(("FCALL", "blueque_v2_x_finish", 2, "blueque:{q}:a", "blueque:{q}:b", "w", 3, 2.5)),
    Call(("BLMOVE", "blueque:{q}:pending", "blueque:{q}:w", "LEFT", "RIGHT", 1.0)),
    Call(("SET", "k", "caf\u00e9 \U0001f600", b"\x00\xff")),
]


def redis_py(conn: Any, calls: list[Call]) -> bytes:
    return b"".join(conn.pack_commands([c.args for c in calls]))


def test_hiredis_writes_what_redis_py_writes() -> None:
    assert execution._hiredis_pack is not None, "hiredis is a dependency: it must be found"
    conn = Connection()
    packed = execution._pack(conn, CALLS)
    assert len(packed) == 1  # one buffer: one sendall for the whole pipeline
    assert packed[0] == redis_py(conn, CALLS)


def test_an_argument_hiredis_refuses_gets_redis_pys_error() -> None:
    with pytest.raises(DataError):
        execution._pack(Connection(), [Call(("SET", "k", True))])


def test_another_encoding_is_packed_by_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = Connection(encoding="latin-1")
    monkeypatch.setattr(execution, "_hiredis_pack", lambda args: pytest.fail("hiredis used"))
    text = [Call(("SET", "k", "caf\u00e9"))]
    assert b"".join(execution._pack(conn, text)) == redis_py(conn, text)


class _Stop(BaseException):
    """Not an Exception: the runner does not throw it into the steps, it leaves the run."""


def test_a_run_closes_the_steps_it_leaves_suspended() -> None:
    runner = execution.Runner(redis.Redis())  # (never connects: serve is replaced)

    def serve(request: Any) -> Any:
        raise _Stop

    runner.serve = serve  # type: ignore[method-assign]
    closed: list[bool] = []

    def steps() -> Steps[None]:
        try:
            yield Call(("PING",))
        finally:
            closed.append(True)

    try:
        runner.run(steps())
    except _Stop as exc:
        caught = exc  # its traceback keeps the steps alive: only an explicit close ends them
    assert caught is not None and closed == [True]


def test_a_failure_is_thrown_into_the_steps_and_what_they_raise_after_it_is_not_chained() -> None:
    runner = execution.Runner(redis.Redis())  # (never connects: serve is replaced)
    served: list[Any] = []

    def serve(request: Any) -> Any:
        served.append(request.args)
        if request.args[0] == "FAIL":
            raise redis.exceptions.ConnectionError("down")
        return "ok"

    runner.serve = serve  # type: ignore[method-assign]

    def steps() -> Steps[str]:
        first = yield Call(("GET", "a"))
        with contextlib.suppress(redis.exceptions.ConnectionError):
            yield Call(("FAIL",))  # handled: a later failure of the steps is their own
        return str(first)

    assert runner.run(steps()) == "ok"
    assert served == [("GET", "a"), ("FAIL",)]

    def failing() -> Steps[None]:
        with contextlib.suppress(redis.exceptions.ConnectionError):
            yield Call(("FAIL",))
        raise KeyError("the steps' own")

    with pytest.raises(KeyError) as raised:
        runner.run(failing())
    assert raised.value.__context__ is None
