"""What several unit modules share: the generated sample, made once for the layer (each
generation takes about a tenth of a second, and three modules answer questions over it)."""

from __future__ import annotations

import pytest

from runwire.domain.usage import UsageRecord
from runwire.usage.sample import generate_sample

SAMPLE_NOW = 1_746_000_000_000  # 2025-04-30T08:00:00Z: the sample ends there, every run


@pytest.fixture(scope="session")
def sample_records() -> tuple[UsageRecord, ...]:
    """``generate_sample(now_ms=SAMPLE_NOW)``, immutable: each module makes its own list or set
    of it (a set's memo is the module's own)."""
    return tuple(generate_sample(now_ms=SAMPLE_NOW))
