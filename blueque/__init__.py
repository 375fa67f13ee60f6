"""Blueque: a Redis task queue for long-running work.

One task per worker, no prefetching, no timeouts; a documented protocol (PROTOCOL.md) in
which every transition is one atomic Lua script on one Redis Cluster slot. The asyncio
client (`AsyncClient`, `AsyncQueue`, `AsyncTask`) lives in `blueque.aio`; its names are
re-exported here, imported on first use.
"""

from typing import TYPE_CHECKING, Any

from blueque import forking_runner, inprocess_runner, maintenance
from blueque.client import Client
from blueque.config import QueueConfig
from blueque.environment import RedisEnvironment, WorkerEnvironment, WorkerSettings
from blueque.errors import (
    BluequeError,
    ConfigError,
    ConnectionFailedError,
    CorruptKeyError,
    CorruptTaskError,
    DetachedTaskError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    PayloadError,
    ProtocolError,
    RedisTimeoutError,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
    WorkerIdInUseError,
)
from blueque.keys import PROTOCOL_VERSION
from blueque.outcome import TaskFunction
from blueque.queue import Queue
from blueque.reaping import Reaped, ReapGuard
from blueque.records import (
    OwnerClaim,
    QueueObservation,
    QueueStats,
    WorkerInfo,
    WorkerObservation,
)
from blueque.states import Outcome, TaskState
from blueque.task import Task
from blueque.worker import Worker

if TYPE_CHECKING:
    from blueque.aio import AsyncClient, AsyncQueue, AsyncTask

_ASYNC = frozenset({"AsyncClient", "AsyncQueue", "AsyncTask"})


def __getattr__(name: str) -> Any:
    if name in _ASYNC:
        from blueque import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'blueque' has no attribute {name!r}")


__all__ = [
    "PROTOCOL_VERSION",
    "AsyncClient",
    "AsyncQueue",
    "AsyncTask",
    "BluequeError",
    "Client",
    "ConfigError",
    "ConnectionFailedError",
    "CorruptKeyError",
    "CorruptTaskError",
    "DetachedTaskError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidStateError",
    "Outcome",
    "OwnerClaim",
    "PayloadError",
    "ProtocolError",
    "Queue",
    "QueueConfig",
    "QueueObservation",
    "QueueStats",
    "ReapGuard",
    "Reaped",
    "RedisEnvironment",
    "RedisTimeoutError",
    "Task",
    "TaskFailedError",
    "TaskFunction",
    "TaskNotFoundError",
    "TaskState",
    "WaitTimeoutError",
    "Worker",
    "WorkerEnvironment",
    "WorkerIdInUseError",
    "WorkerInfo",
    "WorkerObservation",
    "WorkerSettings",
    "forking_runner",
    "inprocess_runner",
    "maintenance",
]
