"""KEDA's build recipe, its pure parts: the go.mod directives copied into the wrapper module."""

from __future__ import annotations

import pytest

from devtools.keda.addon import _json_patch
from devtools.keda.build import (
    KEDA_MODULE,
    go_mod_directives,
    keda_cache_dir,
    wrapper_go_mod,
)
from devtools.localkube.build import cache_dir
from devtools.localkube.errors import BuildError, ClusterError

# The shape of KEDA 2.21.0's go.mod, with both forms of each directive and comments in between.
KEDA_GO_MOD = """module github.com/kedacore/keda/v2

go 1.26.0

// Needed replaces
// replace example.com/commented v1 => example.com/other v2
replace github.com/nexus-rpc/nexus-proto-annotations v0.1.0 => \
github.com/nexus-rpc/nexus-proto-annotations v0.1.1-0.20260629224316-835bd8d49cb4

exclude github.com/go-chi/chi/v5 v5.2.3 // vulnerable, never imported

replace (
\texample.com/a => example.com/a v1.2.3
\texample.com/b v0.1.0 => example.com/c v0.2.0 // why
)

exclude (
\texample.com/d v0.0.1
)

require (
\tk8s.io/api v0.36.4
\tk8s.io/client-go v0.36.4
)

require golang.org/x/exp v0.0.0-2025 // indirect
"""


def test_every_replace_and_exclude_is_copied_in_order_without_comments() -> None:
    assert go_mod_directives(KEDA_GO_MOD) == [
        "replace github.com/nexus-rpc/nexus-proto-annotations v0.1.0 => "
        "github.com/nexus-rpc/nexus-proto-annotations v0.1.1-0.20260629224316-835bd8d49cb4",
        "exclude github.com/go-chi/chi/v5 v5.2.3",
        "replace example.com/a => example.com/a v1.2.3",
        "replace example.com/b v0.1.0 => example.com/c v0.2.0",
        "exclude example.com/d v0.0.1",
    ]


def test_a_go_mod_without_directives_copies_nothing() -> None:
    assert go_mod_directives("module x\n\ngo 1.26.0\n\nrequire a.example v1.0.0\n") == []


@pytest.mark.parametrize("target", ["./staging/src/k8s.io/api", "../fork", "/abs/path"])
def test_a_replacement_by_a_local_directory_cannot_be_copied(target: str) -> None:
    with pytest.raises(BuildError, match="local directory"):
        go_mod_directives(f"module x\n\nreplace k8s.io/api => {target}\n")


def test_the_wrapper_requires_keda_copies_its_directives_and_builds_both_commands() -> None:
    text = wrapper_go_mod("v2.21.0", go_mod_directives(KEDA_GO_MOD), "1.26.0")
    lines = text.splitlines()
    assert lines[0] == "module blueque.local/keda"
    assert "go 1.26.0" in lines
    assert f"require {KEDA_MODULE} v2.21.0" in lines
    assert "exclude github.com/go-chi/chi/v5 v5.2.3" in lines
    assert "replace example.com/b v0.1.0 => example.com/c v0.2.0" in lines
    assert f"tool {KEDA_MODULE}/cmd/operator" in lines
    assert f"tool {KEDA_MODULE}/cmd/adapter" in lines
    # Only KEDA is required: its k8s.io versions come from its own go.mod, in its own module.
    assert "k8s.io" not in text


def test_its_cache_is_apart_from_the_control_planes() -> None:
    keda, kube = keda_cache_dir(), cache_dir()
    assert keda.parent.parent == kube.parent.parent  # both under the same cache root
    assert not keda.is_relative_to(kube) and not kube.is_relative_to(keda)
    assert "v2.21.0" in keda.name


def test_the_crd_patches_add_and_remove_as_json_patch_does() -> None:
    doc = {"a": {"required": ["x"], "props": {"gone": 1, "kept": 2}}, "l": [1, 3]}
    patched = _json_patch(
        doc,
        [
            {"op": "add", "path": "/a/required/-", "value": "protocol"},
            {"op": "add", "path": "/l/1", "value": 2},
            {"op": "add", "path": "/a/props/new~1key", "value": True},
            {"op": "remove", "path": "/a/props/gone"},
        ],
    )
    assert patched == {
        "a": {"required": ["x", "protocol"], "props": {"kept": 2, "new/key": True}},
        "l": [1, 2, 3],
    }
    assert doc["l"] == [1, 3]  # a copy was patched
    with pytest.raises(ClusterError, match="unsupported"):
        _json_patch(doc, [{"op": "move", "path": "/l/0", "from": "/l/1"}])
