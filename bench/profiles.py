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
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


@contextlib.contextmanager
def recording(pid: int, out: Path, *, idle: bool, native: bool = False) -> Iterator[None]:
    """py-spy records process `pid` (this process too) until the block ends."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--rate", "500", "--format", "raw"]
    cmd += ["-o", str(out), *(["--idle"] if idle else []), *(["--native"] if native else [])]
    spy = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the measured work starts
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


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
