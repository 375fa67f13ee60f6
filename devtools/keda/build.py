"""Builds KEDA's operator and metrics adapter from Go modules, once, into a cache of their own.

`go install github.com/kedacore/keda/v2/cmd/operator@v2.21.0` is refused: KEDA's go.mod has a
`replace` and an `exclude`, and Go ignores both in a dependency. So, as for the control plane,
a small wrapper module requires KEDA and copies those directives from *that release's* go.mod
(read through `go mod download -json`, never hard-coded: `go_mod_directives`), with `tool`
lines for `cmd/operator` and `cmd/adapter`; `go mod tidy`, then one `go build`.

It is a module and a cache directory of its own, never a part of the control plane's: KEDA
2.21.0 needs the k8s.io 0.36.4 libraries, and minimal version selection in a shared module would
lift the control plane's 0.36.3 build with it. GOMODCACHE and GOCACHE are Go's defaults, shared.
Nothing here runs in `./dev test`: the benchmark builds it on demand (about 6.5 minutes on two
cores when the modules are downloaded), and a stamp file makes every later call a no-op.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.localkube.build import (
    build_once,
    cache_root,
    download_module,
    go_build_with_progress,
    go_tool,
    run_go,
    say,
)
from devtools.localkube.errors import BuildError, MissingBinariesError

__all__ = [
    "KEDA_MODULE",
    "KEDA_VERSION",
    "KedaBinaries",
    "build_keda",
    "find_keda",
    "go_mod_directives",
    "keda_cache_dir",
    "wrapper_go_mod",
]

KEDA_MODULE = "github.com/kedacore/keda/v2"
KEDA_VERSION = "v2.21.0"
#: Bumped when the recipe (flags, binaries) changes, so that an old cache is not reused.
_RECIPE = 1

#: Main packages, and the name each binary gets (Go would call both after their folder).
_PACKAGES = {
    f"{KEDA_MODULE}/cmd/operator": "keda-operator",
    f"{KEDA_MODULE}/cmd/adapter": "keda-adapter",
}
_STAMP = ".complete"
_WHO = "keda"


@dataclass(frozen=True)
class KedaBinaries:
    """The two binaries and a copy of the release's `config/` (CRDs, RBAC, APIService)."""

    operator: Path
    adapter: Path
    config: Path
    version: str


def keda_cache_dir(version: str = KEDA_VERSION) -> Path:
    """`<cache_root>/keda/keda-<version>_r<recipe>`, beside (never inside) the control plane's."""
    return cache_root() / "keda" / f"keda-{version}_r{_RECIPE}"


def find_keda(version: str = KEDA_VERSION) -> KedaBinaries:
    """The built binaries, or MissingBinariesError saying how to build them."""
    base = keda_cache_dir(version)
    stamp = base / "bin" / _STAMP
    if not stamp.is_file():
        raise MissingBinariesError(
            f"KEDA {version} is not built in {base}: run `python -m devtools.keda build` "
            "(about 6.5 minutes on two cores; `./dev bench operator` does it)"
        )
    return KedaBinaries(
        operator=base / "bin" / "keda-operator",
        adapter=base / "bin" / "keda-adapter",
        config=base / "bin" / "config",
        version=version,
    )


def build_keda(version: str = KEDA_VERSION, *, jobs: int | None = None) -> KedaBinaries:
    """Build whatever is missing; returns at once (no `go` started) when the stamp is there."""
    return build_once(
        lambda: find_keda(version),
        keda_cache_dir(version),
        lambda base: _build_locked(version, base, jobs=jobs),
    )


_DIRECTIVE = re.compile(r"^(replace|exclude)\s*(\(\s*)?(.*)$")


def go_mod_directives(go_mod: str) -> list[str]:
    """Every `replace` and `exclude` of a go.mod, one per line in single-line form, in order.

    Both forms are read (`replace a v => b v` and `replace ( ... )` blocks); comments are
    dropped. A replacement by a local directory (`=> ../x`) names a folder of KEDA's own
    checkout that a wrapper module does not have: BuildError.
    """
    found: list[str] = []
    block: str | None = None
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block is not None:
            if line == ")":
                block = None
            else:
                found.append(f"{block} {line}")
            continue
        match = _DIRECTIVE.match(line)
        if match is None:
            continue
        verb, opens, rest = match.groups()
        if opens:
            block = verb
            if rest.strip():  # `replace ( a v => b v )` on one line is not valid go.mod
                raise BuildError(f"unexpected text after `{verb} (`: {raw!r}")
        else:
            found.append(f"{verb} {rest.strip()}")
    for directive in found:
        if directive.startswith("replace"):
            target = directive.split("=>", 1)[1].strip()
            if target.startswith((".", "/")):
                raise BuildError(f"cannot copy a replacement by a local directory: {directive}")
    return found


def wrapper_go_mod(version: str, directives: list[str], go_version: str) -> str:
    """The wrapper module: KEDA required, its directives copied, its two commands as tools."""
    lines = [
        "module blueque.local/keda",
        "",
        f"go {go_version}",
        "",
        f"require {KEDA_MODULE} {version}",
        "",
        *directives,
        "",
        *(f"tool {pkg}" for pkg in _PACKAGES),
    ]
    return "\n".join(lines) + "\n"


def _go_version(go_mod: str) -> str:
    match = re.search(r"^go\s+(\S+)\s*$", go_mod, re.M)
    if match is None:
        raise BuildError("KEDA's go.mod has no `go` line")
    return match.group(1)


def _build_locked(version: str, base: Path, *, jobs: int | None) -> None:
    go = go_tool()
    src = base / "src"
    src.mkdir(exist_ok=True)
    log = base / "build.log"
    started = time.monotonic()
    say(f"building KEDA {version} into {base} (log: {log})", _WHO)

    keda = download_module(go, f"{KEDA_MODULE}@{version}", src)
    keda_go_mod = Path(keda["GoMod"]).read_text()
    go_mod = wrapper_go_mod(version, go_mod_directives(keda_go_mod), _go_version(keda_go_mod))
    generated = src / "go.mod.generated"  # `go mod tidy` rewrites go.mod: compare with this
    if not generated.is_file() or generated.read_text() != go_mod:
        (src / "go.mod").write_text(go_mod)
        (src / "go.sum").unlink(missing_ok=True)
        generated.write_text(go_mod)
    run_go([go, "mod", "tidy"], src, log)

    partial = base / "bin.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    stamp = version.removeprefix("v")
    version_pkg = f"{KEDA_MODULE}/version"
    ldflags = f"-s -w -X {version_pkg}.Version={stamp} -X {version_pkg}.GitCommit={version}"
    cmd = [go, "build", "-v", "-p", str(jobs or 2), "-ldflags", ldflags, "-o", f"{partial}/"]
    go_build_with_progress([*cmd, *_PACKAGES], src, log, started, _WHO)
    for pkg, name in _PACKAGES.items():
        produced = partial / pkg.rsplit("/", 1)[1]
        if not produced.is_file():
            raise BuildError(f"go build did not produce {produced.name} (from {pkg})")
        produced.rename(partial / name)
    # The manifests, copied as text (the module cache's files and folders are read-only).
    source = Path(keda["Dir"]) / "config"
    for path in sorted(source.rglob("*.yaml")):
        copy = partial / "config" / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text())
    record = {"version": version, "built_at": time.time()}
    (partial / _STAMP).write_text(json.dumps(record))
    final = base / "bin"
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    say(f"built KEDA {version} in {time.monotonic() - started:.0f} s", _WHO)
