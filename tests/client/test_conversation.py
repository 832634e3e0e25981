"""Replies, edits, deletes, reactions, typing, read state and search between library
clients through a real relay; the relay-visible decisions against a rewriting proxy."""

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.payload import Edit
from e2echat.protocol import Message as RelayMessage
from e2echat.protocol import Signal
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


async def room_of(
    make_client: MakeClient, *names: str, url: str | None = None
) -> tuple[list[e2echat.Client], list[e2echat.Room]]:
    """Clients called ``names`` in one open room (the first creates it; all validated);
    the last client connects through ``url`` if given."""
    clients = [
        await make_client(n, url if i == len(names) - 1 else None) for i, n in enumerate(names)
    ]
    owner_events = clients[0].events()
    rooms = [await clients[0].create("chat")]
    for client in clients[1:]:
        rooms.append(await client.join("chat"))
    await collect(owner_events, len(names) - 1, lambda e: isinstance(e, e2echat.MemberValidated))
    for client in clients[1:]:
        await client.get_room("chat").members()  # type: ignore[union-attr]
    return clients, rooms


async def exchange(
    sender_room: e2echat.Room,
    inbox: e2echat.client.pubsub.Subscription[e2echat.Message[e2echat.Room]],
    text: str,
) -> tuple[e2echat.Message[e2echat.Room], e2echat.Message[e2echat.Room]]:
    sent = await sender_room.send(text)
    (got,) = await collect(inbox, 1, lambda m: m.text == text)
    return sent, got


async def test_a_reply_quotes_the_original_and_mentions_its_sender(make_client: MakeClient) -> None:
    (alice, bob), (room_a, room_b) = await room_of(make_client, "alice", "bob")
    alice_inbox, bob_inbox = alice.messages(), bob.messages()
    sent, got = await exchange(room_a, bob_inbox, "lunch at noon?\nor later")
    assert got.id == sent.id != b""
    mine = await got.reply("yes!")
    assert mine.reply_to is not None
    assert mine.reply_to.excerpt == "lunch at noon?"
    (reply,) = await collect(alice_inbox, 1)
    assert reply.text == "yes!"
    assert reply.mentions_me
    quote = reply.reply_to
    assert quote is not None
    assert (quote.id, quote.available, quote.excerpt, quote.seq) == (
        sent.id,
        True,
        "lunch at noon?",
        sent.seq,
    )
    assert quote.sender is not None
    assert quote.sender.key == alice.key
    (stored,) = [m for m in await room_a.history() if m.id == reply.id]
    assert stored.reply_to == quote
    ghost = e2echat.Message(**{**got.__dict__, "id": b"\x01" * 52})
    with pytest.raises(e2echat.NotInHistory):
        await room_b.send("to nothing", reply_to=ghost)


async def test_only_the_sender_edits_and_every_version_stays_viewable(
    make_client: MakeClient,
) -> None:
    (_alice, bob), (room_a, room_b) = await room_of(make_client, "alice", "bob")
    bob_inbox, bob_events = bob.messages(), bob.events()
    sent, got = await exchange(room_a, bob_inbox, "meet at 10")
    with pytest.raises(e2echat.NotAllowed):
        await got.edit("meet at midnight")
    await sent.edit("meet at 11")
    (edited,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.MessageEdited))
    assert isinstance(edited, e2echat.MessageEdited)
    assert (edited.message.text, edited.message.edited, edited.message.id) == (
        "meet at 11",
        True,
        sent.id,
    )
    assert [m.text for m in await room_b.history() if m.id == sent.id] == ["meet at 11"]
    assert [v.text for v in await edited.message.versions()] == ["meet at 10", "meet at 11"]
    assert [m.edited for m in await room_a.history() if m.id == sent.id] == [True]
    assert [m.text for m in await room_b.search("11")] == ["meet at 11"]
    assert await room_b.search("10") == []


async def test_a_delete_removes_the_text_everywhere_and_the_relay_copy(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    (_alice, bob), (room_a, room_b) = await room_of(make_client, "alice", "bob")
    bob_inbox, bob_events = bob.messages(), bob.events()
    sent, got = await exchange(room_a, bob_inbox, "the vault code is 2468")
    await exchange(room_a, bob_inbox, "and this stays")
    with pytest.raises(e2echat.NotAllowed):
        await got.delete()
    await sent.delete()
    (deleted,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.MessageDeleted))
    assert isinstance(deleted, e2echat.MessageDeleted)
    assert (deleted.message_id, deleted.seq) == (sent.id, sent.seq)
    history = await room_b.history()
    assert [(m.text, m.deleted) for m in history] == [("", True), ("and this stays", False)]
    assert await room_b.search("vault") == []
    # The relay no longer serves it: a newcomer syncs only what was not deleted.
    carol = await make_client("carol")
    carol_room = await carol.join("chat")
    await carol_room.members()
    stored = await relay.engine.store.history(room_a.id, 0, 0, 100)
    assert sent.seq not in [entry.seq for entry in stored]


