"""The chart's files that come from elsewhere in the repository stay equal to their source:
the CRD (generated, as crds/bluequeue.yaml is) and the version (the Python package's)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

from blueque_operator import crd

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "blueque"


def test_the_charts_crd_is_the_generated_one() -> None:
    expected = crd.generate(json.loads(crd.DEFAULT_SOURCE.read_text()))
    chart_copy = CHART / "crds" / crd.DEFAULT_OUTPUT.name
    assert chart_copy.read_text() == expected, (
        "charts/blueque/crds/bluequeue.yaml is out of date: run python -m blueque_operator.crd"
        " --output charts/blueque/crds/bluequeue.yaml"
    )
    assert [p.name for p in (CHART / "crds").iterdir()] == [crd.DEFAULT_OUTPUT.name]


def test_the_chart_and_the_image_tag_follow_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (version, version)
