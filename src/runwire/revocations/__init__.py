"""Sessions that ended before their access tokens expired, known on every node."""

from runwire.revocations.base import Revocations, RevokedHandler, Watch

__all__ = ["Revocations", "RevokedHandler", "Watch"]
