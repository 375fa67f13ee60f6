"""One operator, many BlueQueues, many pods: what a tick costs, and what the steady state writes.

No pod runner and no worker processes: KWOK makes the pods Running, and the benchmark registers
one simulated worker per pod in Redis, as a real one would (PROTOCOL.md, *Worker hash*: the
heartbeat script writes the hash, the alive key and the workers set; worker id = pod name,
`owner` = the BlueQueue's UID, `pod_uid` = the pod's). `busy` of each BlueQueue's workers hold a
task they have begun (claim + begin, the worker's own scripts); the others are idle. Every
BlueQueue has `minReplicas` = its pods, so demand never moves replicas: a steady fleet. The
alive keys get a TTL of an hour, so the benchmark sends Redis nothing during the windows.

Two windows are measured: `settling` (from the registration of the workers, through the
moment their tasks have run for `PROTECT_AFTER_S` and their pods get the disruption
annotations) and `steady` (nothing changes). Per window:

- ticks, from the operator's `blueque_tick_duration_seconds` histogram (summed over queues),
  and their duration (mean; p50/p95 interpolated within the buckets);
- the operator process's CPU (utime + stime from /proc), RSS and peak RSS (VmHWM);
- Redis: the commands executed (`INFO commandstats` deltas, minus the benchmark's own INFO
  calls), which count the commands the scripts run inside Redis too, and Redis's CPU; the round
  trips, i.e. the commands clients sent (scripts' inner commands excluded), are counted in a
  separate sample of `sample_s` seconds after the steady window, with MONITOR (its lines tell
  a client's command from a script's);
- API requests of the operator, from the API server's audit log
  (`LocalCluster(audit_log=True)`; the operator and the benchmark are one user, the admin,
  so requests are told apart by user agent, not by `AuditLog.counts`): every request whose
  user agent is the operator's (`OpenAPI-Generator/...`, the `kubernetes`
  client its writes and reads go through, and Kopf's `kopf/...` for its lists), by verb and
  resource. Lease renewals (leader election) are shown apart: they are per operator, not
  per tick.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from bench import profiles
from bench.harness import machine_load
from bench.kube.env import (
    WORKER_SELECTOR,
    KubeBench,
    bluequeue,
    bq_path,
    condition,
    pause,
    proc_cpu_s,
    proc_memory_bytes,
)
from blueque import Client
from blueque.keys import PROTOCOL_VERSION
from devtools.localkube.api import ApiClient, Json
from devtools.processes import wait_until

Log = Callable[[str], None]
PROTECT_AFTER_S = 60.0
"""The operator's `policy.PROTECT_AFTER_S` (not imported: the benchmark only reads metrics)."""
SETTLE_MARGIN_S = 20.0
WORKER_TTL_MS = 3_600_000
TICK_METRIC = "blueque_tick_duration_seconds"

OPERATOR_AGENTS = ("OpenAPI-Generator", "kopf")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list")


@dataclass
class Sample:
    at: float
    ticks: float
    tick_sum_s: float
    buckets: dict[float, float]
    cpu_s: float
    memory: dict[str, int]
    redis_calls: dict[str, int]
    redis_cpu_s: float
    audit_offset: int


@dataclass
class Window:
    name: str
    seconds: float
    ticks: int
    ticks_per_s: float
    tick_mean_ms: float
    tick_p50_ms: float
    tick_p95_ms: float
    cpu_percent: float
    """Of one core."""
    cpu_ms_per_tick: float
    rss_mb: float
    peak_rss_mb: float
    redis_commands: dict[str, int]
    redis_commands_per_tick: float
    redis_cpu_ms_per_tick: float
    api_writes: dict[str, int]
    """By "verb resource[/subresource]", Lease renewals left out."""
    api_writes_per_tick: float
    api_reads: dict[str, int]
    lease_writes: int
    load: str


@dataclass
class RoundTrips:
    """Commands sent by clients (not run by scripts) during a MONITOR sample."""

    seconds: float
    ticks: int
    by_command: dict[str, int]
    per_tick: float
    script_commands_per_tick: float


@dataclass
class FleetResult:
    queues: int
    pods_per_queue: int
    busy_per_queue: int
    poll_s: float
    setup_s: dict[str, float] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    round_trips: RoundTrips | None = None


# -- sampling ----------------------------------------------------------------------------------


def _operator_metrics(url: str) -> tuple[float, float, dict[float, float]]:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    count = total = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != TICK_METRIC:
            continue
        for s in family.samples:
            if s.name.endswith("_count"):
                count += s.value
            elif s.name.endswith("_sum"):
                total += s.value
            elif s.name.endswith("_bucket"):
                edge = float(s.labels["le"])
                buckets[edge] = buckets.get(edge, 0.0) + s.value
    return count, total, buckets


