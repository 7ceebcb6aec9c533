"""Fixtures for adapter tests: a FakeTwilio server and an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes import twilio as fake_twilio_mod
from tests.fakes.twilio import FakeTwilio


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    yield session
    await session.close()


@pytest.fixture
async def fake_twilio(aiohttp_server: Any) -> tuple[FakeTwilio, str]:
    """A FakeTwilio served on loopback, and its api_base."""
    return await fake_twilio_mod.start(aiohttp_server)
