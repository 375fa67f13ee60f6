"""The `blueque` command group: global options, the shared state, and error handling.

Commands are thin edges: parse, call the library, report. User mistakes (an unknown task, a
bad queue name, Redis unreachable) are turned into one line `error: ...` and exit status 1
here, once, instead of in every command; click's own usage errors keep exit status 2 and
become one line too, naming the command's help.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import click
import redis.exceptions
from click.exceptions import NoArgsIsHelpError

from blueque.client import Client
from blueque.connection import CONNECTION_FAILURES, failure, redact
from blueque.environment import RedisEnvironment, Variable
from blueque.errors import BluequeError, ConfigError, InvalidArgumentError

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """One line on stderr, exit status 1, no traceback."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {_one_line(self.format_message())}", err=True)


def _one_line(text: str) -> str:
    """A message as one line, with the password of any URL in it replaced by ***."""
    return redact(" ".join(part.strip() for part in text.splitlines() if part.strip()))


class UsageMistake(click.UsageError):
    """A usage error (exit status 2) as one line too, pointing at the command's help."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} -h')" if self.ctx is not None else ""
        click.echo(f"error: {_one_line(self.message)}{hint}", err=True)


def _as_one_line(exc: click.UsageError) -> click.UsageError:
    if isinstance(exc, UsageMistake | NoArgsIsHelpError):  # the latter shows the help
        return exc
    return UsageMistake(exc.format_message(), exc.ctx)


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
    """The one-line message for an error a user can fix (passwords redacted), or None for a
    bug."""
    message = _description(exc)
    return None if message is None else redact(message)


def _description(exc: BaseException) -> str | None:
    if isinstance(exc, BluequeError):
        return str(exc)
    if isinstance(exc, CONNECTION_FAILURES):
        return f"{failure(exc)}: {exc}"
    if isinstance(exc, redis.exceptions.RedisError | redis.exceptions.RedisClusterException):
        return f"Redis error: {exc}"
    if isinstance(exc, TimeoutError):  # e.g. no subscribe confirmation from a slow Redis
        return f"Redis too slow: {exc}"
    return None


class BluequeGroup(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # the global options
            raise _as_one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a command's arguments and options
            raise _as_one_line(exc) from None
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
    """Seconds from '90', '1.5', '250ms', '5m', '1h30m', '2d'; never a NaN or an infinity."""
    seconds = _parse_duration(text)
    if not math.isfinite(seconds):
        raise InvalidArgumentError(
            f"not a duration: {text!r} (a finite time, e.g. 30, 1.5s, 5m, 1h30m)"
        )
    return seconds


def _parse_duration(text: str) -> float:
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
    """Task parameters from the command line: JSON if it parses, else the string itself
    (`NaN` too: it is not JSON). Text that is not UTF-8 is refused, and so is JSON nested
    too deeply to read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # bytes of argv that are not UTF-8 (surrogateescape)
        raise UserError(f"PARAMS is not valid UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UserError("PARAMS is JSON nested too deeply to read") from None
    except ValueError:
        return text


def _no_constant(name: str) -> Any:
    raise InvalidArgumentError(name)


def read_stdin() -> str:
    """All of stdin as UTF-8 text."""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"PARAMS from stdin is not valid UTF-8 text (byte {exc.start})") from None


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    """KEY=VALUE arguments (of `config`) as a dict; a malformed one is a usage error."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="SETTINGS")
        settings[key.strip()] = value.strip()
    return settings
