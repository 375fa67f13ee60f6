"""The environment contract: one typed object for every variable a worker reads; the CLI's
options and the documentation are built from it; nothing else reads the environment."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import click
import pytest

from blueque import ConfigError, WorkerSettings
from blueque import environment as env
from blueque.cli import cli
from blueque.cli import processes as cli_processes
from blueque.environment import RedisEnvironment, WorkerEnvironment

REPO = Path(__file__).resolve().parents[2]


def test_every_name_is_a_constant_and_a_documented_variable() -> None:
    constants = {
        value
        for name, value in vars(env).items()
        if name.isupper()
        and isinstance(value, str)
        and name != "PREFIX"
        and not name.startswith("DEFAULT_")
    }
    documented = {v.name for v in env.VARIABLES} | {v.fallback for v in env.VARIABLES if v.fallback}
    assert constants == documented
    # One variable per settings field, named after it.
    assert [v.setting for v in env.SETTING_VARIABLES] == [f.name for f in fields(WorkerSettings)]
    assert all(v.name == "BLUEQUE_" + str(v.setting).upper() for v in env.SETTING_VARIABLES)


def test_everything_from_the_environment() -> None:
    read = WorkerEnvironment.from_env(
        {
            env.REDIS_URL: "redis://redis.internal:6380/2",
            env.REDIS_PASSWORD: "from-a-secret",
            env.REDIS_CLUSTER: "yes",
            env.NAMESPACE: "ns",
            env.QUEUE: "emails",
            env.TASK: "app.tasks:send",
            env.LOG_LEVEL: "debug",
            env.WORKER_ID: "w-1",
            env.POD_NAME_FALLBACK: "pod-7",
            env.CLAIM_TIMEOUT_S: "0.5",
            env.HEARTBEAT_INTERVAL_S: "3",
            env.HEARTBEAT_TTL_S: "60",
            env.CANCEL_GRACE_S: "4",
            env.RECONNECT_MAX_DELAY_S: "5",
            env.PROMOTE_INTERVAL_S: "0",
            env.MAX_TASKS: "12",
            env.FORK: "off",
        }
    )
    assert read.redis == RedisEnvironment(
        "redis://redis.internal:6380/2", "from-a-secret", True, "ns"
    )
    assert (read.queue, read.task, read.log_level) == ("emails", "app.tasks:send", "DEBUG")
    assert read.settings == WorkerSettings(
        worker_id="w-1",
        pod_name="pod-7",
        claim_timeout_s=0.5,
        heartbeat_interval_s=3,
        heartbeat_ttl_s=60,
        cancel_grace_s=4,
        reconnect_max_delay_s=5,
        promote_interval_s=0,
        max_tasks=12,
        fork=False,
    )


def test_defaults_and_empty_values() -> None:
    read = WorkerEnvironment.from_env({env.QUEUE: "", env.MAX_TASKS: "", env.REDIS_URL: ""})
    assert read.redis == RedisEnvironment()
    assert read.redis.url == env.DEFAULT_REDIS_URL == "redis://localhost:6379/0"
    assert (read.queue, read.task, read.log_level) == (None, None, "INFO")
    assert read.settings == WorkerSettings()


def test_redis_url_falls_back_to_REDIS_URL() -> None:  # noqa: N802
    assert RedisEnvironment.from_env({"REDIS_URL": "redis://other:1/0"}).url == "redis://other:1/0"
    both = {"REDIS_URL": "redis://other:1/0", "BLUEQUE_REDIS_URL": "redis://mine:2/0"}
    assert RedisEnvironment.from_env(both).url == "redis://mine:2/0"


def test_flags_win_and_keep_the_password() -> None:
    read = RedisEnvironment.from_env({env.REDIS_URL: "redis://a:1/0", env.REDIS_PASSWORD: "pw"})
    flagged = read.with_flags(url="redis://b:2/0", cluster=None, namespace="x")
    assert flagged == RedisEnvironment("redis://b:2/0", "pw", False, "x")


def test_the_password_is_never_shown() -> None:
    read = WorkerEnvironment.from_env({env.REDIS_PASSWORD: "hunter2-secret"})
    assert read.redis.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(read) and "hunter2-secret" not in str(read.redis)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({env.REDIS_CLUSTER: "maybe"}, "BLUEQUE_REDIS_CLUSTER='maybe'"),
        ({env.LOG_LEVEL: "LOUD"}, "BLUEQUE_LOG_LEVEL='LOUD'"),
        ({env.MAX_TASKS: "1.5"}, "BLUEQUE_MAX_TASKS='1.5'"),
        ({env.HEARTBEAT_TTL_S: "soon"}, "BLUEQUE_HEARTBEAT_TTL_S='soon'"),
        ({env.CLAIM_TIMEOUT_S: "0"}, "claim_timeout_s must be 0.01 to 60 seconds"),
    ],
)
def test_mistakes_name_the_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WorkerEnvironment.from_env(variables)


def test_overrides_win_over_the_environment() -> None:
    read = WorkerEnvironment.from_env({env.MAX_TASKS: "5"}, max_tasks=2, worker_id=None)
    assert read.settings.max_tasks == 2
    with pytest.raises(ConfigError):
        env.variable("BLUEQUE_NO_SUCH_THING")


def _params(command: click.Command) -> dict[str, click.Parameter]:
    return {opt: p for p in command.params for opt in [*p.opts, *p.secondary_opts]}


def test_cli_options_are_built_from_the_contract() -> None:
    by_flag = {**_params(cli), **_params(cli_processes.worker)}
    for variable in env.VARIABLES:
        if variable.option is None:
            continue  # the password: no flag, on purpose
        flags = variable.option.split("/")
        param = by_flag.get(flags[0].strip())
        assert param is not None, f"no option {variable.option} for {variable.name}"
        if isinstance(param, click.Option):
            assert variable.name in (param.help or ""), param.help
            if variable.default:
                assert f"default: {variable.default}" in (param.help or "")
            # No click default and no click envvar: the contract decides.
            assert param.envvar is None and not param.show_default
            assert not isinstance(param.get_default(click.Context(cli)), str | int | float)


def test_the_cli_reads_no_environment_itself() -> None:
    """Only blueque/environment.py touches os.environ; click options carry no envvar."""
    offenders = []
    for path in sorted((REPO / "blueque").rglob("*.py")):
        if path.name == "environment.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg in ("envvar", "auto_envvar_prefix"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_docs_hold_the_generated_table() -> None:
    docs = (REPO / "docs" / "cli.md").read_text()
    assert env.markdown_table() in docs, "regenerate docs/cli.md's table: markdown_table()"
