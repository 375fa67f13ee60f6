"""What the operator process is told to do: its options, as the CLI parses them and `app.serve`
runs them (a module of its own so that the CLI does not load Kopf to parse them)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_METRICS_PORT = 8000
DEFAULT_LEASE_NAME = "blueque-operator"
POD_NAMESPACE_ENV = "POD_NAMESPACE"
"""The operator pod's namespace (downward API): the Lease's default namespace."""


@dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...]
    """Namespaces to watch; empty means every namespace (`--all-namespaces`)."""
    metrics_port: int
    """Port of the Prometheus endpoint; 0 turns it off."""
    lease_namespace: str = "default"
    """Where the leader election's Lease lives (the operator's own namespace)."""
    lease_name: str = DEFAULT_LEASE_NAME

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces
