"""The warning core's app fixtures (recording channels, seeded contacts), for messages rendered end to end."""

from __future__ import annotations

from tests.warnings.conftest import make_world, world

__all__ = ["make_world", "world"]
