"""`python -m bench.dashboard_fanout [--clients 50] [--rate 200] [--seconds 10] [--burst 5000]`

How much one dashboard process fans out: its own redis-server and `blueque dashboard` (the
real command, on a loopback port), N event-stream clients (raw HTTP/1.1, as EventSource
reads it), and a producer enqueueing at a steady rate, then a burst (`enqueue_many`). Reports
the events per second delivered to all clients together, the dashboard's CPU (user + system,
from /proc), whether every client got every event, and the latency from a transition (the
event's `ts`, the Redis server's clock, on this machine) to its arrival at a client. Not
asserted anywhere: numbers move with the machine's load (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import percentile
from blueque import Client
from devtools.dashboards import RunningDashboard, dashboard
from devtools.redis_servers import RedisServer

QUEUE = "fanout.q"
CONNECT_TIMEOUT_S = 10.0


@dataclass
class StreamClient:
    """One page's event stream: arrival times (ms, this machine's clock) of each event."""

    arrivals: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    snapshots: int = 0
    received_bytes: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, host: str, port: int, token: str | None, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write(
            f"GET /events?queue={QUEUE} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        buffer = b""
        try:
            while not stop.is_set():
                chunk = await reader.read(65536)
                if not chunk:
                    break
                now_ms = time.time() * 1000
                self.received_bytes += len(chunk)
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    self._message(block, now_ms)
        finally:
            writer.close()

    def _message(self, block: bytes, now_ms: float) -> None:
        kind, data = "", b""
        for line in block.split(b"\n"):
            # Chunked transfer encoding puts size lines between frames: skip what is no field.
            if line.startswith(b"event: "):
                kind = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if kind == "snapshot":
            self.snapshots += 1
            self.ready.set()
        elif kind == "event":
            event = json.loads(data)
            if event.get("event") == "enqueued":
                self.arrivals[event["task"]] = now_ms
                self.latencies_ms.append(now_ms - float(event["ts"]))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    name: str
    events: int
    seconds: float
    clients: int
    delivered: int
    complete_clients: int
    events_per_s_all_clients: float
    dashboard_cpu_s: float
    dashboard_cpu_pct: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_max: float


async def phase(
    name: str,
    dash: RunningDashboard,
    streams: list[StreamClient],
    produce: Any,
    timeout_s: float,
) -> Phase:
    for s in streams:
        s.arrivals.clear()
        s.latencies_ms.clear()
    pid = dash.process.pid
    cpu_before, started = cpu_s(pid), time.monotonic()
    ids: list[str] = await asyncio.to_thread(produce)
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(wanted <= s.arrivals.keys() for s in streams):
            break
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    cpu = cpu_s(pid) - cpu_before
    latencies = [v for s in streams for v in s.latencies_ms]
    delivered = sum(len(wanted & s.arrivals.keys()) for s in streams)
    return Phase(
        name=name,
        events=len(ids),
        seconds=round(seconds, 2),
        clients=len(streams),
        delivered=delivered,
        complete_clients=sum(1 for s in streams if wanted <= s.arrivals.keys()),
        events_per_s_all_clients=round(delivered / seconds, 1),
        dashboard_cpu_s=round(cpu, 2),
        dashboard_cpu_pct=round(100 * cpu / seconds, 1),
        latency_ms_p50=round(percentile(latencies, 50), 1) if latencies else -1,
        latency_ms_p95=round(percentile(latencies, 95), 1) if latencies else -1,
        latency_ms_p99=round(percentile(latencies, 99), 1) if latencies else -1,
        latency_ms_max=round(max(latencies), 1) if latencies else -1,
    )


async def measure(args: argparse.Namespace, redis_url: str, log_dir: Path) -> list[Phase]:
    with dashboard(redis_url, log_dir, args=["--no-kube"]) as dash:
        host, port = dash.url.removeprefix("http://").split(":")
        with Client(redis_url) as client:
            queue = client.get_queue(QUEUE)
            queue.enqueue("warm-up")  # the queue exists before the streams open
            await asyncio.sleep(2)  # the dashboard's refresh found it
            stop = asyncio.Event()
            streams = [StreamClient() for _ in range(args.clients)]
            tasks = [asyncio.create_task(s.run(host, int(port), dash.token, stop)) for s in streams]
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(s.ready.wait() for s in streams)), CONNECT_TIMEOUT_S
                )

                def steady() -> list[str]:
                    ids, interval = [], 1 / args.rate
                    start = time.monotonic()
                    for i in range(int(args.rate * args.seconds)):
                        delay = start + i * interval - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        ids.append(queue.enqueue(i))
                    return ids

                def burst() -> list[str]:
                    ids: list[str] = []
                    for start in range(0, args.burst, 1000):
                        ids += queue.enqueue_many(range(start, min(start + 1000, args.burst)))
                    return ids

                results = [
                    await phase(f"steady {args.rate}/s", dash, streams, steady, 30),
                    await phase(f"burst {args.burst}", dash, streams, burst, 60),
                ]
            finally:
                stop.set()
                for task in tasks:
                    task.cancel()
                for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(outcome, Exception):
                        print(f"a stream client failed: {outcome!r}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_fanout", description=__doc__)
    p.add_argument("--clients", type=int, default=50, help="event-stream clients")
    p.add_argument("--rate", type=float, default=200.0, help="steady enqueues per second")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the steady phase")
    p.add_argument("--burst", type=int, default=5000, help="tasks of the burst phase")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, RedisServer() as server:
        results = asyncio.run(measure(args, server.url, Path(tmp)))
    print(f"dashboard fan-out to {args.clients} event streams (one process, one queue)")
    for r in results:
        print(
            f"  {r.name:>14}: {r.events} events in {r.seconds}s -> {r.events_per_s_all_clients}"
            f" events/s to all clients ({r.complete_clients}/{r.clients} got every event),"
            f" dashboard CPU {r.dashboard_cpu_s}s ({r.dashboard_cpu_pct}% of one core),"
            f" latency ms p50 {r.latency_ms_p50} p95 {r.latency_ms_p95}"
            f" p99 {r.latency_ms_p99} max {r.latency_ms_max}"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
