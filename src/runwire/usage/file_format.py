"""Which reader a usage file needs: JSON Lines or CSV, from an upload's content type and file
name, or from a local file's name alone. Pure: no I/O.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

from runwire.errors import InputError, UnsupportedMediaType

__all__ = ["ImportFormat", "detect_format", "file_format"]

ImportFormat = Literal["jsonl", "csv"]

_CONTENT_TYPES: dict[str, ImportFormat] = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "text/csv": "csv",
}
_SUFFIXES: dict[str, ImportFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# Types that say nothing about the content: browsers send these for files they do not recognise
# (.jsonl is unknown to most; Windows labels .csv as an Excel type), so the file name decides.
_GENERIC_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "text/plain",
        "application/json",
        "application/vnd.ms-excel",
        "binary/octet-stream",
    }
)


def detect_format(content_type: str | None, filename: str | None) -> ImportFormat:
    """Which reader an upload needs, from its content type or, failing that, its file name.

    A specific content type (``application/x-ndjson``, ``application/jsonl``,
    ``application/json-lines``, ``text/csv``) wins. A generic one (absent, ``text/plain``,
    ``application/octet-stream``, ``application/json``, ``application/vnd.ms-excel``) defers to the
    file name's suffix (``.jsonl``, ``.ndjson``, ``.csv``). Anything else raises
    :class:`UnsupportedMediaType`.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    if media in _GENERIC_TYPES and filename:
        suffix = PurePath(filename).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    what = f"content type {media!r}" if media else "no content type"
    if filename:
        what += f" and file name {PurePath(filename).name[:80]!r}"
    raise UnsupportedMediaType(
        f"cannot read a usage file with {what}: send JSON Lines (application/x-ndjson, .jsonl) "
        "or CSV (text/csv, .csv)"
    )


def file_format(filename: str) -> ImportFormat:
    """Which reader a local file needs, from its name's suffix alone (a file has no content
    type): ``.jsonl`` or ``.ndjson`` is JSON Lines, ``.csv`` is CSV; anything else raises
    :class:`InputError` saying what is accepted."""
    path = PurePath(filename)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"cannot import {path.name[:80]!r}: a usage file is JSON Lines, named *.jsonl "
            "(or *.ndjson), or CSV, named *.csv"
        )
    return kind
