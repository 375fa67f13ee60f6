"""The pytest fixtures over devtools, loaded once by `tests/conftest.py` (`pytest_plugins`).

Redis: `redis_server` and `redis_cluster` start once per session; `redis_url`, `backend_url`,
`client` and `client_standalone` hand each test a flushed server. `backend_url` (and so
`client`) is parametrized over a standalone server and a 3-master Redis Cluster, so every
protocol test runs on both.

Kubernetes: `kube_cluster` is one local control plane per session, started only by the tests
that ask for it; `kubeconfig`, `kube_admin` and `kube_namespace` (a fresh namespace per test)
build on it, and `pod_runner` runs the namespace's worker pods as host processes. Missing
binaries fail the test with the command that builds them; they never
skip it.

A browser: `browser` (Debian's Chromium under Playwright, devtools/browser.py), `page` (fails
its test on any console error) and `shots` (screenshots kept in test-output/browser/).

Load this module only through `pytest_plugins` in the root conftest: a fixture module imported
by two conftests defines its fixtures twice (and would start two of each server).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blueque import Client
from devtools.browser import INSTALL, SHOTS, Screenshots, chromium_path, versions
from devtools.localkube.api import ApiClient, Json
from devtools.localkube.build import find_binaries
from devtools.localkube.cluster import LocalCluster
from devtools.localkube.errors import ApiError, MissingBinariesError
from devtools.operator_runs import CRDS, Operators, operators
from devtools.podrunner import PodRunner, RunnerOptions
from devtools.redis_servers import RedisCluster, RedisServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

# -- Redis --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A flushed standalone server's URL."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(params=["standalone", "cluster"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """A flushed server's URL: standalone, then a 3-master cluster."""
    if request.param == "standalone":
        url: str = request.getfixturevalue("redis_url")
        return url
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.flush()
    return cluster.url


@pytest.fixture
def client(backend_url: str) -> Iterator[Client]:
    """A client of each flushed server in turn (standalone, cluster)."""
    with Client(backend_url) as c:
        yield c


@pytest.fixture
def client_standalone(redis_url: str) -> Iterator[Client]:
    """A client of the flushed standalone server (for tests that need no cluster run)."""
    with Client(redis_url) as c:
        yield c


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running control plane with 3 Ready KWOK nodes, stopped when the session ends."""
    try:
        binaries = find_binaries()
    except MissingBinariesError as exc:
        pytest.fail(str(exc), pytrace=False)
    cluster = LocalCluster(tmp_path_factory.mktemp("localkube"), binaries=binaries)
    cluster.start()  # stops whatever it started if it fails
    try:
        yield cluster
    finally:
        # The logs stay in pytest's temporary directory (which keeps the last few runs).
        cluster.stop(remove_state=False)


@pytest.fixture(scope="session")
def kubeconfig(kube_cluster: LocalCluster) -> Path:
    """Path of the admin kubeconfig (group system:masters) for kubectl, Kopf or any client."""
    return kube_cluster.kubeconfig


@pytest.fixture
def kube_admin(kube_cluster: LocalCluster) -> ApiClient:
    """A REST client authenticated as the cluster admin."""
    return kube_cluster.admin_client()


@pytest.fixture
def kube_namespace(kube_admin: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (deletion is not awaited)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    kube_admin.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    try:
        yield name
    finally:
        try:
            kube_admin.delete(f"/api/v1/namespaces/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def pod_runner(
    kube_admin: ApiClient, kube_namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[PodRunner]:
    """Runs the worker pods (`app.kubernetes.io/name=blueque-worker`) of `kube_namespace` as host
    processes, in the test module's directory (so `--task module:function` imports a task
    module that sits next to the test), logs in tmp_path/pods. Closed before the namespace is
    deleted: every process stopped, every finalizer released."""
    options = RunnerOptions(
        log_dir=tmp_path / "pods", namespaces=(kube_namespace,), cwd=request.path.parent
    )
    with PodRunner(kube_admin, options) as runner:
        yield runner


@pytest.fixture(scope="session")
def bluequeue_crd(kube_cluster: LocalCluster) -> Json:
    """The BlueQueue CRD from crds/, applied once and established; it stays for the session
    (re-creating a CRD races with the API server's teardown of the old one)."""
    kube_cluster.kubectl("apply", "-f", str(CRDS))
    admin = kube_cluster.admin_client()
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bluequeues.blueque.io"
    found = admin.wait_for(
        path,
        lambda obj: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        ),
        what="the BlueQueue CRD to be established",
    )
    admin.wait_for("/apis/blueque.io/v1alpha1/bluequeues", lambda _: True, what="its endpoint")
    return found


@pytest.fixture
def operator_runs(
    kubeconfig: Path, bluequeue_crd: Json, tmp_path: Path, pod_runner: PodRunner
) -> Iterator[Operators]:
    """Starts `blueque-operator` processes (`operator_runs.start([namespace], ...)`), stopped
    (by pid) before the pod runner and the namespace go."""
    with operators(kubeconfig, tmp_path / "operators") as runs:
        yield runs


# -- a real browser (devtools/browser.py) -------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> str:
    return f"browser tests: {versions()}; screenshots in {SHOTS}"


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium under the pinned Playwright; a missing browser fails the test with
    the command that installs it. One per test (half a second): Playwright's sync API runs an
    event loop in the test's thread while it is open, and `asyncio.run` in a later test
    would refuse to start under it."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        pytest.fail(f"Chromium is not installed: {INSTALL}", pytrace=False)
    with sync_playwright() as playwright:
        # As root (CI, containers) Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(request.node.name)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that accepts confirm() dialogs and fails the test on any console error
    (a CSP violation, a script error)."""
    context = browser.new_context(viewport={"width": 1300, "height": 800})
    new = context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # The event stream is cut when the test stops the dashboard: not the page's fault.
        if message.type == "error" and "ERR_INCOMPLETE_CHUNKED_ENCODING" not in message.text:
            errors.append(message.text)

    new.on("console", console)
    new.on("pageerror", lambda exc: errors.append(str(exc)))
    new.on("dialog", lambda dialog: dialog.accept())
    try:
        yield new
    finally:
        context.close()
    assert errors == [], errors
