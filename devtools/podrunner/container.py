"""What one container of a pod would run: its argv and its environment, as the kubelet builds them.

Pure functions of the pod object plus a reader of Secrets and ConfigMaps, so they are unit-tested
without a cluster. The rules follow the kubelet's:

- `envFrom` first (ConfigMaps and Secrets, each key under the optional prefix), then `env` in
  order; a literal `value` may refer to variables defined before it as `$(NAME)` (`$$` escapes
  a `$`; an unknown reference is left as written), `valueFrom` is taken as is;
- `valueFrom.fieldRef`: metadata.name, metadata.namespace, metadata.uid,
  metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName,
  status.hostIP(s), status.podIP(s);
- `valueFrom.secretKeyRef` / `configMapKeyRef`: a missing object or key is a
  `ContainerConfigError` (the kubelet's CreateContainerConfigError) unless `optional: true`,
  which leaves the variable out;
- the argv is `command` (default: the image's entrypoint, `blueque worker`, the worker image's)
  followed by `args`, each expanded against the final environment.

Not emulated: `resourceFieldRef` (the runner has no resources to report; it is an error, so a
test that depends on it finds out), the image's own environment, and service link variables.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devtools.podrunner.errors import ContainerConfigError

__all__ = [
    "DEFAULT_ENTRYPOINT",
    "ReadObject",
    "container_argv",
    "container_env",
    "expand",
    "select_container",
]

Json = dict[str, Any]

ReadObject = Callable[[str, str, str], Json | None]
"""(kind "Secret" or "ConfigMap", namespace, name) -> the object, None when it does not exist."""

DEFAULT_ENTRYPOINT: tuple[str, ...] = ("blueque", "worker")
"""The worker image's entrypoint, run when a container gives no `command`."""

_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


def select_container(pod: Json, name: str | None = None) -> Json:
    """The container the runner plays: the one named `name`, else "worker", else the first."""
    containers: list[Json] = pod["spec"].get("containers") or []
    if not containers:
        raise ContainerConfigError("the pod has no containers")
    wanted = name or "worker"
    for container in containers:
        if container.get("name") == wanted:
            return container
    if name is not None:
        raise ContainerConfigError(f"the pod has no container named {name!r}")
    return containers[0]


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` replaced by its value in `env`, as Kubernetes expands env values, commands and
    args: `$$` is a literal `$`; an unknown name, or a `$(` never closed, stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]) if name else text[i : end + 1])
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def container_env(
    pod: Json, container: Json, read: ReadObject, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The container's environment: `base` (what the image would set), then `envFrom`, then
    `env`. ContainerConfigError when a reference cannot be resolved."""
    namespace: str = pod["metadata"].get("namespace", "default")
    cache: dict[tuple[str, str], Json | None] = {}

    def lookup(kind: str, name: str) -> Json | None:
        if (kind, name) not in cache:
            cache[kind, name] = read(kind, namespace, name)
        return cache[kind, name]

    env = dict(base or {})
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, namespace, lookup))
    for var in container.get("env") or []:
        name: str = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        value = _value_from(pod, var["valueFrom"], namespace, lookup, name)
        if value is not None:
            env[name] = value
    return env


def container_argv(
    container: Json,
    env: Mapping[str, str],
    *,
    entrypoint: Sequence[str] = DEFAULT_ENTRYPOINT,
    bin_dir: Path | None = None,
) -> list[str]:
    """`command` (default `entrypoint`) + `args`, expanded against `env`, with a bare program
    name looked up first in `bin_dir` (the venv's scripts: `blueque`, `python`), then in the
    environment's PATH."""
    argv = [
        expand(str(word), env)
        for word in [*(container.get("command") or entrypoint), *(container.get("args") or [])]
    ]
    if not argv or not argv[0]:
        raise ContainerConfigError("the container has no command")
    program = argv[0]
    if "/" not in program:
        found = None
        if bin_dir is not None and (bin_dir / program).is_file():
            found = str(bin_dir / program)
        found = found or shutil.which(program, path=env.get("PATH"))
        if found is None:
            raise ContainerConfigError(f'exec: "{program}": executable file not found in $PATH')
        argv[0] = found
    return argv


def _env_from(
    source: Json, namespace: str, lookup: Callable[[str, str], Json | None]
) -> dict[str, str]:
    prefix = str(source.get("prefix") or "")
    if "configMapRef" in source:
        kind, ref = "ConfigMap", source["configMapRef"]
    elif "secretRef" in source:
        kind, ref = "Secret", source["secretRef"]
    else:
        raise ContainerConfigError(f"envFrom source not emulated: {sorted(source)}")
    obj = lookup(kind, ref["name"])
    if obj is None:
        if ref.get("optional"):
            return {}
        raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    # Keys that cannot be variable names are skipped, as the kubelet does (with an Event).
    return {prefix + key: value for key, value in _decoded(kind, obj).items() if "=" not in key}


def _value_from(
    pod: Json,
    value_from: Json,
    namespace: str,
    lookup: Callable[[str, str], Json | None],
    var_name: str,
) -> str | None:
    if "fieldRef" in value_from:
        return _field(pod, value_from["fieldRef"]["fieldPath"])
    for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        if field not in value_from:
            continue
        ref: Json = value_from[field]
        obj = lookup(kind, ref["name"])
        if obj is None:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        data = _decoded(kind, obj)
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(
                f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}"
            )
        return data[ref["key"]]
    raise ContainerConfigError(
        f"{var_name}: valueFrom {sorted(value_from)} is not emulated by the pod runner"
    )


def _field(pod: Json, path: str) -> str:
    metadata: Json = pod["metadata"]
    spec: Json = pod.get("spec") or {}
    status: Json = pod.get("status") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    keyed = _FIELD_KEY.match(path)
    if keyed:
        values: Json = metadata.get(keyed.group(1)) or {}
        return str(values.get(keyed.group(2), ""))
    raise ContainerConfigError(f"fieldRef {path!r} is not supported in env")


def _decoded(kind: str, obj: Json) -> dict[str, str]:
    """A Secret's or ConfigMap's data as text (Secret values and binaryData are base64)."""
    data: dict[str, str] = {}
    if kind == "ConfigMap":
        data.update(obj.get("data") or {})
        encoded: Json = obj.get("binaryData") or {}
    else:
        data.update(obj.get("stringData") or {})
        encoded = obj.get("data") or {}
    for key, value in encoded.items():
        data[key] = base64.b64decode(value).decode(errors="replace")
    return data
