"""Replies, edits, deletes, reactions, read state and direct conversation headers in the
app, over the library double: what each looks like, and the keys that do each."""

import asyncio
from collections.abc import Callable
from dataclasses import replace

from e2echat_tui.app import ChatApp
from e2echat_tui.composer import Composer
from e2echat_tui.conversation import QUICK_REACTIONS, READ_MARK_EVERY
from e2echat_tui.dialogs import ConfirmScreen
from e2echat_tui.header import Topic
from textual.command import CommandPalette
from textual.pilot import Pilot

from e2echat import Message, MessageDeleted, MessageEdited, Quote, ReadReceipt
from e2echat.crypto import is_one_emoji

from .conftest import SIZE, fixed_app, populated_chat
from .fake import FakeChat, FakeRoom
from .screen import screen_text
from .test_app import commands_done, last_line, settle, started, until_screen


def lobby_of(chat: FakeChat) -> FakeRoom:
    return chat.directory["lobby"]


async def marks_done(app: ChatApp) -> None:
    """Wait until no read marker moves or waits to move again."""
    running = [worker for worker in app.workers if worker.group == "read"]
    if running:  # an empty list would mean "every worker" to wait_for_complete
        await app.workers.wait_for_complete(running)


def quoting(chat: FakeChat, original: Message, sender: str, text: str) -> Message:
    """A reply from ``sender`` to ``original`` arrives in the lobby."""
    lobby = lobby_of(chat)
    member = next(m for m in lobby.member_list if m.name == sender)
    reply = chat.record(lobby, member, text)
    quote = Quote(original.id, True, original.sender, original.text.split("\n")[0], original.seq)
    lobby.stored[-1] = reply = replace(reply, reply_to=quote)
    chat.publish(reply)
    return reply


def conversation_chat() -> FakeChat:
    """The populated chat, with a reply, an edit, reactions and a deleted message."""
    chat = populated_chat()
    lobby = lobby_of(chat)
    hi, hello = lobby.stored[0], lobby.stored[1]
    reply = chat.record(lobby, lobby.member_list[2], "welcome [b]bob[/b]\x1b[2J")
    lobby.stored[-1] = replace(
        reply, reply_to=Quote(hi.id, True, hi.sender, "hi everyone\x1b]0;x", hi.seq)
    )
    lobby.stored[1] = replace(hello, text="hello bob, welcome!", edited=True)
    chat.react(lobby, lobby.stored[0], chat.me, "👍", True)
    chat.react(lobby, lobby.stored[0], lobby.member_list[2], "👍", True)
    chat.react(lobby, lobby.stored[0], lobby.member_list[1], "🎉", True)
    gone = chat.record(lobby, lobby.member_list[1], "oops, wrong room")
    lobby.stored[-1] = replace(gone, text="", deleted=True)
    chat.record(lobby, lobby.member_list[1], "ignore that")
    for subscription in chat._event_subscriptions:
        subscription.items.clear()  # the setup's reactions: history, not news
    return chat


async def test_replies_edits_reactions_and_deletes_render_as_plain_text() -> None:
    chat = conversation_chat()
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await settle(pilot)
        text = screen_text(app)
        assert "?carol ↱ ✔bob: hi everyone\\x1b]0;x" in text  # the quote, escaped
        assert "welcome [b]bob[/b]\\x1b[2J" in text  # markup shown as it is
        assert "(edited)" in text
        assert "👍 alice, ?carol · 🎉 ✔bob" in text
        assert "message deleted" in text
        assert "oops, wrong room" not in text


