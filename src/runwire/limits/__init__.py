"""Rate limits whose counts every node shares (or, on one node, this process keeps)."""

from runwire.limits.base import Limit, RateLimiter

__all__ = ["Limit", "RateLimiter"]