def _redis_figures(r: redis.Redis) -> tuple[dict[str, int], float]:
    stats: dict[str, Any] = r.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    cpu: dict[str, Any] = r.info("cpu")
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def sample(audit_log: Path, r: redis.Redis, metrics_url: str, pid: int) -> Sample:
    ticks, tick_sum, buckets = _operator_metrics(metrics_url)
    calls, redis_cpu = _redis_figures(r)
    return Sample(
        at=time.monotonic(),
        ticks=ticks,
        tick_sum_s=tick_sum,
        buckets=buckets,
        cpu_s=proc_cpu_s(pid),
        memory=proc_memory_bytes(pid),
        redis_calls=calls,
        redis_cpu_s=redis_cpu,
        audit_offset=audit_log.stat().st_size,
    )


def operator_requests(audit_log: Path, start: int, end: int) -> Counter[tuple[str, str]]:
    """The operator's API requests between two offsets of the audit log: (verb, resource)."""
    found: Counter[tuple[str, str]] = Counter()
    with audit_log.open("rb") as f:
        f.seek(start)
        data = f.read(end - start)
    for line in data.splitlines():
        event = json.loads(line)
        if not str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS):
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource", event.get("requestURI", "")))
        if ref.get("subresource"):
            resource += "/" + str(ref["subresource"])
        found[(str(event.get("verb")), resource)] += 1
    return found


def _bucket_quantile(buckets: Mapping[float, float], q: float) -> float:
    """Prometheus's histogram_quantile: linear within the bucket the rank falls in."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    previous_edge, previous_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if edge == float("inf"):
                return previous_edge
            inside = count - previous_count
            share = 0.0 if inside <= 0 else (rank - previous_count) / inside
            return previous_edge + (edge - previous_edge) * share
        previous_edge, previous_count = edge, count
    return previous_edge


def window(name: str, a: Sample, b: Sample, audit_log: Path) -> Window:
    seconds = b.at - a.at
    ticks = round(b.ticks - a.ticks)
    per_tick = 1 / ticks if ticks else float("nan")
    buckets = {e: b.buckets.get(e, 0.0) - a.buckets.get(e, 0.0) for e in b.buckets}
    commands = {k: v - a.redis_calls.get(k, 0) for k, v in b.redis_calls.items()}
    commands["info"] = commands.get("info", 0) - 2  # the second sample's own INFO calls
    commands = {k: v for k, v in sorted(commands.items()) if v > 0}
    requests = operator_requests(audit_log, a.audit_offset, b.audit_offset)
    leases = sum(n for (verb, res), n in requests.items() if res == "leases")
    writes = {
        f"{verb} {res}": n
        for (verb, res), n in sorted(requests.items())
        if verb in WRITE_VERBS and res != "leases"
    }
    reads = {
        f"{verb} {res}": n
        for (verb, res), n in sorted(requests.items())
        if verb in READ_VERBS and res != "leases"
    }
    return Window(
        name=name,
        seconds=seconds,
        ticks=ticks,
        ticks_per_s=ticks / seconds,
        tick_mean_ms=1000 * (b.tick_sum_s - a.tick_sum_s) * per_tick,
        tick_p50_ms=1000 * _bucket_quantile(buckets, 0.5),
        tick_p95_ms=1000 * _bucket_quantile(buckets, 0.95),
        cpu_percent=100 * (b.cpu_s - a.cpu_s) / seconds,
        cpu_ms_per_tick=1000 * (b.cpu_s - a.cpu_s) * per_tick,
        rss_mb=b.memory["VmRSS"] / 2**20,
        peak_rss_mb=b.memory["VmHWM"] / 2**20,
        redis_commands=commands,
        redis_commands_per_tick=sum(commands.values()) * per_tick,
        redis_cpu_ms_per_tick=1000 * (b.redis_cpu_s - a.redis_cpu_s) * per_tick,
        api_writes=writes,
        api_writes_per_tick=sum(writes.values()) * per_tick,
        api_reads=reads,
        lease_writes=leases,
        load=machine_load(),
    )


def round_trips(url: str, metrics_url: str, seconds: float) -> RoundTrips:
    """MONITOR for `seconds`: the commands clients sent, apart from those scripts ran. The
    ticks of the same span are read from the metrics by a timer, whatever the reader's lag."""
    r = redis.Redis.from_url(url, socket_timeout=10)
    sent: Counter[str] = Counter()
    inner = 0
    ticks_after: list[float] = []
    try:
        with r.monitor() as monitor:  # type: ignore[no-untyped-call]
            ticks_before, _, _ = _operator_metrics(metrics_url)
            start = time.time()
            timer = threading.Timer(
                seconds, lambda: ticks_after.append(_operator_metrics(metrics_url)[0])
            )
            timer.start()
            while True:
                command = monitor.next_command()
                at = float(command["time"])
                if at > start + seconds:
                    break
                if at < start:
                    continue
                if command.get("client_type") == "lua":
                    inner += 1
                else:
                    sent[str(command["command"]).split(" ", 1)[0].lower()] += 1
            timer.join()
    finally:
        r.close()
    ticks = round(ticks_after[0] - ticks_before)
    return RoundTrips(
        seconds=seconds,
        ticks=ticks,
        by_command=dict(sent.most_common()),
        per_tick=sum(sent.values()) / ticks if ticks else float("nan"),
        script_commands_per_tick=inner / ticks if ticks else float("nan"),
    )


