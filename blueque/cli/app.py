"""The `blueque` command group: global options, the shared state, and error handling.

Commands are thin edges: parse, call the library, report. User mistakes (an unknown task, a
bad queue name, Redis unreachable) are turned into one line `error: ...` and exit status 1
here, once, instead of in every command; click's own usage errors keep exit status 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import click
import redis.exceptions

from blueque.client import Client
from blueque.environment import RedisEnvironment, Variable
from blueque.errors import BluequeError, ConfigError, InvalidArgumentError

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """One line on stderr, exit status 1, no traceback."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        one_line = " ".join(part.strip() for part in self.format_message().splitlines())
        click.echo(f"error: {one_line}", err=True)


@dataclass
class State:
    """What every command gets: where Redis is (the environment, then the global options)
    and the output mode."""

    redis: RedisEnvironment = field(default_factory=RedisEnvironment)
    json: bool = False
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        """The client, connected on first use (so `--help` never touches Redis)."""
        if self._client is None:
            r = self.redis
            self._client = Client(
                r.url, password=r.password, cluster=r.cluster, namespace=r.namespace
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def describe(exc: BaseException) -> str | None:
    """The one-line message for an error a user can fix, or None for a bug."""
    if isinstance(exc, BluequeError):
        return str(exc)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return f"Redis unreachable: {exc}"
    if isinstance(exc, redis.exceptions.RedisError | redis.exceptions.RedisClusterException):
        return f"Redis error: {exc}"
    if isinstance(exc, TimeoutError):  # e.g. no subscribe confirmation from a slow Redis
        return f"Redis too slow: {exc}"
    return None


class BluequeGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (
            BluequeError,
            redis.exceptions.RedisError,
            redis.exceptions.RedisClusterException,
            TimeoutError,
        ) as exc:
            raise UserError(describe(exc) or str(exc)) from None


pass_state = click.make_pass_decorator(State)


def flag(variable: Variable) -> str:
    """The option (or argument) name of a variable that has one."""
    if variable.option is None:
        raise ConfigError(f"{variable.name} has no command-line flag")
    return variable.option


def env_help(variable: Variable, text: str | None = None) -> str:
    """An option's help from the environment contract: what it does, its variable, its
    default. Options built with it have no click default: None means "not given", and the
    contract fills it in (flag, then variable, then default)."""
    fallback = f", else {variable.fallback}" if variable.fallback else ""
    default = f"; default: {variable.default}" if variable.default else ""
    return f"{text or variable.description} [env: {variable.name}{fallback}{default}]"


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_option(fn: F) -> F:
    """`--json` after a command too (`blueque status ID --json`), same as before it."""
    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON for scripts instead of a table.",
    )(fn)


# -- parameter types ------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from '90', '1.5', '250ms', '5m', '1h30m', '2d'."""
    raw = text.strip().lower()
    try:
        return float(raw)
    except ValueError:
        pass
    total, number, i = 0.0, "", 0
    while i < len(raw):
        ch = raw[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if raw.startswith("ms", i) else ch
        if unit not in _UNITS or not number:
            raise InvalidArgumentError(f"not a duration: {text!r} (e.g. 30, 1.5s, 5m, 1h30m)")
        total += float(number) * _UNITS[unit]
        number, i = "", i + len(unit)
    if number or not raw:
        raise InvalidArgumentError(f"not a duration: {text!r} (e.g. 30, 1.5s, 5m, 1h30m)")
    return total


def _duration(ctx: click.Context, param: click.Parameter, value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    try:
        seconds = parse_duration(str(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if seconds < 0:
        raise click.BadParameter(f"must not be negative: {value!r}", ctx, param)
    return seconds


def _moment(ctx: click.Context, param: click.Parameter, value: Any) -> datetime | None:
    """An ISO 8601 date and time; without an offset it is local time, as in
    `Queue.schedule`."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 date and time: {value!r}", ctx, param) from None


# Keyword arguments for click.option: a duration ('30', '1.5s', '250ms', '5m', '1h30m') in
# seconds, or a date and time.
DURATION: dict[str, Any] = {"type": str, "metavar": "DURATION", "callback": _duration}
MOMENT: dict[str, Any] = {"type": str, "metavar": "DATETIME", "callback": _moment}


def parse_params(text: str) -> Any:
    """Task parameters from the command line: JSON if it parses, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    """KEY=VALUE arguments (of `config`) as a dict; a malformed one is a usage error."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="SETTINGS")
        settings[key.strip()] = value.strip()
    return settings
