"""Finding a process's children, both ways the worker may have to (Linux /proc)."""

from __future__ import annotations

import subprocess

from blueque.process_tree import children, listed_children, scanned_children


def test_children_are_found_by_listing_and_by_scanning() -> None:
    sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    try:
        pids = {p.pid for p in sleepers}
        assert pids <= children()
        assert pids <= listed_children()
        assert pids <= scanned_children()
    finally:
        for p in sleepers:
            p.kill()
            p.wait(10)
