"""Checks of the numbers, times and collections callers hand to the library, at the edge.

A value that Redis would take but no reader could use later (a due time of `inf`, a date
past the year 9999, a string enqueued as a batch of one-letter tasks) is refused here with
`InvalidArgumentError`, before anything is written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from blueque.errors import InvalidArgumentError
from blueque.keys import MAX_DELAY_S


def number(name: str, value: Any, lowest: float, highest: float) -> float:
    """A finite real number (not a bool, not a string) within [lowest, highest]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{name} must be a number, got {_shown(value)}")
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        as_float = math.inf
    if not math.isfinite(as_float):
        raise InvalidArgumentError(f"{name} must be a finite number, got {_shown(value)}")
    if not lowest <= as_float <= highest:
        raise InvalidArgumentError(
            f"{name} must be between {lowest:g} and {highest:.0f}, got {_shown(value)}"
        )
    return as_float


def whole(name: str, value: Any, lowest: int, highest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be a whole number, got {_shown(value)}")
    if not lowest <= value <= highest:
        raise InvalidArgumentError(
            f"{name} must be between {lowest} and {highest}, got {_shown(value)}"
        )
    return value


def text(name: str, value: Any, longest: int) -> str:
    """A non-empty string of at most `longest` printable characters, without whitespace (an
    identifier another program chose, e.g. a Kubernetes UID)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, got {_shown(value)}")
    if not 1 <= len(value) <= longest:
        raise InvalidArgumentError(
            f"{name} must be 1 to {longest} characters long, got {len(value)}"
        )
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidArgumentError(
            f"{name} must be printable characters without spaces, got {_shown(value)}"
        )
    return value


def delay_ms(eta: Any, delay: Any) -> int:
    """Milliseconds from now until a task is due (0: due now), from exactly one of `eta` (a
    datetime; naive is local time) or `delay` (seconds). At most `MAX_DELAY_S` ahead; any
    time in the past means now."""
    if (eta is None) == (delay is None):
        raise InvalidArgumentError("schedule() takes exactly one of eta= or delay=")
    if eta is not None:
        if not isinstance(eta, datetime):
            raise InvalidArgumentError(f"eta must be a datetime, got {_shown(eta)}")
        try:
            seconds = eta.timestamp() - time.time()
        except (OverflowError, OSError, ValueError) as exc:  # e.g. year 1 in a local zone
            raise InvalidArgumentError(
                f"eta {eta.isoformat()} is not a usable time: {exc}"
            ) from None
        if seconds > MAX_DELAY_S:
            raise InvalidArgumentError(
                f"eta {eta.isoformat()} is more than {MAX_DELAY_S} s (ten years) ahead"
            )
    else:
        seconds = number("delay", delay, -math.inf, MAX_DELAY_S)
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


def timeout(value: Any) -> float | None:
    """A wait's timeout in seconds: None (no limit) or 0 to `MAX_DELAY_S`."""
    return None if value is None else number("timeout", value, 0, MAX_DELAY_S)


def batch(parameters: Any) -> list[Any]:
    """The parameters of a batch as a list. A string, bytes or a mapping is refused: iterating
    it would make one task per character, byte or key, which no caller means."""
    if isinstance(parameters, str | bytes | bytearray | memoryview | Mapping):
        kind = type(parameters).__name__
        raise InvalidArgumentError(
            f"enqueue_many takes a list (or another iterable) of parameters, not a {kind}:"
            f" wrap it in a list to enqueue it as one task"
        )
    if not isinstance(parameters, Iterable):
        raise InvalidArgumentError(
            f"enqueue_many takes a list of parameters, got {_shown(parameters)}"
        )
    return list(parameters)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
