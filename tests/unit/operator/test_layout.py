"""The operator's package layout: installed as `blueque_operator`, never shadowing `operator`."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import sysconfig
from pathlib import Path

import blueque_operator
from blueque_operator.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_the_standard_library_operator_module_is_not_shadowed() -> None:
    # From the repository root, with both the root and operator/ on the path (as pytest has
    # them), `import operator` must still find the standard library's module.
    probe = "import operator, sys; print(operator.__file__); print(operator.itemgetter(1)('ab'))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'operator'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    path, item = result.stdout.split()
    assert Path(path).parent == Path(sysconfig.get_paths()["stdlib"])
    assert item == "b"
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_the_package_lives_in_operator_dir() -> None:
    assert Path(blueque_operator.__file__).parent == ROOT / "operator" / "blueque_operator"


def test_console_script_points_at_the_cli() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="blueque-operator")
    assert script.load() is main