# -- the fleet ---------------------------------------------------------------------------------


def _wait_ready(admin: ApiClient, ns: str, queues: int, timeout_s: float) -> None:
    def ready() -> bool:
        items = admin.get(bq_path(ns))["items"]
        return sum(1 for bq in items if condition(bq, "Ready") == "True") == queues

    wait_until(ready, timeout_s, interval_s=1.0, what=f"{queues} BlueQueues Ready")


def _running_pods(admin: ApiClient, ns: str) -> list[Json]:
    items: list[Json] = admin.get(
        f"/api/v1/namespaces/{ns}/pods", {"labelSelector": WORKER_SELECTOR}
    )["items"]
    return [
        p
        for p in items
        if (p.get("status") or {}).get("phase") == "Running"
        and condition(p, "Ready") == "True"
        and "deletionTimestamp" not in p["metadata"]
    ]


def _register(
    client: Client, bqs: Mapping[str, str], pods: list[Json], busy: int
) -> tuple[int, int]:
    """One simulated worker per pod; `busy` of each BlueQueue's begin a task. Returns
    (workers, busy workers)."""
    by_queue: dict[str, list[Json]] = {}
    for pod in pods:
        by_queue.setdefault(pod["metadata"]["labels"]["blueque.io/bluequeue"], []).append(pod)
    workers = busy_workers = 0
    now_ms = int(time.time() * 1000)
    for name, members in sorted(by_queue.items()):
        queue = client.get_queue(name)
        for i, pod in enumerate(sorted(members, key=lambda p: p["metadata"]["name"])):
            wid = pod["metadata"]["name"]
            fields: dict[str, str | int] = {
                "host": "kwok",
                "pid": 1,
                "pod": wid,
                "pod_uid": pod["metadata"]["uid"],
                "owner": bqs[name],
                "started_at": now_ms,
                "runner": "fork",
                "protocol": PROTOCOL_VERSION,
            }
            queue.transitions.heartbeat(wid, WORKER_TTL_MS, fields)
            workers += 1
            if i < busy:
                queue.enqueue({"simulated": wid})
                begun = queue.transitions.claim_and_begin(wid, 1, 1.0)
                if begun.status != "ok":
                    raise RuntimeError(f"simulated worker {wid}: begin answered {begun}")
                queue.transitions.heartbeat(wid, WORKER_TTL_MS, fields, begun.task_id)
                busy_workers += 1
    return workers, busy_workers


