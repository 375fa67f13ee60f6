"""The fixtures shared by every test come from devtools, loaded once here for the whole suite:
real Redis servers (`redis_url`, `client`, ...) and the local Kubernetes control plane
(`kube_cluster`, `kube_namespace`, ...); see devtools/fixtures.py."""

from __future__ import annotations

import signal

import pytest

pytest_plugins = ["devtools.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # A run started with SIGINT ignored (a shell's background job: `./dev test &`) would pass
    # that on to every process the tests start, and Python installs no KeyboardInterrupt
    # handler where SIGINT is ignored: a test that stops a child with SIGINT would wait in
    # vain. Run as in the foreground; exec resets a handled signal to its default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
