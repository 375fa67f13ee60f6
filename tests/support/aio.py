"""The asyncio client seen through sync calls, so one test body checks both clients.

`Blocking(AsyncClient(...))` runs every coroutine of the client, of the queues and tasks it
returns and of their event streams to completion on one event loop (an `asyncio.Runner`
owned by the wrapper, as the client's connections are bound to their loop), and wraps what
comes back. No pytest plugin: the loop is driven by hand.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from blueque.aio import AsyncClient, AsyncEventStream, AsyncQueue, AsyncTask

_WRAPPED = (AsyncClient, AsyncQueue, AsyncTask, AsyncEventStream)


class Blocking:
    def __init__(self, target: Any, loop: asyncio.Runner | None = None) -> None:
        self._target = target
        self._loop = loop or asyncio.Runner()
        self.wrapped = target  # for type checks in the tests

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._wrap(self._loop.run(value(*args, **kwargs)))
        if callable(value) and not isinstance(value, type):
            return lambda *args, **kwargs: self._wrap(value(*args, **kwargs))
        return self._wrap(value)

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, _WRAPPED):
            return Blocking(value, self._loop)
        if isinstance(value, list) and value and isinstance(value[0], _WRAPPED):
            return [Blocking(v, self._loop) for v in value]
        return value

    def __enter__(self) -> Blocking:
        if isinstance(self._target, AsyncEventStream):
            self._loop.run(self._target.__aenter__())
        return self

    def __exit__(self, *exc: Any) -> None:
        if isinstance(self._target, AsyncEventStream):
            self._loop.run(self._target.__aexit__(*exc))
        elif isinstance(self._target, AsyncClient):
            self.close()

    def close(self) -> None:
        """Closes the client, then its loop."""
        try:
            self._loop.run(self._target.close())
        finally:
            self._loop.close()
