"""`Client`: the entry point. Holds one Redis connection pool and the runner of the protocol's
steps over it (`blueque.execution`); `blueque.aio.AsyncClient` is its asyncio twin, and
`ClientBase` what the two share: the constructor and the queues."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from blueque import operations
from blueque.connection import SYNC, Flavor, RedisClient, close, connect
from blueque.events import SubscriberPool
from blueque.execution import Runner
from blueque.keys import DEFAULT_NAMESPACE, queue_of_task, validate_namespace
from blueque.operations import QueueFace
from blueque.queue import Queue
from blueque.records import QueueStats
from blueque.scripts import Scripting
from blueque.task import Task

R = TypeVar("R")
QueueT = TypeVar("QueueT", bound=QueueFace[Any])


class ClientBase(Generic[R, QueueT]):
    flavor: Flavor
    queue_type: type[QueueT]

    def __init__(
        self,
        url: str | None = None,
        *,
        hostname: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        username: str | None = None,
        ssl: bool = False,
        cluster: bool = False,
        namespace: str = DEFAULT_NAMESPACE,
        redis: R | None = None,
    ) -> None:
        self.namespace = validate_namespace(namespace)  # before connecting: nothing to close
        self.redis: R = (
            redis
            if redis is not None
            else connect(
                url,
                hostname=hostname,
                port=port,
                db=db,
                password=password,
                username=username,
                ssl=ssl,
                cluster=cluster,
                flavor=self.flavor,
            )
        )
        self._queues: dict[str, QueueT] = {}
        self.scripting = Scripting()  # functions or scripts: learnt from this client's server
        self._start()

    def _start(self) -> None:
        """Sets up what runs the steps over `self.redis`."""

    def get_queue(self, name: str) -> QueueT:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = self.queue_type(self, name)
        return queue


class Client(ClientBase[RedisClient, Queue]):
    """Connects to Redis. `Client(hostname="localhost", port=6379, db=0)` or
    `Client("redis://...")`; see `blueque.connection.connect` for every URL form
    (TLS, Sentinel, Cluster). `password` also supplies or replaces a URL's password."""

    flavor = SYNC
    queue_type = Queue

    def _start(self) -> None:
        self.subscribers = SubscriberPool(self.redis)
        self.runner = Runner(self.redis)

    def get_task(self, task_id: str) -> Task:
        """The current snapshot of a task, from its id alone (the id names its queue)."""
        return self.get_queue(queue_of_task(task_id)).get_task(task_id)

    def wait(
        self, task_id: str, timeout: float | None = None, *, raise_on_failure: bool = False
    ) -> Task:
        """Waits for a task from its id alone (`Queue.wait`); returns it finished."""
        queue = self.get_queue(queue_of_task(task_id))
        return queue.wait(task_id, timeout, raise_on_failure=raise_on_failure)

    def queues(self) -> list[str]:
        """Names of every queue that was ever used (the registry set)."""
        return self.runner.run(operations.queue_names(self.namespace))

    def info(self) -> list[QueueStats]:
        """Stats of every queue: one round trip per queue."""
        return [self.get_queue(name).stats() for name in self.queues()]

    def ping(self) -> bool:
        return self.runner.run(operations.ping())

    def close(self) -> None:
        self.subscribers.close()
        close(self.redis)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