async def test_reactions_count_who_reacted_and_are_bounded(make_client: MakeClient) -> None:
    (alice, bob, carol), (room_a, _room_b, _room_c) = await room_of(
        make_client, "alice", "bob", "carol"
    )
    bob_inbox, carol_inbox, alice_events = bob.messages(), carol.messages(), alice.events()
    sent = await room_a.send("ship it?")
    (for_bob,) = await collect(bob_inbox, 1)
    (for_carol,) = await collect(carol_inbox, 1)
    await for_bob.react("👍")
    await for_carol.react("👍")
    changes = await collect(alice_events, 2, lambda e: isinstance(e, e2echat.ReactionsChanged))
    last = changes[-1]
    assert isinstance(last, e2echat.ReactionsChanged)
    (thumbs,) = last.message.reactions
    assert (thumbs.emoji, thumbs.count, {m.name for m in thumbs.members}) == (
        "👍",
        2,
        {"bob", "carol"},
    )
    await for_bob.unreact("👍")
    (change,) = await collect(alice_events, 1, lambda e: isinstance(e, e2echat.ReactionsChanged))
    assert isinstance(change, e2echat.ReactionsChanged)
    assert [(r.emoji, r.count) for r in change.message.reactions] == [("👍", 1)]
    assert [(r.emoji, r.count) for m in await room_a.history() for r in m.reactions] == [("👍", 1)]
    for bad in ("a b", "x" * 17, "\x1b[2J", "xyz", "👍👍"):
        with pytest.raises(e2echat.InvalidReaction):
            await for_bob.react(bad)
    await for_bob.unreact("xyz")  # any reaction can be withdrawn (an older version sent)
    ghost = e2echat.Message(**{**for_bob.__dict__, "id": b"\x02" * 52})
    with pytest.raises(e2echat.NotInHistory):
        await ghost.react("👍")
    assert sent.reactions == ()


async def test_typing_is_ephemeral_rate_limited_and_can_be_off(
    make_client: MakeClient, relay: Relay
) -> None:
    (alice, _bob), (room_a, room_b) = await room_of(make_client, "alice", "bob")
    events = alice.events()
    for _ in range(5):
        await room_b.typing()  # one signal: the rest fall within the refresh interval
    await room_b.typing(False)
    await room_b.send("done typing")
    changes = await collect(events, 2, lambda e: isinstance(e, e2echat.TypingChanged))
    assert [(e.member.name, e.typing) for e in changes] == [("bob", True), ("bob", False)]  # type: ignore[attr-defined]
    assert [e.seq for e in await relay.engine.store.history(room_a.id, 0, 0, 100)] == [1]
    quiet = await make_client("carol", typing=False)
    carol_room = await quiet.join("chat")
    await collect(events, 1, lambda e: validated(e, "carol"))
    await carol_room.members()
    inbox = alice.messages()
    await carol_room.typing()
    await carol_room.send("no typing from me")
    await collect(inbox, 1, lambda m: m.text == "no typing from me")
    # Carol's frames reach Alice in order: had she signalled typing, it came first.
    assert not [e for e in events._items if isinstance(e, e2echat.TypingChanged)]


