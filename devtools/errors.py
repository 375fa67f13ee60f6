"""Errors of the development tools; `devtools.localkube` derives its own from `DevtoolsError`."""

from __future__ import annotations

__all__ = ["DevtoolsError", "ProcessError", "WaitTimeoutError"]


class DevtoolsError(Exception):
    """Base of every error raised by devtools."""


class ProcessError(DevtoolsError):
    """A process could not be started, or survived SIGKILL."""


class WaitTimeoutError(DevtoolsError, TimeoutError):
    """A condition did not come true in time; the message says which, and what was last seen."""
