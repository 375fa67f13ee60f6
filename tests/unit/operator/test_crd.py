"""The generated CRD: up to date, one source of defaults with spec.py, structural, small."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from blueque.errors import InvalidNameError
from blueque.keys import DEFAULT_NAMESPACE, validate_queue_name
from blueque_operator import crd
from blueque_operator.spec import RESERVED_ENV, ScalingSpec, TasksSpec

ANNOTATION_LIMIT = 262144  # bytes of all annotations: client-side apply stores the object there


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(crd.DEFAULT_SOURCE.read_text())
    return loaded


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 20 times faster
    loaded: dict[str, Any] = yaml.load(crd.DEFAULT_OUTPUT.read_text(), Loader=loader)
    return loaded


def version(generated: dict[str, Any]) -> dict[str, Any]:
    (only,) = generated["spec"]["versions"]
    result: dict[str, Any] = only
    return result


def spec_schema(generated: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = version(generated)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return result


def test_the_committed_crd_is_what_the_generator_writes(source: dict[str, Any]) -> None:
    assert crd.generate(source) == crd.DEFAULT_OUTPUT.read_text(), (
        "crds/bluequeue.yaml is out of date: run python -m blueque_operator.crd"
    )
    check = subprocess.run(
        [sys.executable, "-m", "blueque_operator.crd", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_committed_source_is_pruned(source: dict[str, Any]) -> None:
    # Re-pruning the pruned source changes nothing: it is a closed, description-free set.
    assert crd.dump_source(crd.prune_openapi(source)) == crd.DEFAULT_SOURCE.read_text()
    assert crd.POD_TEMPLATE_SPEC in source["components"]["schemas"]


def test_names(generated: dict[str, Any]) -> None:
    assert generated["metadata"]["name"] == "bluequeues.blueque.io"
    assert generated["spec"]["scope"] == "Namespaced"
    names = generated["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "BlueQueue",
        "bluequeues",
        ["bq"],
    )
    assert version(generated)["name"] == "v1alpha1"
    assert version(generated)["subresources"] == {"status": {}}
    columns = [c["name"] for c in version(generated)["additionalPrinterColumns"]]
    assert columns == ["Queue", "Pending", "Running", "Replicas", "Desired", "Age"]


@pytest.mark.parametrize(("section", "cls"), [("scaling", ScalingSpec), ("tasks", TasksSpec)])
def test_defaults_and_minimums_are_spec_pys(
    generated: dict[str, Any], section: str, cls: type[Any]
) -> None:
    schema = spec_schema(generated)["properties"][section]
    assert schema["default"] == {}  # so that the section's own defaults apply when it is absent
    properties = schema["properties"]
    assert set(properties) == {f.metadata["crd"] for f in fields(cls)}
    for f in fields(cls):
        prop = properties[f.metadata["crd"]]
        assert prop["default"] == f.default
        assert type(prop["default"]) is type(f.default)
        assert prop.get("minimum") == f.metadata["minimum"]


def test_key_prefix_default_is_the_librarys(generated: dict[str, Any]) -> None:
    redis = spec_schema(generated)["properties"]["redis"]["properties"]
    assert redis["keyPrefix"]["default"] == DEFAULT_NAMESPACE


def test_status_declares_every_field(generated: dict[str, Any]) -> None:
    status = version(generated)["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {
        "pending",
        "running",
        "scheduled",
        "workers",
        "replicas",
        "desiredReplicas",
        "lastScaleTime",
        "lastScaleReason",
        "scaleDown",
        "observedGeneration",
        "conditions",
    } <= set(status)
    assert set(status["scaleDown"]["properties"]) == {
        "lowDemandSince",
        "drained",
        "target",
        "deadline",
    }
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_reserved_env_rule_names_every_reserved_variable(generated: dict[str, Any]) -> None:
    rules = [
        r["rule"]
        for r in spec_schema(generated)["properties"]["worker"]["x-kubernetes-validations"]
    ]
    env_rule = next(r for r in rules if "self.env.all" in r)
    assert all(f"'{name}'" in env_rule for name in RESERVED_ENV)


def _nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node under `node` (properties, items, additionalProperties, anyOf)."""
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found.extend(_nodes(child, f"{path}.{name}"))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found.extend(_nodes(node[key], f"{path}[{key}]"))
    return found


