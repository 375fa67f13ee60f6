"""Runs `blueque-operator` as a host process against a local control plane (tests, demo, bench).

The operator runs as it would in a pod: its own process, the admin kubeconfig in $KUBECONFIG,
its Lease in a namespace of the caller's choice. Stopped by pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devtools.processes import Process, free_port, stop_all

CRDS = Path(__file__).resolve().parents[1] / "crds"


@dataclass
class OperatorRun:
    """One operator process and its metrics port."""

    process: Process
    metrics_port: int
    name: str

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log(self, lines: int = 60) -> str:
        return self.process.tail(lines)


@dataclass
class Operators:
    """Starts operator processes; `close()` stops every one still running."""

    kubeconfig: Path
    log_dir: Path
    runs: list[OperatorRun] = field(default_factory=list)

    def start(
        self,
        namespaces: Sequence[str],
        *,
        lease_namespace: str,
        lease_name: str = "blueque-operator",
        env: Mapping[str, str] | None = None,
    ) -> OperatorRun:
        name = f"operator-{len(self.runs)}"
        port = free_port()
        argv = [sys.executable, "-m", "blueque_operator", "--metrics-port", str(port)]
        for namespace in namespaces:
            argv += ["--namespace", namespace]
        argv += ["--lease-namespace", lease_namespace, "--lease-name", lease_name]
        environment = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **(env or {})}
        environment.pop("POD_NAMESPACE", None)
        process = Process.start(name, argv, log_file=self.log_dir / f"{name}.log", env=environment)
        run = OperatorRun(process, port, name)
        self.runs.append(run)
        return run

    def close(self) -> None:
        stop_all([run.process for run in self.runs], grace_s=10.0)


@contextmanager
def operators(kubeconfig: Path, log_dir: Path) -> Iterator[Operators]:
    runs = Operators(kubeconfig, log_dir)
    try:
        yield runs
    finally:
        runs.close()
