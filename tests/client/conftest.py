"""Fixtures: a real relay on loopback and a factory of connected library clients."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from e2echat_server import Relay, RelayConfig

import e2echat
from e2echat.client.backoff import Backoff
from e2echat.crypto.identity import KdfLimits
from e2echat.crypto.policy import Policy

CHEAP_KDF = KdfLimits(1, 8192)
"""Argon2id at its minimum: room passwords in tests (the real limits run once)."""
FAST_POLICY = Policy(pending_timeout=300)
EVENT_TIMEOUT = 10.0
T = TypeVar("T")


class MakeClient(Protocol):
    async def __call__(
        self,
        name: str,
        url: str | Sequence[str] | None = None,
        *,
        identity: e2echat.Identity | None = None,
        include_own: bool = False,
        proof_wait: float = 5.0,
        typing: bool = True,
        read_receipts: bool = False,
        before_connect: Callable[[e2echat.Client], object] = lambda _: None,
    ) -> e2echat.Client: ...


def relay_config(tmp_path: Path) -> RelayConfig:
    """An in-memory relay on a free port, with limits that never slow a test down."""
    return RelayConfig(port=0, memory=True, rate=1000.0, burst=1000, data_dir=tmp_path / "relay")


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with Relay(relay_config(tmp_path)) as running:
        yield running


@pytest.fixture
async def make_client(tmp_path: Path, relay: Relay) -> AsyncIterator[MakeClient]:
    async with AsyncExitStack() as stack:
        identities: dict[str, e2echat.Identity] = {}

        async def make(
            name: str,
            url: str | Sequence[str] | None = None,
            *,
            identity: e2echat.Identity | None = None,
            include_own: bool = False,
            proof_wait: float = 5.0,
            typing: bool = True,
            read_receipts: bool = False,
            before_connect: Callable[[e2echat.Client], object] = lambda _: None,
        ) -> e2echat.Client:
            identity = identity or identities.setdefault(name, e2echat.Identity.generate())
            client = e2echat.Client(
                url or relay.url,
                identity=identity,
                name=name,
                store=tmp_path / f"{name}-{identity.public_key.hex()[:8]}.sqlite3",
                include_own=include_own,
                policy=FAST_POLICY,
                password_limits=CHEAP_KDF,
                send_rate=1000.0,
                send_burst=1000,
                backoff=Backoff(initial=0.05, maximum=0.5),
                proof_wait=proof_wait,
                typing=typing,
                read_receipts=read_receipts,
            )
            before_connect(client)  # subscribe to what the connection itself brings
            await stack.enter_async_context(client)
            return client

        yield make


async def collect(
    source: e2echat.client.pubsub.Subscription[T],
    count: int,
    keep: Callable[[T], bool] = lambda _: True,
    seconds: float = EVENT_TIMEOUT,
) -> list[T]:
    """The next ``count`` items of ``source`` that ``keep`` accepts."""
    found: list[T] = []
    async with asyncio.timeout(seconds):
        async for item in source:
            if keep(item):
                found.append(item)
                if len(found) == count:
                    break
    return found


def validated(event: e2echat.Event, name: str) -> bool:
    """Whether ``event`` says we now share keys with the member called ``name``."""
    return isinstance(event, e2echat.MemberValidated) and event.member.name == name
