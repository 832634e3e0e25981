"""Testing bots: a pytest plugin with an in-process relay, ready clients and waits.

Enable it in your ``conftest.py``::

    pytest_plugins = ["e2echat.testing"]

It needs ``pytest``, ``pytest-asyncio`` and the relay, ``e2echat-server`` (the library
itself does not depend on the relay; ``pip install "e2echat[testing]"`` brings all
three). Fixtures:

- ``e2echat_relay``: a relay on 127.0.0.1 with a free port and an in-memory database,
  for this test only (``.url``). Its limits never slow a test down.
- ``e2echat_client``: a factory, ``await e2echat_client("alice")``, of clients that are
  connected when returned (a fresh identity each, stores in the test's ``tmp_path``),
  closed at the end of the test. ``setup=`` runs a bot's ``async def setup(chat)`` on
  the new client before returning: the bot is ready (in its rooms, handlers running),
  with the options ``e2echat.run`` gives a bot (``BOT_OPTIONS``).

While one of them is in use, new identity files and room passwords use Argon2id at its
minimum cost (real cost is about a second per identity); this switch works only while
pytest runs a test, so a program cannot end up with weak keys by importing this module.
``$E2ECHAT_HOME`` points into ``tmp_path`` and ``$E2ECHAT_PASSPHRASE`` is set, so a bot
that calls ``Identity.load_or_create()`` never touches your real identity.

Helpers: ``ask(room, text)`` sends and returns the next message another member posts
in that room; ``wait_for(subscription, predicate)`` the next matching item;
``wait_for_member(room, name)`` returns once a member of that name is in the room and
shares keys with us (a bot started some other way is ready). Each has a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import pytest_asyncio

from e2echat.client import kdfcost
from e2echat.client.backoff import Backoff
from e2echat.client.client import Client
from e2echat.client.events import Event, MemberValidated
from e2echat.client.identity import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, Identity
from e2echat.client.models import Member, Message
from e2echat.client.paths import HOME_ENV
from e2echat.client.pubsub import Subscription
from e2echat.client.room import Room
from e2echat.client.runner import BOT_OPTIONS

__all__ = [
    "ClientFactory",
    "RelayHandle",
    "ask",
    "e2echat_client",
    "e2echat_relay",
    "wait_for",
    "wait_for_member",
]

T = TypeVar("T")
TIMEOUT = 10.0
"""Seconds every wait allows by default: generous, since a wait normally ends at once."""
TEST_RATE = 1000.0


class RelayHandle(Protocol):
    """What a test needs of the running relay."""

    @property
    def url(self) -> str: ...


class ClientFactory(Protocol):
    """``await e2echat_client(name, setup=None, **client_options)``."""

    async def __call__(
        self,
        name: str,
        *,
        setup: Callable[[Client], Awaitable[None]] | None = None,
        identity: Identity | None = None,
        **options: Any,
    ) -> Client: ...


@pytest_asyncio.fixture
async def e2echat_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RelayHandle]:
    """A relay of this test's own, in this process, on a free loopback port."""
    try:  # imported here: the library does not depend on the relay
        from e2echat_server import Relay, RelayConfig
    except ImportError:
        pytest.fail(
            'e2echat.testing needs the relay: pip install e2echat-server (or "e2echat[testing]")',
            pytrace=False,
        )
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "e2echat-home"))
    monkeypatch.setenv(PASSPHRASE_ENV, "e2echat test passphrase")
    monkeypatch.delenv(PASSPHRASE_FILE_ENV, raising=False)
    kdfcost.enable_fast_kdf_for_tests()
    config = RelayConfig(
        port=0,
        memory=True,
        rate=TEST_RATE,
        burst=int(TEST_RATE),
        data_dir=tmp_path / "e2echat-relay",
    )
    try:
        async with Relay(config) as relay:
            yield relay
    finally:
        kdfcost.disable_fast_kdf()


@pytest_asyncio.fixture
async def e2echat_client(
    e2echat_relay: RelayHandle, tmp_path: Path
) -> AsyncIterator[ClientFactory]:
    """A factory of connected clients on ``e2echat_relay``, closed after the test."""
    async with AsyncExitStack() as stack:
        made = 0

        async def make(
            name: str,
            *,
            setup: Callable[[Client], Awaitable[None]] | None = None,
            identity: Identity | None = None,
            **options: Any,
        ) -> Client:
            nonlocal made
            made += 1
            options.setdefault("send_rate", TEST_RATE)
            options.setdefault("send_burst", int(TEST_RATE))
            options.setdefault("backoff", Backoff(initial=0.05, maximum=0.5))
            if setup is not None:  # a bot: as e2echat.run makes it
                options = {**BOT_OPTIONS, **options}
            client = Client(
                e2echat_relay.url,
                identity=identity or Identity.generate(),
                name=name,
                store=tmp_path / "e2echat-stores" / f"{made}-{name}.sqlite3",
                **options,
            )
            await stack.enter_async_context(client)
            if setup is not None:
                await setup(client)
            return client

        yield make


async def wait_for(
    source: Subscription[T],
    predicate: Callable[[T], bool] | None = None,
    *,
    timeout: float = TIMEOUT,
) -> T:
    """The next item of ``source`` (a ``chat.messages()`` or ``chat.events()``
    subscription made before the awaited thing can happen) that ``predicate`` accepts."""
    async with asyncio.timeout(timeout):
        async for item in source:
            if predicate is None or predicate(item):
                return item
    raise AssertionError("the client closed before the awaited item arrived")


def _client_of(room: Room) -> Client:
    client = room._client
    assert isinstance(client, Client)
    return client


async def ask(room: Room, text: str, *, timeout: float = TIMEOUT) -> Message[Room]:
    """Send ``text`` to ``room`` and return the next message another member posts there."""
    inbox = _client_of(room).messages()
    try:
        await room.send(text)
        return await wait_for(
            inbox, lambda msg: msg.room.id == room.id and not msg.own, timeout=timeout
        )
    finally:
        await inbox.aclose()


async def wait_for_member(room: Room, name: str, *, timeout: float = TIMEOUT) -> Member:
    """Return once a member called ``name`` is in ``room`` and we share keys with it."""

    def ready(member: Member) -> bool:
        return member.name == name and member.validated and not member.is_me

    events = _client_of(room).events()
    try:
        present = [m for m in await room.members() if ready(m)]
        if present:
            return present[0]

        def joined(event: Event) -> bool:
            return (
                isinstance(event, MemberValidated)
                and event.room.id == room.id
                and ready(event.member)
            )

        found = await wait_for(events, joined, timeout=timeout)
        assert isinstance(found, MemberValidated)
        return found.member
    finally:
        await events.aclose()
