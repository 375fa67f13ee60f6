"""`blueque dashboard` as a host process on a free loopback port, for the browser tests and the
benchmark: started with the real console script, waited for on /healthz, stopped by pid."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.errors import ProcessError
from devtools.processes import Process, free_port, wait_until

TOKEN = "browser-test-token-0123456789"


@dataclass(frozen=True)
class RunningDashboard:
    process: Process
    url: str
    """Its base URL, with the prefix, without a trailing slash."""
    token: str | None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def dashboard(
    redis_url: str,
    log_dir: Path,
    *,
    args: Sequence[str] = (),
    token: str | None = TOKEN,
    env: dict[str, str] | None = None,
) -> Iterator[RunningDashboard]:
    """Runs `blueque --url REDIS_URL dashboard --port P ARGS` until the block ends."""
    port = free_port()
    environment = {**os.environ, **(env or {})}
    environment.pop("BLUEQUE_DASHBOARD_TOKEN", None)
    if token is not None:
        environment["BLUEQUE_DASHBOARD_TOKEN"] = token
    blueque = str(Path(sys.executable).parent / "blueque")
    argv = [blueque, "--url", redis_url, "dashboard", "--port", str(port), *args]
    process = Process.start("dashboard", argv, log_file=log_dir / "dashboard.log", env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _answers(url) or process.poll() is not None,
            15,
            what=lambda: f"the dashboard on {url}: {process.tail()}",
        )
        if process.poll() is not None:
            raise ProcessError(f"the dashboard exited: {process.tail()}")
        yield RunningDashboard(process, url, token)
    finally:
        process.stop()
