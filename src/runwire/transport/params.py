"""Request text every database backend can store, shared by the HTTP routes.

PostgreSQL refuses the NUL character (U+0000) in text, SQLite keeps it; runwire refuses it on
both, at the edge, so a request behaves the same whatever the backend and never reaches a query
it would break (422 ``invalid_input`` naming the field; WebSocket frames get ``invalid_field``
from the protocol parser for the same reason).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator

__all__ = ["NUL_REFUSAL", "PathId", "refuse_nul"]

NUL_REFUSAL = "must not contain the NUL character (U+0000)"


def refuse_nul(value: str) -> str:
    """``value`` unchanged, or ValueError (a 422 naming the field) when it holds a NUL."""
    if "\x00" in value:
        raise ValueError(NUL_REFUSAL)
    return value


PathId = Annotated[str, Path(min_length=1, max_length=100), AfterValidator(refuse_nul)]
"""An id in a URL path (``thread_id``, ``run_id``)."""
