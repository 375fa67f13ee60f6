"""The CLI's pure parts: human durations, argument parsing, what a task row says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import pytest

from blueque.cli.app import UserError, parse_assignments, parse_duration, parse_params
from blueque.cli.output import compact, format_age, format_duration, task_detail, task_dict
from blueque.task import Task


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-3, "0.0s"),
        (0.42, "0.4s"),
        (12.9, "12s"),
        (192, "3m12s"),
        (3600 + 5 * 60 + 7, "1h05m"),
        (3 * 86400 + 4 * 3600 + 59, "3d04h"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_age_past_and_future() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert format_age(now - timedelta(seconds=192), now) == "3m12s ago"
    assert format_age(now + timedelta(seconds=30), now) == "in 30s"
    assert format_age(None, now) == "-"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5", 1.5), ("250ms", 0.25), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "m5", "1h30"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_params_are_json_when_they_parse_else_strings() -> None:
    assert parse_params('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_params("42") == 42
    assert parse_params('"42"') == "42"
    assert parse_params("send the email") == "send the email"
    assert parse_params("{not json") == "{not json"


def test_assignments() -> None:
    assert parse_assignments(("retry_max=3", " retry_delay_s = 0.5 ")) == {
        "retry_max": "3",
        "retry_delay_s": "0.5",
    }
    for bad in ("retry_max", "=3", "retry_max="):
        with pytest.raises(click.BadParameter):
            parse_assignments((bad,))


def _task(**fields: object) -> Task:
    base: dict[str, object] = {
        "id": "q:" + "0" * 32,
        "queue": "q",
        "status": "pending",
        "parameters": {"n": 1},
        "attempts": 0,
    }
    return Task(**(base | fields))  # type: ignore[arg-type]


def test_task_detail_says_what_matters_per_state() -> None:
    assert task_detail(_task()) == '{"n": 1}'
    assert task_detail(_task(status="complete", result="ok")) == "ok"
    failed = _task(status="failed", error={"type": "ValueError", "message": "boom"})
    assert task_detail(failed) == "ValueError: boom"
    running = _task(status="running", progress={"step": 2})
    assert task_detail(running) == 'progress {"step": 2}'
    retrying = _task(
        status="scheduled",
        retries=1,
        due_at=datetime.now(UTC) + timedelta(seconds=30),
        last_error={"type": "ValueError", "message": "boom"},
    )
    assert task_detail(retrying).startswith("due in ")
    assert task_detail(retrying).endswith("retry 1: ValueError: boom")


def test_compact_cuts_long_values_to_one_line() -> None:
    assert compact(None) == "-"
    assert compact("a\n  b") == "a b"
    assert compact("x" * 100, 10) == "x" * 9 + "…"


def test_task_dict_is_json_ready() -> None:
    started = datetime(2020, 1, 1, tzinfo=UTC)
    doc = task_dict(_task(status="running", started_at=started, progress=[1, 2]))
    assert doc["state"] == "running"
    assert doc["started_at"] == "2020-01-01T00:00:00+00:00"
    assert doc["progress"] == [1, 2]
    assert doc["runtime_s"] > 0


def test_user_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    UserError("first line\n  second line").show()
    assert capsys.readouterr().err == "error: first line second line\n"
