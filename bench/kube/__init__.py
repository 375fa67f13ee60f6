"""Benchmarks of the Kubernetes operator, on the local control plane (issue 9, "Measure").

`python -m bench.kube` starts its own control plane (`devtools.localkube`, KWOK nodes), its own
redis-server and the operator as a host process (`devtools.operator_runs`), runs the
measurements below, prints their numbers and stops everything it started by pid:

- `scaleup` (`scaling.py`): an enqueue burst to the Deployment's new `spec.replicas`, seen by a
  watch, at two poll intervals;
- `requeue` (`scaling.py`): a force-deleted busy pod to its task's `requeued` event;
- `busy` (`busy.py`): a plain Deployment scaled down with busy workers, beside a BlueQueue;
- `fleet` (`fleet.py`): one operator, 200 BlueQueues, 1,000 pods with simulated workers: tick
  duration, CPU, RSS, Redis commands and API writes per tick.

Run by hand, never by the test suite (it takes minutes and wants a quiet machine). Modules:
`env` (the cluster, Redis, operators, pod runners), `recording` (watch and event recorders),
`tasks` (the worker pods' task function), `apimetrics` (the API server's request counters),
`svg` (the plot), `__main__` (the command line and the report).
"""
