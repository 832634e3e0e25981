"""Fixtures: an in-memory relay on an ephemeral 127.0.0.1 port per test."""

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from e2echat_server import Relay, RelayConfig

from tests.server.wire import Identity, WireClient, login


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    async with Relay(RelayConfig(port=0, memory=True)) as running:
        yield running


@pytest.fixture
def connect(relay: Relay) -> Callable[[str], Awaitable[WireClient]]:
    """``await connect("alice")``: a fresh identity, logged in to the fixture relay."""

    async def make(name: str) -> WireClient:
        return await login(relay.url, Identity(name))

    return make
