"""blueque.maintenance's pure parts."""

from __future__ import annotations

import pytest

from blueque.maintenance import valid_names


def test_valid_names_leave_out_stray_registry_entries(caplog: pytest.LogCaptureFixture) -> None:
    """One rule for the CLI's and the dashboard's queue lists: a registry entry that is no
    valid queue name is left out and logged, the others keep their order."""
    with caplog.at_level("INFO", logger="blueque"):
        assert valid_names(["b.q", "bad{name}", "a.q", ""]) == ["b.q", "a.q"]
    assert "bad{name}" in caplog.text
