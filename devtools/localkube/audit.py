"""The API server's audit log, opt-in, and counting its requests per user.

A benchmark asks "how many API writes did this scaler cost?": the audit log answers it from the
server's side, per authenticated user, whatever client library made the call. The policy logs
every request but watches (one event per watch, whatever it carries, would count nothing useful)
at the Metadata level, once, when the response is complete: enough to tell who did what to
which resource, without bodies. `AuditLog.offset()` marks a point in the file, so one log serves
several measurements run one after another.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NOT_STORED", "POLICY", "WRITE_VERBS", "AuditCounts", "AuditLog"]

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted", "Panic"]
rules:
  - level: None
    verbs: ["watch"]
  - level: Metadata
"""

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

#: Created but never stored: questions to the API server (an extension server's delegated
#: authentication and authorization, a TokenRequest). Counted as reads, not writes.
NOT_STORED = frozenset(
    {
        "tokenreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "selfsubjectreviews",
        "serviceaccounts/token",
    }
)


@dataclass
class AuditCounts:
    """Requests of one user: writes (to stored objects) and the rest, and the writes by
    resource (`pods/status`...)."""

    writes: int = 0
    reads: int = 0
    writes_by_resource: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class AuditLog:
    """The JSON-lines log the API server writes (`--audit-log-path`)."""

    path: Path

    def offset(self) -> int:
        """Where the log ends now; pass it to `counts` to count only what comes after."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def counts(self, start: int = 0, end: int | None = None) -> dict[str, AuditCounts]:
        """Requests per user between two offsets (a line cut at `end` is left out)."""
        found: dict[str, AuditCounts] = {}
        with self.path.open("rb") as log:
            log.seek(start)
            data = log.read() if end is None else log.read(max(0, end - start))
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the last line may still be being written
            user = str((event.get("user") or {}).get("username", "?"))
            counts = found.setdefault(user, AuditCounts())
            ref = event.get("objectRef") or {}
            resource = str(ref.get("resource", "?"))
            if ref.get("subresource"):
                resource += f"/{ref['subresource']}"
            if event.get("verb", "") in WRITE_VERBS and resource not in NOT_STORED:
                counts.writes += 1
                counts.writes_by_resource[resource] += 1
            else:
                counts.reads += 1
        return found
