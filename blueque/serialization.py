"""JSON encoding of parameters, results, errors and progress.

Payloads are JSON values, so any language can read them and a plain string stays a string.
"""

from __future__ import annotations

import json
from typing import Any

from blueque.errors import CorruptTaskError, PayloadError

# One encoder for every call: json.dumps with non-default options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(value: Any, what: str = "value") -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} must be JSON-serializable: {exc}") from exc


def decode(text: str | bytes | None, what: str = "value") -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CorruptTaskError(f"{what} is not valid JSON: {exc}") from exc
