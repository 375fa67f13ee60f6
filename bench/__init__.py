"""Benchmarks: Blueque against python-rq and Huey on one redis-server, in one run.

`python -m bench` (or `./dev bench`) starts its own redis-server on a free loopback port,
measures each system in turn (interleaved, several rounds, with and without hiredis,
medians reported) and prints the comparison table of issue 11 with its goals, then every
figure. Only ratios within one run mean much: the machine is small and shared, absolute
numbers drift with its load, which is printed too.

Modules: `harness` (Redis, worker subprocesses, timing helpers), one module per system
(`blueque_system`, `rq_system`, `huey_system`), `round` (one round of measurements, in a
process of its own), `report` (tables, goals) and `__main__` (the command line, the rounds);
`server_cost` (server time per script) and `scale` (how the costs grow) are commands of
their own. `bench.kube` measures the Kubernetes operator on the local control plane
(`python -m bench.kube`), `bench.scaling` runs it side by side with KEDA (`./dev bench
operator`).

Importing this package first (every `python -m bench...` does) applies `BENCH_HIREDIS=off`:
redis-py then finds no hiredis and parses replies in Python, in the benchmark process and
in every worker it starts (they inherit the variable).
"""

import os
import sys

HIREDIS_ENV = "BENCH_HIREDIS"

if os.environ.get(HIREDIS_ENV) == "off":
    sys.modules["hiredis"] = None  # type: ignore[assignment]  # import hiredis now fails
