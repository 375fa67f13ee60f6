"""KEDA as an on-demand add-on to the local control plane, for the operator benchmark.

`devtools.keda.build` compiles KEDA's operator and metrics adapter from Go modules into a cache
of their own (never during `./dev test`); `devtools.keda.addon` starts them as host processes
against a `LocalCluster`, under KEDA's own service account and published RBAC. See
docs/benchmarks.md ("Scaling against KEDA").
"""

from devtools.keda.addon import Keda, keda_certificates
from devtools.keda.build import KEDA_VERSION, KedaBinaries, build_keda, find_keda

__all__ = ["KEDA_VERSION", "Keda", "KedaBinaries", "build_keda", "find_keda", "keda_certificates"]
