"""The fixtures shared by every test come from devtools, loaded once here for the whole suite:
real Redis servers (`redis_url`, `client`, ...) and the local Kubernetes control plane
(`kube_cluster`, `kube_namespace`, ...); see devtools/fixtures.py."""

pytest_plugins = ["devtools.fixtures"]
