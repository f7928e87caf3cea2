"""Signing keys for tests of production settings, which refuse to start without them."""

from __future__ import annotations

from pathlib import Path

from runwire.auth.key_files import KeyDirectory
from runwire.config import SigningAlgorithm


def key_directory(path: Path, algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA) -> Path:
    """``path`` made a key directory holding one signing key, as `runwire auth rotate-keys`
    makes it; returns ``path``."""
    KeyDirectory(path).add(algorithm)
    return path