async def test_unread_and_mentions_count_messages_while_away_and_survive_restarts(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    (alice, _bob), (room_a, room_b) = await room_of(make_client, "alice", "bob")
    inbox = alice.messages()
    await room_b.send("one")
    await room_b.send("hey @alice")
    await collect(inbox, 2)
    assert (room_a.unread, room_a.mentions) == (2, 1)
    await room_a.mark_read()
    assert (room_a.unread, room_a.mentions, room_a.read_seq) == (0, 0, 2)
    await alice.close()
    await room_b.send("while you were away")
    await room_b.send("@alice you there?")
    back = await make_client("alice")
    room = back.get_room("chat")
    assert room is not None
    assert room.read_seq == 2
    events = back.events()
    await collect(back.messages(), 2)
    assert (room.unread, room.mentions) == (2, 1)
    await back.close()
    again = await make_client("alice")
    restored = again.get_room("chat")
    assert restored is not None
    assert (restored.unread, restored.mentions, restored.read_seq) == (2, 1, 2)
    assert not [e for e in events._items if isinstance(e, e2echat.Undecryptable)]


async def test_search_finds_words_across_rooms_newest_first(make_client: MakeClient) -> None:
    (_alice, bob), (room_a, room_b) = await room_of(make_client, "alice", "bob")
    inbox = bob.messages()
    await room_a.send("Deploy the relay on Friday")
    await room_a.send("friday lunch?")
    await collect(inbox, 2)
    found = await bob.search("fri")
    assert [m.text for m in found] == ["friday lunch?", "Deploy the relay on Friday"]
    assert found[0].sender.name == "alice"
    assert [m.text for m in await room_b.search("relay friday")] == ["Deploy the relay on Friday"]
    around = await room_b.history(10, after=found[1].seq)
    assert around[0].id == found[1].id


async def test_a_member_cannot_edit_anothers_message_even_through_the_relay(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    """Mallory signs an edit of Alice's message and the relay delivers it, as Mallory's
    and relabelled as Alice's: Bob refuses both and Alice's text stays."""
    (alice, mallory, bob), (room_a, room_m, room_b) = await room_of(
        make_client, "alice", "mallory", "bob", url=proxy.url
    )
    bob_inbox, bob_events = bob.messages(), bob.events()
    sent, _ = await exchange(room_a, bob_inbox, "transfer 10")
    await exchange(room_m, bob_inbox, "hi")  # Bob now holds Mallory's chain
    engine = mallory._driver.engine
    now = int(time.time() * 1000)
    forged = await mallory._driver.call(
        engine.session.encrypt, room_m.id, Edit(sent.id, "transfer 1000", (), now), now
    )
    for seq, claimed in ((90, mallory.key), (91, alice.key)):
        await proxy.inject(
            RelayMessage(room=room_b.id, seq=seq, ts=now, sender=claimed, body=forged.body)
        )
        (event,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
        assert isinstance(event, e2echat.Undecryptable)
        assert event.seq == seq
        assert "another sender" in event.reason or "differs" in event.reason
    assert [m.text for m in await room_b.history() if m.id == sent.id] == ["transfer 10"]
    assert not [e for e in bob_events._items if isinstance(e, e2echat.MessageEdited)]


async def test_a_relay_replaying_a_typing_signal_is_ignored(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    (_alice, bob), (room_a, _room_b) = await room_of(make_client, "alice", "bob", url=proxy.url)
    seen: list[Signal] = []

    def keep(frame: object) -> list[object]:
        if isinstance(frame, Signal):
            seen.append(frame)
        return [frame]

    proxy.rewrite = keep  # type: ignore[assignment]
    events = bob.events()
    await room_a.typing()
    await collect(events, 1, lambda e: isinstance(e, e2echat.TypingChanged))
    await proxy.inject(seen[0])
    (replay,) = await collect(events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
    assert isinstance(replay, e2echat.Undecryptable)
    assert "replay" in replay.reason


def unread_is(event: object, count: int) -> bool:
    return isinstance(event, e2echat.UnreadChanged) and event.unread == count


async def test_read_receipts_reach_members_only_from_readers_who_turned_them_on(
    make_client: MakeClient, relay: Relay
) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob", read_receipts=True)
    carol = await make_client("carol")  # receipts are off by default
    owner_events = alice.events()
    room_a = await alice.create("chat")
    room_b, room_c = await bob.join("chat"), await carol.join("chat")
    await collect(owner_events, 2, lambda e: isinstance(e, e2echat.MemberValidated))
    for room in (room_b, room_c):
        await room.members()
    bob_inbox, carol_inbox, bob_events = bob.messages(), carol.messages(), bob.events()
    await room_a.send("first")
    second = await room_a.send("second @bob")
    for inbox in (bob_inbox, carol_inbox):
        await collect(inbox, 2)
    # One event per batch of frames: the two messages may come in one or two.
    (moved,) = await collect(bob_events, 1, lambda e: unread_is(e, 2))
    assert isinstance(moved, e2echat.UnreadChanged)
    assert (moved.room, moved.mentions, room_b.unread) == (room_b, 1, 2)
    alice_events = alice.events()
    await room_c.mark_read()
    await room_b.mark_read()
    (receipt,) = await collect(alice_events, 1, lambda e: isinstance(e, e2echat.ReadReceipt))
    assert isinstance(receipt, e2echat.ReadReceipt)
    assert (receipt.room, receipt.member.name, receipt.message_id) == (room_a, "bob", second.id)
    (read,) = await collect(bob_events, 1, lambda e: unread_is(e, 0))
    assert isinstance(read, e2echat.UnreadChanged)
    assert (read.mentions, read.read_seq, room_b.read_seq) == (0, second.seq, second.seq)
    inbox = alice.messages()
    await room_c.send("read it too")
    await collect(inbox, 1, lambda m: m.text == "read it too")
    # Carol's frames reach Alice in order: a receipt from her would have come first.
    receipts = [e for e in alice_events._items if isinstance(e, e2echat.ReadReceipt)]
    assert [e.member.name for e in receipts] == []
    stored = await relay.engine.store.history(room_a.id, 0, 0, 100)
    assert [e.seq for e in stored] == [1, 2, 3]  # receipts are never stored by the relay
