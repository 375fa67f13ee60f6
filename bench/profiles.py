"""py-spy recordings for the benchmarks, and a plain-text summary of them.

`--profile DIR` records the Blueque workers (`blueque-inprocess.txt`, `blueque-fork.txt`,
children included) and the producer (`producer-enqueue.txt`, `producer-latency.txt`, idle
time included: waiting for Redis is the point) as py-spy's raw collapsed stacks.
`python -m bench.profiles FILE [N]` prints the N frames holding the most samples, as the
innermost frame and anywhere on the stack.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from devtools.errors import WaitTimeoutError
from devtools.processes import Process


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


@contextlib.contextmanager
def recording(
    pid: int,
    out: Path,
    *,
    idle: bool = False,
    native: bool = False,
    subprocesses: bool = False,
    rate_hz: int = 500,
) -> Iterator[None]:
    """py-spy records process `pid` (this process too; with `subprocesses`, its children as
    well) into `out` until the block ends; py-spy's own messages go to `out` + ".log"."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw"]
    cmd += ["-o", str(out), *(["--idle"] if idle else []), *(["--native"] if native else [])]
    cmd += ["--subprocesses"] if subprocesses else []
    spy = Process.start("py-spy", cmd, log_file=out.with_name(out.name + ".log"))
    time.sleep(0.5)  # attached before the measured work starts
    try:
        yield
    finally:
        spy.signal(signal.SIGINT)  # py-spy writes its output and exits
        try:
            spy.wait_exit(30)
        except WaitTimeoutError:
            spy.kill()


def summarize(path: Path, top: int = 20, only: str | None = None) -> str:
    inner: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or (only and only not in stack):
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        inner[frames[-1]] += n
        for frame in set(frames[1:]):  # the first frame names the process
            anywhere[frame] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{path}: {total} samples", "innermost frame:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inner.most_common(top)]
    out.append("anywhere on the stack:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in anywhere.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.profiles FILE [N] [ONLY-STACKS-CONTAINING]")
    print(
        summarize(
            Path(sys.argv[1]),
            int(sys.argv[2]) if len(sys.argv) > 2 else 20,
            sys.argv[3] if len(sys.argv) > 3 else None,
        )
    )
