"""The running dashboard as every request handler reaches it (`request.app.state.dashboard`),
and the task a request names.

`app.py` makes the `Dashboard` when the server starts; the handlers (`api.py`, `pages.py`)
only read it. It sits below all three, so that none of them imports another to reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from blueque.aio import AsyncClient, AsyncTask
from blueque.dashboard.hub import Hub
from blueque.dashboard.security import Guard
from blueque.dashboard.settings import DashboardSettings
from blueque.errors import TaskNotFoundError
from blueque.keys import queue_of_task


@dataclass
class Dashboard:
    """What every request handler reaches through `request.app.state.dashboard`."""

    settings: DashboardSettings
    guard: Guard
    templates: Jinja2Templates
    client: AsyncClient
    hub: Hub


def dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


async def task_of(request: Request) -> AsyncTask:
    """The task of the path's `task_id`, read as a list reads it: a corrupt task shows what
    can be read instead of failing; `TaskNotFoundError` when there is none."""
    task_id = str(request.path_params["task_id"])
    queue = dashboard(request).client.get_queue(queue_of_task(task_id))
    found = await queue.get_tasks([task_id])
    if not found:
        raise TaskNotFoundError(f"no task {task_id}")
    return found[0]
