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
from collections.abc import Callable
from typing import Any

from blueque.errors import CorruptTaskError, InvalidArgumentError, PayloadError

# One encoder for every call: json.dumps with non-default options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _c_encoder() -> Callable[[Any], str] | None:
    """`_ENCODER.encode` without the C encoder it builds anew on every call (a third of the
    cost of a small dict's), nor its check for cycles: a cycle recurses until RecursionError,
    and is then encoded again by `_ENCODER`, whose error names it. None where the json module
    has no C encoder."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    # The arguments JSONEncoder.iterencode passes, with no dict for markers (no cycle check).
    iterencode = make(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",",
                      False, False, False)  # fmt: skip

    def encode(value: Any) -> str:
        try:
            return "".join(iterencode(value, 0))
        except RecursionError:
            return _ENCODER.encode(value)

    return encode


_ENCODE = _c_encoder() or _ENCODER.encode


def encode(value: Any, what: str = "value") -> str:
    if value is None:  # (the most common parameters: none)
        return "null"
    try:
        text = _ENCODE(value)
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
    if text is None or text == "null":  # (the most common parameters, as in encode)
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