async def test_live_edits_reactions_and_deletes_redraw_the_message_and_its_quotes() -> None:
    chat = populated_chat()
    app = fixed_app(chat)
    lobby = lobby_of(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        original = chat.deliver("lobby", "bob", "deploy at 5")
        quoting(chat, original, "carol", "ok")
        await settle(pilot)
        assert "↱ ✔bob: deploy at 5" in screen_text(app)
        edited = replace(original, text="deploy at 6", edited=True)
        lobby.stored[lobby._stored(original)] = edited  # as the library keeps it
        chat.emit(MessageEdited(lobby, edited))  # type: ignore[arg-type]
        chat.react(lobby, edited, lobby.member_list[2], "✅", True)
        await settle(pilot)
        text = screen_text(app)
        assert "deploy at 6" in text
        assert "(edited) · ✅ ?carol" in text
        assert "↱ ✔bob: deploy at 6" in text  # the reply quotes the newest version
        chat.emit(MessageDeleted(lobby, original.id, original.seq))  # type: ignore[arg-type]
        await settle(pilot)
        text = screen_text(app)
        assert "deploy at 6" not in text
        assert "↱ ✔bob: message deleted" in text
        assert "✅" not in text


async def select_newest(pilot: Pilot[None]) -> None:
    await pilot.press("ctrl+up")
    await pilot.pause()


async def test_keys_reply_to_edit_react_to_and_delete_the_selected_message() -> None:
    chat = populated_chat()
    app = fixed_app(chat)
    lobby = lobby_of(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await select_newest(pilot)
        assert app.timeline.has_focus
        selected = app.timeline.selected
        assert selected is not None
        assert selected.message is not None
        assert selected.message.text == "@alice did you see the release notes?"
        await pilot.press("r")
        await commands_done(app)
        composer = app.query_one(Composer)
        assert composer.has_focus
        assert "replying to ✔bob: @alice did you see" in str(composer.border_title)
        await pilot.press(*"yes, great", "enter")
        await commands_done(app)
        await pilot.pause()
        reply = lobby.stored[-1]
        assert (reply.text, reply.reply_to.id if reply.reply_to else None) == (
            "yes, great",
            selected.message.id,
        )
        assert composer.border_title is None
        assert "↱ ✔bob: @alice did you see the release" in screen_text(app)
        # Up twice from the newest (my reply) selects my "morning!" two messages back.
        await select_newest(pilot)
        await pilot.press("up", "up")
        mine = app.timeline.selected
        assert mine is not None
        assert mine.message is not None
        assert mine.message.text == "morning!"
        await pilot.press("e")
        await commands_done(app)
        assert composer.text == "morning!"
        await pilot.press(*" all", "enter")
        await commands_done(app)
        await settle(pilot)
        assert chat.edits == [(mine.message.id, "morning! all")]
        assert "morning! all" in screen_text(app)
        assert "(edited)" in screen_text(app)
        await select_newest(pilot)
        await pilot.press("up", "up", "plus")
        await until_screen(pilot, CommandPalette)
        await pilot.press(*"party", "enter")
        await settle(pilot)
        assert chat.reactions == [(mine.message.id, "🎉", True)]
        assert "🎉 alice" in screen_text(app)
        await select_newest(pilot)
        await pilot.press("d")
        dialog = await until_screen(pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await commands_done(app)
        await settle(pilot)
        assert dialog is not app.screen
        assert chat.deletes == [reply.id]
        assert "yes, great" not in screen_text(app)


async def test_what_cannot_be_done_to_a_message_is_said_and_changes_nothing() -> None:
    chat = populated_chat()
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await select_newest(pilot)  # bob's message
        for key in ("e", "d"):
            await pilot.press(key)
            await commands_done(app)
            assert "only your own messages" in last_line(app)
        await pilot.press("v")
        await commands_done(app)
        assert "was not edited" in last_line(app)
        await pilot.press("r")
        await commands_done(app)
        await pilot.press("escape")  # the reply is dropped; the composer stays empty
        await pilot.pause()
        composer = app.query_one(Composer)
        assert composer.border_title is None
        assert not composer.text
        app.query_one(Composer).text = "/react a b"
        await pilot.press("enter")
        await commands_done(app)
        assert "usage: /react EMOJI" in last_line(app)
        assert chat.edits == chat.deletes == chat.reactions == []


async def test_a_reaction_that_is_not_one_emoji_is_refused_and_the_line_stays() -> None:
    chat = populated_chat()
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        for line in ("/react xyz", "/react 👍👍"):
            app.query_one(Composer).text = line
            await pilot.press("enter")
            await commands_done(app)
            assert last_line(app) == "a reaction is one emoji, such as 👍"
            assert app.query_one(Composer).text == line
            app.query_one(Composer).text = ""
        assert chat.reactions == []
        assert all(is_one_emoji(emoji) for emoji, _name in QUICK_REACTIONS)


async def test_react_command_and_versions_of_an_edited_message() -> None:
    chat = populated_chat()
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.query_one(Composer).text = "/react 👀"
        await pilot.press("enter")
        await commands_done(app)
        await settle(pilot)
        newest = lobby_of(chat).stored[-1]
        assert chat.reactions == [(newest.id, "👀", True)]
        app.query_one(Composer).text = "/react 👀"  # again: taken back
        await pilot.press("enter")
        await commands_done(app)
        await settle(pilot)
        assert chat.reactions[-1] == (newest.id, "👀", False)
        mine = await app.tabs["lobby"].room.send("frist")
        app.tabs["lobby"].log.extend(app._entries([mine]))
        await app.tabs["lobby"].room.edit(mine, "first")
        await settle(pilot)
        await select_newest(pilot)
        await pilot.press("v")
        await commands_done(app)
        assert last_line(app).splitlines()[1:] == ["  09:35 frist", "  09:35 first"]


async def test_unread_counts_survive_restarts_and_a_line_marks_where_you_left_off() -> None:
    chat = populated_chat()
    team = chat.directory["team"]
    bob = team.member_list[1]
    for text in ("standup moved", "to 10:00", "@alice ok?"):
        chat.record(team, bob, text)
    team.unread, team.mentions, team.read_seq = 2, 1, team.stored[0].seq  # kept by the store
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        row = app.room_list.rows["team"]
        assert (row.unread, row.mentions) == (2, 1)
        assert "🔒 team 2 @1" in screen_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        bodies = [entry.body for entry in app.tabs["team"].log.entries]
        assert bodies == ["standup moved", "── 2 new messages ──", "to 10:00", "@alice ok?"]
        assert chat.marked[-1] == "team"
        assert (team.unread, row.unread, row.mentions) == (0, 0, 0)
        chat.deliver("lobby", "bob", "back in the lobby")
        await settle(pilot)
        assert app.room_list.rows["lobby"].unread == 1
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert "── 2 new messages ──" not in [e.body for e in app.tabs["team"].log.entries]
        chat.deliver("lobby", "bob", "and again")  # the room on screen is read as it comes
        await settle(pilot)
        assert app.room_list.rows["lobby"].unread == 0
        await marks_done(app)
        assert lobby_of(chat).unread == 0


async def test_a_busy_room_on_screen_moves_its_read_marker_at_most_twice_a_second() -> None:
    chat = populated_chat()
    app = fixed_app(chat)
    lobby = lobby_of(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await settle(pilot)
        await marks_done(app)
        before, start = len(chat.marked), asyncio.get_running_loop().time()
        for number in range(100):
            chat.deliver("lobby", "bob", f"busy {number}")
            await asyncio.sleep(0)  # one by one, as the pump hands them in
        await settle(pilot)
        await marks_done(app)
        elapsed = asyncio.get_running_loop().time() - start
        assert 1 <= len(chat.marked) - before <= 1 + elapsed / READ_MARK_EVERY
        assert (lobby.unread, lobby.read_seq) == (0, lobby.stored[-1].seq)
        assert app.room_list.rows["lobby"].unread == 0


async def test_a_direct_conversation_header_names_the_peer_with_its_trust() -> None:
    chat = populated_chat()
    bob = next(m for m in lobby_of(chat).member_list if m.name == "bob")
    dm = chat.add_room("dm-4f1c0a9e2b7d6c5a3e8f1b2c", secret=True, members=[bob])
    dm.peer = bob.key
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.switch_to(dm.name)
        await pilot.pause()
        header = str(app.query_one(Topic).render())
        assert header.startswith(f"@ ✔bob#{bob.fingerprint.split()[0]} ✔ verified")
        assert "dm-" not in header
        assert "dm-" not in screen_text(app)


SnapCompare = Callable[..., bool]


def test_snapshot_of_replies_edits_reactions_and_a_deleted_message(
    snap_compare: SnapCompare,
) -> None:
    assert snap_compare(fixed_app(conversation_chat()), terminal_size=SIZE)


def test_snapshot_of_replying_to_the_selected_message(snap_compare: SnapCompare) -> None:
    async def reply(pilot: Pilot[None]) -> None:
        await select_newest(pilot)
        await pilot.press("r")
        await commands_done(pilot.app)  # type: ignore[arg-type]
        await pilot.press(*"same here")
        await settle(pilot)

    assert snap_compare(fixed_app(conversation_chat()), terminal_size=SIZE, run_before=reply)


def test_snapshot_of_the_new_messages_line_and_a_direct_conversation(
    snap_compare: SnapCompare,
) -> None:
    chat = populated_chat()
    bob = next(m for m in lobby_of(chat).member_list if m.name == "bob")
    dm = chat.add_room("dm-4f1c0a9e2b7d6c5a3e8f1b2c", secret=True, members=[bob])
    dm.peer = bob.key
    for text in ("are you around?", "the deploy is at 5", "@alice can you check?"):
        chat.record(dm, bob, text)
    dm.unread, dm.mentions, dm.read_seq = 2, 1, dm.stored[0].seq

    async def open_it(pilot: Pilot[None]) -> None:
        await pilot.press("ctrl+n")
        await settle(pilot)

    assert snap_compare(fixed_app(chat), terminal_size=SIZE, run_before=open_it)


async def test_read_receipts_show_under_the_last_message_each_member_read() -> None:
    """A member who sends receipts is shown under the message it read up to, one
    message per member, moving down as it reads on; an edit keeps the footer; our own
    receipts (another device of ours) are not shown."""
    chat = populated_chat()
    app = fixed_app(chat)
    lobby = lobby_of(chat)
    bob, carol = lobby.member_list[1], lobby.member_list[2]
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        first = chat.deliver("lobby", "bob", "first")
        second = chat.deliver("lobby", "bob", "second")
        await settle(pilot)
        chat.emit(ReadReceipt(lobby, carol, first.id))  # type: ignore[arg-type]
        chat.emit(ReadReceipt(lobby, chat.me, second.id))  # type: ignore[arg-type]
        await settle(pilot)
        assert footers(app) == {"first": "read by ?carol"}
        chat.emit(ReadReceipt(lobby, carol, second.id))  # type: ignore[arg-type]
        chat.emit(ReadReceipt(lobby, bob, second.id))  # type: ignore[arg-type]
        await settle(pilot)
        assert footers(app) == {"second": "read by ?carol, ✔bob"}
        assert "read by ?carol, ✔bob" in screen_text(app)
        edited = replace(second, text="second, edited", edited=True)
        chat.emit(MessageEdited(lobby, edited))  # type: ignore[arg-type]
        await settle(pilot)
        assert footers(app) == {"second, edited": "(edited) · read by ?carol, ✔bob"}


def footers(app: ChatApp) -> dict[str, str]:
    """The lobby's messages that have a footer line, by body."""
    return {
        entry.body: "".join(segment.text for segment in entry.footer)
        for entry in app.tabs["lobby"].log.entries
        if entry.footer and entry.message is not None
    }
