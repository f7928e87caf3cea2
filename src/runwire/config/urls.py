"""Settings that are URLs, made fit for a log line or an error message."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["safe_url"]


def safe_url(url: str) -> str:
    """``url`` without its user name and password, for logs and error messages."""
    parts = urlsplit(url)
    # The host (lowercased) and port as written (an IPv6 host keeps its brackets), after the
    # last "@": not parsed, so a URL with a bad port is still shown (the settings' rules name
    # that problem) instead of raising where a log line or an error is being made.
    where = parts.netloc.rpartition("@")[2].lower() or "?"
    return f"{parts.scheme}://{where}{parts.path}"