def measure(
    bench: KubeBench,
    *,
    queues: int,
    pods: int,
    busy: int,
    poll_s: float,
    window_s: float,
    sample_s: float = 20.0,
    profile: Path | None = None,
    log: Log = print,
) -> FleetResult:
    """`profile`: also record the operator with py-spy for `window_s` after the steady window
    (apart from it: py-spy slows what it samples), into `profile`/operator-fleet.txt."""
    result = FleetResult(queues, pods, busy, poll_s)
    admin = bench.admin
    audit = bench.cluster.audit_log().path  # ClusterError without an audit log
    r = redis.Redis.from_url(bench.redis.url)
    with contextlib.ExitStack() as stack:
        stack.callback(r.close)
        ns = stack.enter_context(bench.namespace("fleet"))
        run = stack.enter_context(bench.operator([ns], "fleet"))
        wait_until(lambda: _metrics_up(run.metrics_url), 60, what="the operator's metrics")
        pid = run.process.pid
        before = sample(audit, r, run.metrics_url, pid)
        started = time.monotonic()
        scaling = {
            "minReplicas": pods,
            "maxReplicas": 2 * pods,
            "pollIntervalSeconds": poll_s,
            "scaleDownDelaySeconds": 30,
        }
        for i in range(queues):
            body = bluequeue(f"q{i:03d}-{secrets.token_hex(2)}", bench.redis.url, scaling=scaling)
            admin.create(bq_path(ns), body)
        result.setup_s["create"] = time.monotonic() - started
        _wait_ready(admin, ns, queues, 600)
        result.setup_s["ready"] = time.monotonic() - started
        log(f"  fleet: {queues} BlueQueues Ready after {result.setup_s['ready']:.0f} s")
        wanted = queues * pods
        running = wait_until(
            lambda: found if len(found := _running_pods(admin, ns)) == wanted else None,
            1200,
            interval_s=2.0,
            what=f"{wanted} pods Running",
        )
        result.setup_s["pods_running"] = time.monotonic() - started
        log(f"  fleet: {wanted} pods Running after {result.setup_s['pods_running']:.0f} s")
        listed = admin.get(bq_path(ns))["items"]
        uids = {bq["metadata"]["name"]: bq["metadata"]["uid"] for bq in listed}
        registering = sample(audit, r, run.metrics_url, pid)
        result.windows.append(window("start-up", before, registering, audit))
        with Client(bench.redis.url) as client:
            workers, busy_workers = _register(client, uids, running, busy)
        result.setup_s["registered"] = time.monotonic() - started
        log(f"  fleet: {workers} simulated workers registered, {busy_workers} busy")
        first = sample(audit, r, run.metrics_url, pid)
        pause(PROTECT_AFTER_S + SETTLE_MARGIN_S)
        second = sample(audit, r, run.metrics_url, pid)
        result.windows.append(window("settling", first, second, audit))
        log(f"  fleet: settling window done ({second.at - first.at:.0f} s)")
        pause(window_s)
        third = sample(audit, r, run.metrics_url, pid)
        result.windows.append(window("steady", second, third, audit))
        log(f"  fleet: steady window done ({third.at - second.at:.0f} s)")
        result.round_trips = round_trips(bench.redis.url, run.metrics_url, sample_s)
        log(f"  fleet: MONITOR sample done ({sample_s:.0f} s)")
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            out = profile / "operator-fleet.txt"
            with profiles.recording(pid, out, rate_hz=100):
                pause(window_s)
            log(f"  fleet: py-spy recording in {out} (python -m bench.profiles {out})")
    return result


def _metrics_up(url: str) -> bool:
    try:
        _operator_metrics(url)
    except OSError:
        return False
    return True


def table(result: FleetResult) -> str:
    head = (
        f"{result.queues} BlueQueues x {result.pods_per_queue} pods"
        f" ({result.busy_per_queue} busy each), poll {result.poll_s:g} s; setup: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result.setup_s.items())
    )
    rows = [
        ("seconds", "{:.0f}", "seconds"),
        ("ticks", "{:,}", "ticks"),
        ("ticks/s", "{:.1f}", "ticks_per_s"),
        ("tick mean ms", "{:.2f}", "tick_mean_ms"),
        ("tick p50 ms", "{:.2f}", "tick_p50_ms"),
        ("tick p95 ms", "{:.2f}", "tick_p95_ms"),
        ("operator CPU % of a core", "{:.0f}", "cpu_percent"),
        ("operator CPU ms/tick", "{:.2f}", "cpu_ms_per_tick"),
        ("RSS MB (end)", "{:.0f}", "rss_mb"),
        ("peak RSS MB", "{:.0f}", "peak_rss_mb"),
        ("Redis commands run/tick (scripts' included)", "{:.2f}", "redis_commands_per_tick"),
        ("Redis CPU ms/tick", "{:.3f}", "redis_cpu_ms_per_tick"),
        ("API writes/tick", "{:.4f}", "api_writes_per_tick"),
        ("Lease writes", "{}", "lease_writes"),
    ]
    lines = [head, "", "| | " + " | ".join(w.name for w in result.windows) + " |"]
    lines.append("|---|" + "---:|" * len(result.windows))
    for label, fmt, attr in rows:
        cells = [fmt.format(getattr(w, attr)) for w in result.windows]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for w in result.windows:
        lines.append(f"{w.name}: API writes {w.api_writes}; reads {w.api_reads}")
        lines.append(f"  Redis {w.redis_commands}")
        lines.append(f"  {w.load}")
    rt = result.round_trips
    if rt is not None:
        lines.append(
            f"round trips (MONITOR, {rt.seconds:.0f} s, {rt.ticks} ticks): {rt.per_tick:.2f}/tick"
            f" {rt.by_command}; commands run by scripts: {rt.script_commands_per_tick:.1f}/tick"
        )
    return "\n".join(lines)
