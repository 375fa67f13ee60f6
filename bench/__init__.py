"""Benchmarks: Blueque against python-rq and Huey on one redis-server, in one run.

`python -m bench` (or `./dev bench`) starts its own redis-server on a free loopback port,
measures each system in turn (interleaved, several rounds, medians reported) and prints the
absolute numbers and the ratios the targets of issue 4 are stated in. Only ratios within one
run mean anything: the machine is small and shared, absolute numbers drift.

Modules: `harness` (Redis, worker subprocesses, timing helpers), one module per system
(`blueque_system`, `rq_system`, `huey_system`), `report` (table, targets, JSON) and
`__main__` (the command line and the order of measurements). `bench.kube` measures the
Kubernetes operator on the local control plane (`python -m bench.kube`).
"""
