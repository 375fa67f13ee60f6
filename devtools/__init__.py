"""Development tools: local servers and processes for the tests, the demo and the benchmarks.

Not part of the blueque wheel (pyproject's package list names `blueque*` only), and nothing in
`blueque/` imports it. What lives here:

- `devtools.processes`: the one way to start a process, stop it by pid, and wait for a condition;
- `devtools.redis_servers`: a local redis-server and a 3-master Redis Cluster;
- `devtools.localkube`: a real local Kubernetes control plane (`python -m devtools.localkube`);
- `devtools.podrunner`: a stand-in kubelet that runs the worker pods on KWOK nodes as host
  processes (`python -m devtools.podrunner`);
- `devtools.soak`: real workers under chaos, every task accounted for (`python -m devtools.soak`);
- `devtools.fixtures`: the pytest fixtures over those, loaded once by `tests/conftest.py`.
"""
