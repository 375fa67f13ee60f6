"""The CLI's commands through click's CliRunner, on a fakeredis-backed Client.

Workers are simulated with the protocol's own transitions (claim, begin, heartbeat,
set_progress); real worker processes are in tests/integration/test_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from click.testing import CliRunner, Result

from blueque import Client, Queue, WorkerSettings
from blueque.cli import cli
from blueque.cli import processes as cli_processes
from blueque.cli.app import State
from devtools.processes import wait_until as poll

Invoke = Callable[..., Result]


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> Client:
    return Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))


@pytest.fixture
def invoke(server: fakeredis.FakeServer) -> Invoke:
    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        # A fresh client per invocation: the CLI closes its client when a command ends.
        fresh = Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))
        return CliRunner().invoke(cli, list(args), obj=State(_client=fresh), env=env)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def user_error(result: Result, exit_code: int = 1) -> str:
    """Asserts the CLI's contract for a user mistake (a usage error: exit_code 2); returns
    the message."""
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def simulate_running(queue: Queue, worker_id: str = "w1", ttl_ms: int = 30_000) -> str:
    """Plays a worker: registers, claims the head of pending and begins it."""
    queue.transitions.heartbeat(worker_id, ttl_ms, {"host": "h", "pid": 7})
    task_id = queue.transitions.claim(worker_id, 0.01)
    assert task_id is not None
    assert queue.transitions.begin(worker_id, task_id, 4242).status == "ok"
    return task_id


# -- enqueue, status, tasks -------------------------------------------------------------------


def test_enqueue_parses_json_and_keeps_other_text(invoke: Invoke, client: Client) -> None:
    as_json = ok(invoke("enqueue", "mail", '{"to": "a@b.c"}')).strip()
    as_text = ok(invoke("enqueue", "mail", "hello world")).strip()
    as_number = ok(invoke("enqueue", "mail", "42")).strip()
    assert client.get_task(as_json).parameters == {"to": "a@b.c"}
    assert client.get_task(as_text).parameters == "hello world"
    assert client.get_task(as_number).parameters == 42
    assert client.get_queue("mail").stats().pending == 3


def test_task_data_is_shown_as_is_never_as_markup(invoke: Invoke, client: Client) -> None:
    client.get_queue("q").enqueue("[bold]x[/bold] [red]y")
    assert "[bold]x[/bold] [red]y" in ok(invoke("tasks", "q"))


def test_enqueue_reads_params_from_stdin(server: fakeredis.FakeServer, client: Client) -> None:
    fresh = Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))
    result = CliRunner().invoke(
        cli, ["enqueue", "q", "-"], obj=State(_client=fresh), input='{"from": "stdin"}\n'
    )
    assert client.get_task(ok(result).strip()).parameters == {"from": "stdin"}


def test_enqueue_delay_schedules(invoke: Invoke, client: Client) -> None:
    doc = json.loads(ok(invoke("--json", "enqueue", "mail", "x", "--delay", "1h")))
    assert doc["state"] == "scheduled"
    assert client.get_queue("mail").stats().scheduled == 1
    listed = json.loads(ok(invoke("tasks", "mail", "--state", "scheduled", "--json")))
    assert [t["id"] for t in listed] == [doc["id"]]
    assert "due in 59m" in ok(invoke("tasks", "mail", "--state", "scheduled"))


def test_enqueue_at_schedules(invoke: Invoke, client: Client) -> None:
    at = (datetime.now(UTC) + timedelta(days=300)).isoformat()
    task_id = ok(invoke("enqueue", "mail", "x", "--at", at)).strip()
    assert client.get_task(task_id).status == "scheduled"
    result = invoke("enqueue", "mail", "x", "--at", "tomorrow")
    assert result.exit_code == 2 and "not an ISO 8601" in result.output


def test_enqueue_rejects_delay_and_at_together(invoke: Invoke) -> None:
    result = invoke("enqueue", "q", "x", "--delay", "5", "--at", "2999-01-01T00:00:00")
    assert "use --delay or --at" in user_error(result, exit_code=2)


@pytest.mark.parametrize(
    ("option", "exit_code", "message"),
    [
        (("--delay", "inf"), 2, "not a duration: 'inf'"),
        (("--delay", "nan"), 2, "not a duration: 'nan'"),
        (("--delay", "1e400s"), 2, "not a duration"),
        (("--delay", "1e30"), 1, "delay must be between"),
        (("--delay", "100000000d"), 1, "delay must be between"),
        (("--at", "9999-12-31T23:59:59"), 1, "more than 315360000 s (ten years) ahead"),
    ],
)
def test_enqueue_refuses_times_no_reader_could_use(
    invoke: Invoke, client: Client, option: tuple[str, str], exit_code: int, message: str
) -> None:
    # They were accepted (exit 0, an id printed); then `status` said corrupt and
    # `tasks --state scheduled` failed for the whole queue.
    assert message in user_error(invoke("enqueue", "q", "x", *option), exit_code)
    assert client.redis.keys("*") == []


def test_enqueue_refuses_params_it_cannot_carry(
    server: fakeredis.FakeServer, invoke: Invoke, client: Client
) -> None:
    # Each gave a traceback. An argv byte that is not UTF-8 reaches Python as a surrogate.
    assert "PARAMS is not valid UTF-8 text" in user_error(invoke("enqueue", "q", "ab\udcffc"))
    for stdin, message in (
        (b"ab\xffc", "PARAMS from stdin is not valid UTF-8 text (byte 2)"),
        (b"[" * 100_000 + b"]" * 100_000, "PARAMS is JSON nested too deeply to read"),
    ):
        fresh = Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))
        result = CliRunner().invoke(
            cli, ["enqueue", "q", "-"], input=stdin, obj=State(_client=fresh)
        )
        assert message in user_error(result)
    assert client.redis.keys("*") == []
    task_id = ok(invoke("enqueue", "q", "NaN")).strip()  # not JSON: a string
    assert client.get_task(task_id).parameters == "NaN"


def test_usage_errors_are_one_line_too(invoke: Invoke) -> None:
    assert "Missing argument 'PARAMS'" in user_error(invoke("enqueue", "q"), exit_code=2)
    message = user_error(invoke("tasks", "q", "--state", "nope"), exit_code=2)
    assert message.endswith("(see 'cli tasks -h')"), message


def test_wait_prints_a_string_result_as_is_and_others_as_json(
    invoke: Invoke, client: Client
) -> None:
    queue = client.get_queue("q")
    first, second = queue.enqueue_many(["a", "b"])
    for task_id, result in ((first, "two\nlines"), (second, {"k": [1, None]})):
        simulate_running(queue)
        queue.transitions.finish("w1", task_id, 1, "complete", json.dumps(result))
    assert ok(invoke("wait", first)) == "two\nlines\n"
    assert ok(invoke("wait", second)) == '{"k": [1, null]}\n'


def test_status_shows_state_and_fields(invoke: Invoke, client: Client) -> None:
    task_id = client.get_queue("q").enqueue({"n": 1})
    doc = json.loads(ok(invoke("status", task_id, "--json")))
    assert doc["id"] == task_id and doc["state"] == "pending" and doc["parameters"] == {"n": 1}
    text = ok(invoke("status", task_id))
    assert task_id in text and "pending" in text and '{"n": 1}' in text


def test_status_shows_progress_of_a_running_task(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    queue.enqueue("x")
    task_id = simulate_running(queue)
    assert client.get_task(task_id).set_progress({"done": 3, "of": 10})
    doc = json.loads(ok(invoke("--json", "status", task_id)))
    assert doc["state"] == "running" and doc["worker"] == "w1"
    assert doc["progress"] == {"done": 3, "of": 10}
    assert '{"done": 3, "of": 10}' in ok(invoke("status", task_id))


def test_tasks_lists_running_from_the_workers(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    queue.enqueue_many(["a", "b"])
    running = simulate_running(queue)
    listed = json.loads(ok(invoke("--json", "tasks", "q", "--state", "running")))
    assert [t["id"] for t in listed] == [running]
    pending = json.loads(ok(invoke("--json", "tasks", "q")))
    assert [t["parameters"] for t in pending] == ["b"]


def poison(queue: Queue) -> dict[str, str]:
    """Tasks and a worker written raw, as a producer in another language or a hand could:
    each one broke a view with a traceback."""
    redis = queue.client.redis
    queue.enqueue("runs")
    running = simulate_running(queue)  # worker w1 runs it
    names = ["deep_params", "deep_result", "odd_error", "bare_error", "nan", "string_key"]
    ids = dict(zip(names, queue.enqueue_many(list(range(len(names)))), strict=True))
    task = queue.keys.task
    redis.hset(task(ids["deep_params"]), "parameters", "[" * 5000 + "]" * 5000)
    redis.hset(
        task(ids["deep_result"]),
        mapping={"state": "complete", "result": "[" * 100_000 + "]" * 100_000},
    )
    odd = '{"type": 5, "message": ["x"], "traceback": {"a": 1}}'
    redis.hset(task(ids["odd_error"]), mapping={"state": "failed", "error": odd})
    redis.hset(task(ids["bare_error"]), mapping={"state": "failed", "error": '"a string"'})
    redis.hset(task(ids["nan"]), mapping={"parameters": "NaN", "enqueued_at": "1e400"})
    redis.delete(task(ids["string_key"]))
    redis.set(task(ids["string_key"]), "not a hash")
    ids["running"] = running
    redis.hset(queue.keys.worker("w1"), mapping={"pid": "abc", "heartbeat_at": "1e400"})
    redis.hset(task(running), "progress", "{" * 3000)
    return ids


def test_every_view_renders_around_poisonous_tasks(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    ids = poison(queue)
    views = [("tasks", "q"), ("tasks", "q", "--state", "running"), ("workers", "q"), ("info",)]
    views += [("status", task_id) for task_id in ids.values()]
    for view in views:
        text = ok(invoke(*view))
        assert json.loads(ok(invoke("--json", *view))) is not None, view
    listed = {t["id"]: t for t in json.loads(ok(invoke("--json", "tasks", "q")))}
    assert sorted(listed) == sorted(set(ids.values()) - {ids["running"]})
    expected = {
        "deep_params": "parameters is nested too deeply to decode",
        "deep_result": "result is nested too deeply to decode",
        "nan": "NaN is not a JSON value",
        "string_key": f"key {queue.keys.task(ids['string_key'])} holds a string, not a hash",
    }
    for name, reason in expected.items():
        assert reason in listed[ids[name]]["corrupt"], (name, listed[ids[name]])
        assert reason in ok(invoke("status", ids[name]))
    assert "'1e400' is not a time in ms" in listed[ids["nan"]]["corrupt"]
    odd, bare = listed[ids["odd_error"]], listed[ids["bare_error"]]
    assert odd["corrupt"] is None and odd["error"] == {
        "type": "5",
        "message": '["x"]',
        "traceback": '{"a": 1}',
    }
    assert bare["error"] == {"type": "Error", "message": "a string"}
    text = ok(invoke("tasks", "q"))
    assert "pending (corrupt)" in text and '5: ["x"]' in text and "Error: a string" in text
    running = json.loads(ok(invoke("--json", "status", ids["running"])))
    assert "progress is not valid JSON" in running["corrupt"]
    worker = json.loads(ok(invoke("--json", "workers", "q")))[0]
    assert (worker["pid"], worker["heartbeat_at"], worker["task"]) == (None, None, ids["running"])


# -- info and workers ---------------------------------------------------------------------------


def test_info_counts_every_queue(invoke: Invoke, client: Client) -> None:
    client.get_queue("a").enqueue_many([1, 2, 3])
    client.get_queue("b").schedule("later", delay=3600)
    client.redis.sadd("blueque:queues", "bad{name}")  # a stray registry entry is left out
    doc = json.loads(ok(invoke("--json", "info")))
    by_name = {q["queue"]: q for q in doc["queues"]}
    assert sorted(by_name) == ["a", "b"]
    assert by_name["a"]["pending"] == 3 and by_name["a"]["oldest_pending_age_s"] is not None
    assert by_name["b"]["scheduled"] == 1 and by_name["b"]["pending"] == 0
    text = ok(invoke("info"))
    assert "OLDEST PENDING" in text and "a " in text and "b " in text


def test_info_and_workers_show_what_runs_with_its_progress(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    queue.enqueue("x")
    task_id = simulate_running(queue, "busy-worker")
    client.get_task(task_id).set_progress("halfway")
    queue.transitions.heartbeat("idle-worker", 30_000, {"host": "h2"})
    doc = json.loads(ok(invoke("--json", "info")))
    assert [(r["id"], r["task"], r["progress"]) for r in doc["running"]] == [
        ("busy-worker", task_id, "halfway")
    ]
    assert "halfway" in ok(invoke("info"))
    rows = json.loads(ok(invoke("--json", "workers", "q")))
    states = {r["id"]: (r["state"], r["task"], r["progress"]) for r in rows}
    assert states == {
        "busy-worker": ("busy", task_id, "halfway"),
        "idle-worker": ("idle", None, None),
    }
    assert rows[0]["busy_for_s"] is not None and rows[0]["busy_for_s"] >= 0
    text = ok(invoke("workers", "q"))
    assert "busy-worker" in text and "halfway" in text and "idle" in text


# -- config -----------------------------------------------------------------------------------


def test_config_shows_defaults_and_sets_values(invoke: Invoke, client: Client) -> None:
    assert json.loads(ok(invoke("--json", "config", "q")))["retry_max"] == 0
    doc = json.loads(ok(invoke("--json", "config", "q", "retry_max=3", "retry_delay_s=0.5")))
    assert doc["retry_max"] == 3 and doc["retry_delay_s"] == 0.5
    assert client.get_queue("q").config().retry_max == 3
    assert "retry_max = 3" in ok(invoke("config", "q"))


def test_config_mistakes(invoke: Invoke, client: Client) -> None:
    assert "unknown queue setting 'nope'" in user_error(invoke("config", "q", "nope=1"))
    assert "retry_backoff must be >= 1" in user_error(invoke("config", "q", "retry_backoff=0.5"))
    for bad in ("nan", "inf", "-inf", "1e300"):
        message = user_error(invoke("config", "q", f"retry_delay_s={bad}"))
        assert "retry_delay_s must be" in message, message
    assert client.redis.exists(client.get_queue("q").keys.config) == 0
    assert invoke("config", "q", "retry_max").exit_code == 2
    assert client.get_queue("q").config().retry_backoff == 2  # nothing was written


# -- cancel, retry, purge ---------------------------------------------------------------------


def test_json_config_is_always_json(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    client.redis.hset(queue.keys.config, "retry_delay_s", "nan")  # by hand, or another client
    message = user_error(invoke("--json", "config", "q"))
    assert "blueque:{q}:config field retry_delay_s is" in message and "nan" in message
    ok(invoke("config", "q", "retry_delay_s=3"))
    assert json.loads(ok(invoke("--json", "config", "q")))["retry_delay_s"] == 3


def test_cancel_then_retry_a_pending_task(invoke: Invoke, client: Client) -> None:
    task_id = client.get_queue("q").enqueue("x")
    assert ok(invoke("cancel", task_id)).strip() == f"{task_id} cancelled"
    assert client.get_task(task_id).status == "cancelled"
    assert ok(invoke("retry", task_id)).strip() == f"{task_id} pending"
    assert client.get_task(task_id).status == "pending"
    assert "only failed or cancelled tasks" in user_error(invoke("retry", task_id))


def test_cancel_a_running_task_asks_its_worker(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    queue.enqueue("x")
    task_id = simulate_running(queue)
    doc = json.loads(ok(invoke("--json", "cancel", task_id)))
    assert doc == {"id": task_id, "outcome": "requested", "state": "running"}
    assert client.get_task(task_id).cancel_requested
    # The worker learns it on its next heartbeat.
    assert queue.transitions.heartbeat("w1", 30_000, {}, task_id) == (False, True)


@pytest.mark.parametrize(
    ("runner", "message"),
    [("fork", "worker w1 will stop"), ("inprocess", "worker w1 runs tasks in its own process")],
)
def test_cancel_says_who_stops_a_running_task(
    invoke: Invoke, client: Client, runner: str, message: str
) -> None:
    queue = client.get_queue("q")
    queue.enqueue("x")
    task_id = simulate_running(queue)
    queue.transitions.heartbeat("w1", 30_000, {"runner": runner})
    assert ok(invoke("cancel", task_id)).startswith(f"cancel requested: {message}")


def test_cancel_a_reserved_task(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    task_id = queue.enqueue("x")
    client.redis.lmove(queue.keys.pending, queue.keys.worker_tasks("w1"), "LEFT", "RIGHT")
    out = ok(invoke("cancel", task_id))
    assert out.strip() == f"cancel requested: {task_id} is reserved by a worker and ends" + (
        " cancelled before it starts"
    )
    assert queue.transitions.begin("w1", task_id, 1).status == "cancelled"


def test_cancel_a_finished_task_is_a_user_error(invoke: Invoke, client: Client) -> None:
    task_id = client.get_queue("q").enqueue("x")
    ok(invoke("cancel", task_id))
    assert "already finished" in user_error(invoke("cancel", task_id))


def test_purge(invoke: Invoke, client: Client) -> None:
    client.get_queue("q").enqueue_many(range(5))
    assert ok(invoke("purge", "q", "--state", "pending")).strip() == (
        "deleted 5 pending task(s) of q"
    )
    assert client.get_queue("q").stats().pending == 0
    assert invoke("purge", "q").exit_code == 2  # --state is required


# -- requeue ----------------------------------------------------------------------------------


def test_requeue_refuses_a_live_worker_unless_forced(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    queue.enqueue("x")
    task_id = simulate_running(queue)
    assert "is alive" in user_error(invoke("requeue", "q", "w1"))
    assert client.get_task(task_id).status == "running"
    doc = json.loads(ok(invoke("--json", "requeue", "q", "w1", "--force")))
    assert doc["requeued"] == 1
    task = client.get_task(task_id)
    assert task.status == "pending" and task.attempts == 1
    assert "no worker w1" in user_error(invoke("requeue", "q", "w1"))


def test_requeue_all_dead_reaps_expired_heartbeats(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    queue.enqueue_many(["dead", "alive"])
    dead_task = simulate_running(queue, "dead", ttl_ms=1)
    simulate_running(queue, "alive")
    poll(lambda: not client.redis.exists(queue.keys.worker_alive("dead")), timeout_s=5)
    doc = json.loads(ok(invoke("--json", "requeue", "q", "--all-dead")))
    assert doc == {"queue": "q", "workers": 1, "requeued": 1, "failed": 0}
    assert client.get_task(dead_task).status == "pending"
    assert [w.id for w in queue.workers()] == ["alive"]
    assert invoke("requeue", "q").exit_code == 2
    assert invoke("requeue", "q", "w", "--all-dead").exit_code == 2


# -- scheduler --------------------------------------------------------------------------------


def test_scheduler_once_promotes_due_tasks_and_reaps(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    due = queue.schedule("soon", delay=0.01)
    later = queue.schedule("later", delay=3600)
    queue.enqueue("held")
    simulate_running(queue, "gone", ttl_ms=1)
    poll(lambda: not client.redis.exists(queue.keys.worker_alive("gone")), timeout_s=5)
    due_at = client.get_task(due).due_at
    assert due_at is not None
    poll(lambda: datetime.now(UTC) > due_at, timeout_s=5)
    client.redis.sadd("blueque:queues", "bad{name}")  # garbage must not stop the pass
    doc = json.loads(ok(invoke("--json", "scheduler", "--once")))
    assert doc["queues"]["q"] == {
        "promoted": 1,
        "reaped_workers": 1,
        "requeued": 1,
        "failed": 0,
        "reap_held_back": None,
        "error": None,
    }
    assert 3500 < doc["next_due_in_s"] <= 3600
    assert client.get_task(due).status == "pending"
    assert client.get_task(later).status == "scheduled"


def test_scheduler_goes_on_past_a_corrupt_queue(invoke: Invoke, client: Client) -> None:
    # One corrupt queue stopped the pass for every queue, and the log did not say which.
    broken, fine = client.get_queue("broken"), client.get_queue("fine")
    broken.enqueue("x")
    client.redis.delete(broken.keys.scheduled)
    client.redis.set(broken.keys.scheduled, "not a sorted set")
    due = fine.schedule("soon", delay=0.01)
    due_at = client.get_task(due).due_at
    assert due_at is not None
    poll(lambda: datetime.now(UTC) > due_at, timeout_s=5)
    result = invoke("--json", "scheduler", "--once")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["queues"]["fine"]["promoted"] == 1
    assert client.get_task(due).status == "pending"
    message = f"key {broken.keys.scheduled} holds a string, not a zset"
    assert message in doc["queues"]["broken"]["error"]
    assert f"queue broken: promote_due failed: {message}" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: the pass failed on queue(s) broken")


def test_info_shows_the_other_queues_when_one_is_corrupt(invoke: Invoke, client: Client) -> None:
    broken, fine = client.get_queue("broken"), client.get_queue("fine")
    broken.enqueue("x")
    fine.enqueue_many([1, 2])
    client.redis.hset(broken.keys.stats, "running", "lots")
    doc = json.loads(ok(invoke("--json", "info")))
    assert [q["queue"] for q in doc["queues"]] == ["fine"]
    assert f"key {broken.keys.stats} field running is 'lots'" in doc["errors"]["broken"]
    text = ok(invoke("info"))
    assert "fine" in text and f"broken: stats failed: key {broken.keys.stats}" in text


# -- worker -----------------------------------------------------------------------------------


def test_worker_options_mirror_every_worker_setting() -> None:
    names = {p.name for p in cli_processes.worker.params}
    assert {f.name for f in fields(WorkerSettings)} <= names


@pytest.fixture
def quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker command configures the root logger; not inside pytest's process.
    monkeypatch.setattr(cli_processes, "configure_logging", lambda level: None)


@pytest.mark.usefixtures("quiet_logging")
def test_worker_reads_env_and_flags_override(invoke: Invoke, client: Client) -> None:
    queue = client.get_queue("q")
    first, second = queue.enqueue_many(["a", "b"])
    env = {"BLUEQUE_WORKER_ID": "from-env", "BLUEQUE_MAX_TASKS": "1", "BLUEQUE_FORK": "false"}
    task = "tests.support.task_functions:echo"
    ok(invoke("worker", "q", "--task", task, env=env))
    assert client.get_task(first).worker == "from-env"
    assert client.get_task(second).status == "pending"  # BLUEQUE_MAX_TASKS=1 was read
    ok(invoke("worker", "q", "--task", task, "--worker-id", "from-flag", env=env))
    done = client.get_task(second)
    assert done.status == "complete" and done.result == "b" and done.worker == "from-flag"


@pytest.mark.usefixtures("quiet_logging")
def test_worker_queue_and_task_from_env(invoke: Invoke, client: Client) -> None:
    task_id = client.get_queue("envq").enqueue([1])
    env = {
        "BLUEQUE_QUEUE": "envq",
        "BLUEQUE_TASK": "tests.support.task_functions:echo",
        "BLUEQUE_MAX_TASKS": "1",
        "BLUEQUE_FORK": "0",
    }
    ok(invoke("worker", env=env))
    assert client.get_task(task_id).result == [1]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("no_such_module_xyz:fn", "cannot import task module 'no_such_module_xyz'"),
        ("tests.support.task_functions:nope", "has no 'nope'"),
        ("just_a_name", "must look like module:function"),
        ("tests.support.task_functions:time", "is not callable"),
    ],
)
def test_worker_task_mistakes(invoke: Invoke, task: str, message: str) -> None:
    assert message in user_error(invoke("worker", "q", "--task", task))


def test_worker_setting_mistakes(invoke: Invoke) -> None:
    task = "tests.support.task_functions:echo"
    args = ("worker", "q", "--task", task, "--heartbeat-interval", "10", "--heartbeat-ttl", "5")
    assert "heartbeat_ttl_s must be at least twice" in user_error(invoke(*args))
    env = {"BLUEQUE_CLAIM_TIMEOUT_S": "soon"}
    assert "BLUEQUE_CLAIM_TIMEOUT_S" in user_error(invoke("worker", "q", "--task", task, env=env))
    assert invoke("worker", "q", "--task", task, "--cancel-grace", "abc").exit_code == 2


# -- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "q:" + "0" * 32), "no task q:000"),
        (("status", "not-an-id"), "invalid task id"),
        (("wait", "q:" + "0" * 32), "no task q:000"),
        (("cancel", "q:" + "0" * 32), "no task q:000"),
        (("enqueue", "bad{name}", "x"), "invalid queue name"),
        (("tasks", "bad name"), "invalid queue name"),
        (("info", "bad/name"), "invalid queue name"),
    ],
)
def test_user_mistakes_are_one_line(invoke: Invoke, args: tuple[str, ...], message: str) -> None:
    assert message in user_error(invoke(*args))


def test_a_namespace_with_braces_is_refused(invoke: Invoke, client: Client) -> None:
    assert "invalid namespace 'app{1}'" in user_error(invoke("--namespace", "app{1}", "info"))
    env = {"BLUEQUE_NAMESPACE": "a}:b"}
    assert "invalid namespace 'a}:b'" in user_error(invoke("enqueue", "q", "x", env=env))
    assert client.redis.keys("*") == []


def test_unreachable_redis_is_one_line() -> None:
    # A real connection attempt to a closed port, no fake.
    result = CliRunner().invoke(cli, ["--url", "redis://127.0.0.1:1/0", "info"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error: Redis unreachable")
