"""`blueque-operator`'s options."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from blueque_operator.cli import parse_options
from blueque_operator.options import DEFAULT_METRICS_PORT


def test_repeatable_namespaces() -> None:
    options = parse_options(["-n", "jobs", "--namespace", "batch", "-n", "jobs"])
    assert options.namespaces == ("jobs", "batch")
    assert options.metrics_port == 8000
    assert not options.all_namespaces


def test_all_namespaces_and_metrics_port() -> None:
    options = parse_options(["--all-namespaces", "--metrics-port", "9100"])
    assert options.all_namespaces
    assert options.metrics_port == 9100
    assert parse_options(["-A"]).metrics_port == DEFAULT_METRICS_PORT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], r"give --namespace NS \(repeatable\) or --all-namespaces"),
        (["-A", "-n", "jobs"], "not both"),
        (["-n", "Jobs_1"], "not a Kubernetes namespace name"),
        (["-A", "--metrics-port", "70000"], "70000"),
    ],
)
def test_bad_options(args: list[str], message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        parse_options(args)


def test_the_lease_lives_in_the_pods_namespace_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert parse_options(["-A"]).lease_namespace == "default"
    monkeypatch.setenv("POD_NAMESPACE", "blueque-system")
    options = parse_options(["-A", "--lease-name", "ops"])
    assert (options.lease_namespace, options.lease_name) == ("blueque-system", "ops")
    assert parse_options(["-A", "--lease-namespace", "mine"]).lease_namespace == "mine"
    with pytest.raises(click.UsageError, match="not a Kubernetes namespace name"):
        parse_options(["-A", "--lease-namespace", "Not_One"])


def test_the_command_reports_usage_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blueque_operator"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--all-namespaces" in result.stderr
    assert "Traceback" not in result.stderr