def test_the_template_schema_is_structural_and_small(generated: dict[str, Any]) -> None:
    template = spec_schema(generated)["properties"]["worker"]["properties"]["template"]
    nodes = _nodes(template, "template")
    assert len(nodes) > 1000  # the whole PodSpec, not a stub
    for path, node in nodes:
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not {"$ref", "allOf", "oneOf"} & set(node), path
        assert not any(k.startswith("x-kubernetes-patch") for k in node), path
        if path != "template":
            assert "description" not in node, path
    containers = template["properties"]["spec"]["properties"]["containers"]
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    ports = containers["items"]["properties"]["ports"]["items"]["properties"]
    assert ports["protocol"]["default"] == "TCP"  # a list-map key that is not required
    assert "default" not in ports["containerPort"]  # a Go zero value, dropped
    cpu = containers["items"]["properties"]["resources"]["properties"]["limits"]
    assert cpu["additionalProperties"]["x-kubernetes-int-or-string"] is True
    labels = template["properties"]["metadata"]["properties"]["labels"]
    assert labels == {"type": "object", "additionalProperties": {"type": "string"}}
    compact = json.dumps(generated, separators=(",", ":"))
    assert len(compact) < ANNOTATION_LIMIT // 2


def test_conversion_of_native_idioms() -> None:
    schemas = {
        crd.POD_TEMPLATE_SPEC: {
            "type": "object",
            "description": "dropped",
            "properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/Spec"}], "default": {}},
            },
        },
        "Spec": {
            "type": "object",
            "x-kubernetes-unions": [{}],
            "properties": {
                "port": {
                    "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
                },
                "size": {
                    "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"
                },
                "items": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "proto"],
                    "x-kubernetes-patch-merge-key": "name",
                    "items": {"$ref": "#/components/schemas/Item"},
                },
            },
        },
        "Item": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "default": ""},
                "proto": {"type": "string", "default": "TCP", "enum": ["TCP", "UDP"]},
            },
        },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"format": "int-or-string"},
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}]},
        "Unused": {"type": "string"},
    }
    pruned = crd.prune_openapi({"components": {"schemas": schemas}})
    assert "Unused" not in pruned["components"]["schemas"]
    assert "description" not in json.dumps(pruned)
    schema = crd.pod_template_schema(pruned)
    spec = schema["properties"]["spec"]
    assert "x-kubernetes-unions" not in spec and "default" not in spec
    assert spec["properties"]["port"] == {"x-kubernetes-int-or-string": True}
    assert spec["properties"]["size"]["x-kubernetes-int-or-string"] is True
    items = spec["properties"]["items"]
    assert "x-kubernetes-patch-merge-key" not in items
    assert items["items"]["properties"] == {
        "name": {"type": "string"},  # required: its zero-value default goes
        "proto": {"type": "string", "default": "TCP", "enum": ["TCP", "UDP"]},
    }


def test_conversion_refuses_what_a_crd_cannot_say() -> None:
    recursive = {
        crd.POD_TEMPLATE_SPEC: {"type": "object", "properties": {"a": {"$ref": "#/x/A"}}},
        "A": {"type": "object", "properties": {"again": {"$ref": "#/x/A"}}},
    }
    with pytest.raises(ValueError, match="recursive schema"):
        crd.pod_template_schema({"components": {"schemas": recursive}})
    untyped: dict[str, Any] = {crd.POD_TEMPLATE_SPEC: {"properties": {}}}
    with pytest.raises(ValueError, match="without a type"):
        crd.pod_template_schema({"components": {"schemas": untyped}})


# Go's regexp (the API server's) anchors `$` at the very end; Python's `$` also before a
# trailing newline, so the comparison uses \Z.
QUEUE_RE = re.compile(crd.QUEUE_PATTERN.removesuffix("$") + r"\Z")


def crd_accepts_queue(name: str) -> bool:
    return 1 <= len(name) <= 200 and QUEUE_RE.match(name) is not None


def library_accepts_queue(name: str) -> bool:
    try:
        validate_queue_name(name)
    except InvalidNameError:
        return False
    return True


@pytest.mark.parametrize(
    "name", ["videos", "a.b_c-1", "x" * 200, "x" * 201, "", "a b", "a{b}", "a:b", "é", "ok\n"]
)
def test_queue_pattern_is_the_librarys(name: str) -> None:
    assert crd_accepts_queue(name) == library_accepts_queue(name)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(alphabet=st.characters(codec="ascii") | st.sampled_from("é{}"), max_size=210))
def test_queue_pattern_is_the_librarys_for_any_text(name: str) -> None:
    assert crd_accepts_queue(name) == library_accepts_queue(name)
