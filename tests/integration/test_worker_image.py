"""The worker image's entrypoint, exactly as worker_image/Dockerfile writes it, run on the host
the way a pod of examples/bluequeue.yaml would run it (the image's ENV and working directory,
the BlueQueue's args, the variables the operator injects), works the example queue that
examples/produce.py fills with examples/tasks.py's tasks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from blueque import Client
from devtools.processes import Process
from tests.support.dockerfile import final_stage

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
POD_NAME = "videos-workers-7d9c-x2x4q"


def test_the_worker_entrypoint_works_the_example_queue(redis_url: str, tmp_path: Path) -> None:
    image = final_stage(ROOT / "worker_image" / "Dockerfile")
    spec = yaml.safe_load((EXAMPLES / "bluequeue.yaml").read_text())["spec"]
    # The image's working directory, here: examples/Dockerfile copies tasks.py into it.
    app = tmp_path / image.workdir.lstrip("/")
    app.mkdir(parents=True)
    shutil.copy(EXAMPLES / "tasks.py", app)
    image_env = {k: v.replace(image.workdir, str(app)) for k, v in image.env.items()}
    pod_env = {  # what the operator writes into the pod
        "BLUEQUE_REDIS_URL": redis_url,
        "BLUEQUE_QUEUE": spec["queue"],
        "POD_NAME": POD_NAME,
        "BLUEQUE_WORKER_ID": POD_NAME,
    }
    # `blueque` is found on PATH, as pip installed it in the image: here, this venv's.
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    worker = Process.start(
        "example-worker",
        [*image.entrypoint, *spec["worker"]["args"]],  # a pod with args and no command
        log_file=tmp_path / "worker.log",
        cwd=app,
        env={"PATH": path, **image_env, **pod_env},
    )
    try:
        produce = [str(EXAMPLES / "produce.py"), "3", "--min-seconds", "0.2", "--max-seconds"]
        produce += ["0.4", "--seed", "1", "--wait", "--timeout", "30"]
        producer = subprocess.run(
            [sys.executable, *produce],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": path, "BLUEQUE_REDIS_URL": redis_url, "HOME": os.environ["HOME"]},
            check=False,
        )
        assert producer.returncode == 0, producer.stderr + worker.output()
        assert producer.stdout.splitlines() == ["enqueued 3 tasks on videos", "complete: 3"]

        with Client(redis_url) as client:
            runs = [
                json.loads(r) for r in client.redis.lrange("blueque:examples:executions", 0, -1)
            ]
            done = client.get_queue("videos").tasks("complete")
        assert sorted(r["task"] for r in runs) == sorted(t.id for t in done)
        assert {(r["attempt"], r["worker"]) for r in runs} == {(1, POD_NAME)}
        assert all(0.2 <= t.result["seconds"] < 2 for t in done)
        worker.signal(signal.SIGTERM)  # what the kubelet sends: an idle worker exits at once
        assert worker.wait_exit(10) == 0, worker.output()
    finally:
        worker.stop(grace_s=2)
