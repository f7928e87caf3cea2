"""Authentication: passwords, access tokens, rotating refresh tokens, WebSocket tickets."""

from runwire.auth.service import AuthService, Principal, TokenPair

__all__ = ["AuthService", "Principal", "TokenPair"]
