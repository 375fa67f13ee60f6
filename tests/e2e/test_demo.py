"""`./dev demo` as a newcomer runs it (`python -m demo`), without a terminal: it brings up Redis,
the local control plane, the chart's operator and the workers; the example's workers scale from
zero to its maxReplicas and back; a busy pod it force-deletes has its task reaped; and Ctrl-C
(SIGINT) stops every process it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from devtools.localkube import MissingBinariesError, find_binaries
from devtools.processes import Process, wait_until

pytestmark = pytest.mark.kube

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_demo_scales_up_and_down_then_ctrl_c_stops_everything(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    try:
        find_binaries()  # the demo builds them through ./dev; here they must be there
    except MissingBinariesError as exc:
        pytest.fail(str(exc), pytrace=False)
    summary = tmp_path / "summary.json"
    argv = [sys.executable, "-m", "demo", "--seconds", "150", "--burst-every", "1000"]
    argv += ["--seed", "3", "--summary", str(summary)]
    demo = Process.start(
        "demo", argv, log_file=tmp_path / "demo.log", cwd=ROOT, env={**os.environ, "COLUMNS": "120"}
    )
    try:
        # One burst: up to the max, then, once the tasks are done, back to zero.
        wait_until(
            lambda: (
                "replicas 0, desired 0" in demo.output().split("ScaledDown", 1)[-1]
                and "ScaledDown" in demo.output()
            ),
            120,
            interval_s=0.2,
            what=lambda: f"the demo to scale up and down; its output:\n{demo.tail(40)}",
        )
        demo.signal(signal.SIGINT)
        code = demo.wait_exit(60)
    finally:
        demo.stop(grace_s=30)
    output = demo.output()
    assert code == 130, output
    assert "interrupted" in output and "STILL RUNNING" not in output, output

    ran = json.loads(summary.read_text())
    request.addfinalizer(lambda: shutil.rmtree(ran["log_dir"], ignore_errors=True))
    replicas = [r for _, r, _ in ran["replicas"]]
    assert ran["max_replicas"] == 4 and replicas[-1] == 0, ran["replicas"]
    assert replicas.index(4) < len(replicas) - 1  # down after up
    assert ran["events"]["ScaledUp"] >= 1 and ran["events"]["ScaledDown"] >= 1, ran["events"]
    assert ran["force_deleted"] and ran["events"].get("WorkerReaped") == 1, ran["events"]
    assert ran["completed"] == ran["enqueued"] > 4  # the reaped task ran again
    assert ran["interrupted"] is True

    # Everything it started is gone: Redis, the control plane, the operator, the workers.
    processes = [Process.from_json(p) for p in ran["processes"]]
    names = " ".join(p.name for p in processes)
    for part in ("redis-server", "etcd", "kube-apiserver", "kwok", "pod blueque-demo/blueque-"):
        assert part in names, names
    assert [p.name for p in processes if p.alive()] == []
    assert not (Path(ran["log_dir"]) / "cluster").exists()  # its state directory removed
