"""Every error the operator raises on purpose, under the library's `BluequeError`.

A `SpecError` is the user's to fix (it becomes a condition and an Event on the BlueQueue, never a
crash or a retry loop); the handlers will map the library's errors to retries or give-ups.
"""

from __future__ import annotations

from blueque.errors import BluequeError


class OperatorError(BluequeError):
    """Base class of the operator's own errors."""


class SpecError(OperatorError, ValueError):
    """A BlueQueue spec the operator cannot act on (what the CRD schema could not refuse)."""


class KubeError(OperatorError):
    """The API server refused a call or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotLeaderError(OperatorError, RuntimeError):
    """This operator replica does not hold the leader Lease, so it must not write."""
