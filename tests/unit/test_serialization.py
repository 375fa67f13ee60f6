"""JSON payloads: values stay values, a string stays a string, bad input is a clear error."""

from __future__ import annotations

import json
import math
import os

import pytest

from blueque import CorruptTaskError, PayloadError, Task, TaskState
from blueque.outcome import call_task_function, error_info
from blueque.serialization import decode, encode


@pytest.mark.parametrize(
    "value", ["text", "", 0, 1.5, -3, None, True, [1, "a", None], {"k": {"ü": [1]}}]
)
def test_round_trip(value: object) -> None:
    assert decode(encode(value)) == value


def test_a_string_is_stored_as_a_json_string() -> None:
    assert encode("some data to process") == '"some data to process"'
    assert encode({"a": 1, "b": [1, 2]}) == '{"a":1,"b":[1,2]}'
    assert encode("é") == '"é"'


@pytest.mark.parametrize("value", [object(), {1}, b"bytes", math.nan, math.inf, {(1, 2): 3}])
def test_not_json_is_a_payload_error(value: object) -> None:
    with pytest.raises(PayloadError, match="result must be JSON-serializable"):
        encode(value, "result")


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(10**30), 1e300, "é\u2028", [], {}, {1: None, 2.5: [True]}, (1, "a")],
)
def test_encoding_is_the_json_modules(value: object) -> None:
    # Encoded by a C encoder made once, not by json's encoder anew: the same text.
    assert encode(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_a_cycle_is_named_as_a_cycle() -> None:
    # The reused encoder does not look for cycles: a cycle is encoded again by one that does.
    cycle: list[object] = []
    cycle.append({"again": cycle})
    with pytest.raises(PayloadError, match="Circular reference detected"):
        encode(cycle, "parameters")


def test_undecodable_text_is_a_corrupt_task() -> None:
    assert decode(None) is None
    with pytest.raises(CorruptTaskError, match="parameters is not valid JSON"):
        decode("{nope", "parameters")


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(depth: int) -> None:
    # Written by a producer in another language: json.loads raised RecursionError.
    with pytest.raises(CorruptTaskError, match="result is nested too deeply to decode"):
        decode("[" * depth + "]" * depth, "result")
    deep: list[object] = []
    for _ in range(depth):
        deep = [deep]
    with pytest.raises(PayloadError, match="parameters is nested too deeply to encode"):
        encode(deep, "parameters")


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_nan_and_infinities_are_not_json(text: str) -> None:
    # json.loads takes them by default, and a view then printed NaN as "JSON".
    with pytest.raises(CorruptTaskError, match="is not a JSON value"):
        decode(text, "parameters")


def _task(parameters: object) -> Task:
    return Task(
        id="q:" + "0" * 32, queue="q", status=TaskState.RUNNING, parameters=parameters, attempts=1
    )


def test_error_info_keeps_type_message_and_traceback() -> None:
    try:
        raise KeyError("missing thing")
    except KeyError as exc:
        info = error_info(exc)
    assert info["type"] == "KeyError"
    assert info["message"] == "'missing thing'"
    assert "Traceback" in info["traceback"] and "missing thing" in info["traceback"]
    assert error_info(PayloadError("x"))["type"] == "blueque.errors.PayloadError"


def test_call_task_function_outcomes() -> None:
    assert call_task_function(lambda t: {"echo": t.parameters}, _task(7)) == (
        "complete",
        '{"echo":7}',
    )

    def boom(task: Task) -> None:
        raise RuntimeError("boom")

    outcome, payload = call_task_function(boom, _task(1))
    assert outcome == "failed" and decode(payload)["message"] == "boom"

    def leaves(task: Task) -> None:
        raise SystemExit(3)

    assert call_task_function(leaves, _task(1))[0] == "failed"
    outcome, payload = call_task_function(lambda t: {1, 2}, _task(1))
    assert outcome == "failed"
    assert decode(payload)["type"] == "blueque.errors.PayloadError"


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_lone_surrogate_is_a_payload_error_before_any_socket() -> None:
    name = os.fsdecode(b"report-\xff.txt")  # what os.listdir gives for a non-UTF-8 name
    with pytest.raises(PayloadError, match=r"result is not valid UTF-8.*\\udcff"):
        encode({"files": [name]}, "result")
    assert call_task_function(lambda task: name, _task(None))[0] == "failed"


def test_nesting_too_deep_is_a_clear_error_both_ways() -> None:
    with pytest.raises(PayloadError, match="result is nested too deeply"):
        encode(_nested(100_000), "result")
    with pytest.raises(CorruptTaskError, match="parameters is nested too deeply"):
        decode("[" * 5000 + "]" * 5000, "parameters")


def test_error_info_of_an_unprintable_error_is_still_encodable() -> None:
    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    def raises(task: Task) -> None:
        raise UnprintableError

    outcome, payload = call_task_function(raises, _task(None))
    info = decode(payload)
    assert outcome == "failed" and info["type"].endswith("UnprintableError")
    assert info["message"] == "<str() of this UnprintableError raised RuntimeError: no str>"
    surrogate = error_info(ValueError("bad " + os.fsdecode(b"\xff")))
    assert surrogate["message"] == "bad \\udcff"
    encode(surrogate)
