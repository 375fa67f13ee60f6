"""JSON encoding of parameters, results, errors and progress.

Payloads are JSON values, so any language can read them and a plain string stays a string.
What JSON or UTF-8 cannot carry (a lone surrogate, as `os.listdir` gives for a file name that
is not UTF-8; nesting deeper than the interpreter's recursion limit) is refused here, as a
`PayloadError`, before it reaches a socket or a pipe; what cannot be decoded (nested
thousands deep by a producer in another language, NaN or Infinity, which are not JSON) is a
`CorruptTaskError`.
"""

from __future__ import annotations

import json
from typing import Any

from blueque.errors import CorruptTaskError, InvalidArgumentError, PayloadError

# One encoder for every call: json.dumps with non-default options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(value: Any, what: str = "value") -> str:
    try:
        text = _ENCODER.encode(value)
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply to encode as JSON") from None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} must be JSON-serializable: {exc}") from exc
    if not text.isascii():  # (a constant-time check: the common case costs nothing)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start : exc.end].encode("unicode_escape").decode()
            raise PayloadError(
                f"{what} is not valid UTF-8 text: it holds a lone surrogate ({bad}), as a file"
                " name that is not UTF-8 does; decode such bytes explicitly (e.g. with"
                " errors='replace') or send them as base64"
            ) from None
    return text


def decode(text: str | bytes | None, what: str = "value") -> Any:
    if text is None:
        return None
    try:
        if isinstance(text, str):
            return _DECODER.decode(text)
        return json.loads(text, parse_constant=_not_json)  # (bytes: json finds the encoding)
    except RecursionError:
        raise CorruptTaskError(f"{what} is nested too deeply to decode") from None
    except ValueError as exc:
        raise CorruptTaskError(f"{what} is not valid JSON: {exc}") from exc


def _not_json(constant: str) -> Any:
    raise InvalidArgumentError(f"{constant} is not a JSON value")


# One decoder for every call, as for encoding: json.loads with an option builds one each time.
_DECODER = json.JSONDecoder(parse_constant=_not_json)


def printable(text: str) -> str:
    """`text` with any lone surrogate escaped (as `\\udcff`), so that it can be encoded."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
