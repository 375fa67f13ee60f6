"""The function library's text, and the fall back to scripts, on fakeredis (which runs both
FUNCTION/FCALL and EVAL, and answers as Redis 6 when asked to)."""

from __future__ import annotations

import fakeredis
import pytest
from redis.exceptions import ResponseError

from blueque import Client
from blueque.corruption import is_data_error
from blueque.scripts import (
    ALLOW_OOM,
    READ_ONLY,
    SCRIPT_NAMES,
    function_name,
    library_name,
    library_source,
    script_source,
)
from tests.support.protocol import run_one


def test_the_library_registers_every_script_under_its_versioned_name() -> None:
    text = library_source()
    assert text.startswith(f"#!lua name={library_name()}\n")
    for name in SCRIPT_NAMES:
        registration = f"function_name = '{function_name(name)}'"
        assert text.count(registration) == 1
        line = next(line for line in text.splitlines() if registration in line)
        assert ("'no-writes'" in line) == (name in READ_ONLY)
        assert ("'allow-oom'" in line) == (name in ALLOW_OOM)
        # As a script, the same flag in a shebang line.
        assert script_source(name).startswith("#!lua flags=allow-oom\n") == (name in ALLOW_OOM)
        # The same body as the script EVAL sends.
        assert f"local function script_{name}(KEYS, ARGV" in script_source(name)
    # What cycle passes to the scripts it calls.
    assert "local function script_finish(KEYS, ARGV, cycle)" in script_source("cycle")
    assert "local function script_begin(KEYS, ARGV, cycle)" in script_source("cycle")
    assert function_name("begin") == f"{library_name()}_begin"


@pytest.mark.parametrize(("version", "functions"), [((6, 2), False), ((7, 0), True)])
def test_functions_where_the_server_has_them_scripts_elsewhere(
    version: tuple[int, int], functions: bool
) -> None:
    server = fakeredis.FakeServer(version=version)
    redis = fakeredis.FakeRedis(server=server, decode_responses=True)
    with Client(redis=redis) as client:
        queue = client.get_queue("q")
        queue.enqueue("x")
        assert client.scripting.functions is functions
        run_one(queue, "w")
        assert queue.stats().complete == 1
        t = queue.transitions
        queue.enqueue_many(["y", "z"])
        begun = t.claim_and_begin("w", 1, 0.1)
        state, after = t.finish_claim_begin("w", begun.task_id, begun.attempt, "complete", "1", 1)
        assert (state, after.status) == ("complete", "ok")
        if functions:
            (library,) = redis.function_list()
            assert dict(zip(library[::2], library[1::2], strict=True))["library_name"] == (
                library_name()
            )


def test_lua_errors_of_functions_are_data_errors() -> None:
    message = (
        "user_function:131: attempt to compare nil with number script: x, on @user_function:131."
    )
    assert is_data_error(ResponseError(message))
    assert not is_data_error(ResponseError("Function not found"))
