"""Reading JSON Lines: one JSON object per line, each line's :data:`Outcome` as it is read.
Pure: no I/O (it reads any iterable of lines).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from runwire.errors import InputError
from runwire.usage.lines import TOO_LONG, too_long
from runwire.usage.pricing import PricingTable
from runwire.usage.report import Outcome, record_or_reason

__all__ = ["read_jsonl"]


def read_jsonl(lines: Iterable[str | bytes], pricing: PricingTable) -> Iterator[Outcome]:
    """Read JSON Lines: one JSON object per line, lines numbered from 1.

    Blank lines are skipped (their numbers still count). A line that is not UTF-8, not JSON, not an
    object, or not a valid record is rejected with its number and the reason.
    """
    for number, raw in enumerate(lines, start=1):
        if too_long(raw):
            yield number, TOO_LONG
            continue
        try:
            text = _decode(raw, first=number == 1)
        except InputError as exc:
            yield number, exc.message
            continue
        if not text.strip():
            continue
        try:
            obj = _json_object(text)
        except InputError as exc:
            yield number, exc.message
            continue
        if not isinstance(obj, dict):
            yield number, f"expected a JSON object, got {_json_kind(obj)}"
            continue
        yield number, record_or_reason(obj, pricing)


def _json_object(text: str) -> Any:
    """The JSON value of one line, or :class:`InputError` saying why there is none.

    Besides malformed JSON, the decoder fails in two ways a line of a few bytes can cause: a
    nesting deeper than its recursion allows (``RecursionError``), and an integer longer than
    Python converts (``ValueError``, over ``sys.get_int_max_str_digits()`` digits). Both are the
    line's fault, so the line is rejected like any other, not the import.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply") from None
    except ValueError:
        raise InputError(
            f"invalid JSON: a number longer than {sys.get_int_max_str_digits()} digits"
        ) from None


def _decode(raw: str | bytes, *, first: bool) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("line is not valid UTF-8") from None
    return raw.removeprefix("\ufeff") if first else raw


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
