"""Membership statements that race for one log position: many members joining a secret
room at once all get in, and a relay that only claims a conflict cannot keep a client
signing for ever."""

import asyncio

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.client import LOG_ATTEMPTS
from e2echat.protocol import Error, ErrorCode, LogAppend, LogEntries, Ok, RelayFrame
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import evil_proxy

BURST = 12
"""Joiners at once: with three tries each, most of them used to fail ``log_conflict``."""


async def test_members_joining_at_once_all_get_in(make_client: MakeClient) -> None:
    owner = await make_client("owner")
    room = await owner.create("crowd", secret=True)
    invite = room.invite()
    names = [f"j{i:02d}" for i in range(BURST)]
    joiners = [await make_client(name) for name in names]
    events = owner.events()
    joined = await asyncio.gather(*(joiner.join("crowd", invite=invite) for joiner in joiners))
    await collect(events, BURST, lambda event: any(validated(event, n) for n in names))
    assert {m.name for m in room.member_list} == {"owner", *names}
    assert all(len(joiner_room.member_list) >= 2 for joiner_room in joined)
    assert room.log_head[0] == BURST + 1  # one create, one join each: no position twice


async def test_a_relay_that_claims_conflicts_and_hides_the_winner_ends_the_retries(
    relay: Relay, make_client: MakeClient
) -> None:
    owner = await make_client("owner")
    invite = (await owner.create("hidden", secret=True)).invite()
    async with evil_proxy(relay.url) as proxy:

        def hide(frame: RelayFrame) -> list[RelayFrame]:
            if not any(isinstance(sent, LogAppend) for sent in proxy.sent):
                return [frame]  # the join itself and the log fetched for it pass
            if isinstance(frame, Ok) and frame.id is not None:
                return [Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=frame.id)]
            if isinstance(frame, LogEntries):
                return [LogEntries(room=frame.room, start=frame.start, entries=[], id=frame.id)]
            return [frame]

        proxy.rewrite = hide
        bob = await make_client("bob", proxy.url)
        with pytest.raises(e2echat.RelayError, match="kept changing") as caught:
            await bob.join("hidden", invite=invite)
        assert caught.value.code == ErrorCode.LOG_CONFLICT
        appends = [frame for frame in proxy.sent if isinstance(frame, LogAppend)]
        assert len(appends) == LOG_ATTEMPTS
