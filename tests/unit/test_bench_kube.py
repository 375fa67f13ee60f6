"""The pure parts of the operator benchmarks (bench/kube): what they compute from what they read."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.kube.fleet import _bucket_quantile, operator_requests


def test_bucket_quantile_interpolates_within_the_bucket() -> None:
    # 10 ticks <= 1 ms, 10 more <= 5 ms, none slower.
    buckets = {0.001: 10.0, 0.005: 20.0, math.inf: 20.0}
    assert _bucket_quantile(buckets, 0.5) == 0.001
    assert math.isclose(_bucket_quantile(buckets, 0.75), 0.003)
    assert math.isnan(_bucket_quantile({0.001: 0.0, math.inf: 0.0}, 0.5))


def test_operator_requests_counts_only_the_operators_agents(tmp_path: Path) -> None:
    def line(agent: str, verb: str, resource: str, sub: str = "") -> str:
        ref = {"resource": resource, **({"subresource": sub} if sub else {})}
        return json.dumps({"userAgent": agent, "verb": verb, "objectRef": ref})

    log = tmp_path / "audit.log"
    earlier = line("OpenAPI-Generator/35.0.0/python", "patch", "pods") + "\n"
    lines = [
        line("OpenAPI-Generator/35.0.0/python", "patch", "bluequeues", "status"),
        line("OpenAPI-Generator/35.0.0/python", "patch", "bluequeues", "status"),
        line("kopf/1.38", "list", "pods"),
        line("kube-controller-manager/v1.36.3", "update", "replicasets", "status"),
        line("localkube", "get", "pods"),
    ]
    log.write_text(earlier + "\n".join(lines) + "\n")
    found = operator_requests(log, len(earlier), log.stat().st_size)
    assert found == {("patch", "bluequeues/status"): 2, ("list", "pods"): 1}
