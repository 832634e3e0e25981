"""What the app does with the messages it shows, beyond showing them.

The user acts on a selected message (reply, edit, delete, react, versions, the jump to
a quoted original); the library reports what changed in messages already on screen
(edits, deletes, reactions) and how far each room is read (``UnreadChanged``): the
sidebar's badges, the "new messages" line and the read marker follow from here.
Every decision about who may do what is the library's (signed statements): a refused
action comes back as an ``E2EChatError`` and becomes a notice like any other.
"""

import asyncio
import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from e2echat import E2EChatError, Member, Message, Room, UnreadChanged
from e2echat_tui import commands as cmd
from e2echat_tui.chooser import Choice, choose
from e2echat_tui.dialogs import ConfirmScreen
from e2echat_tui.format import clock, unread_line
from e2echat_tui.lines import Entry
from e2echat_tui.rooms import RoomTab
from e2echat_tui.safe import escape_controls
from e2echat_tui.trust import labels, marked_name

if TYPE_CHECKING:
    from e2echat_tui.app import ChatApp

QUICK_REACTIONS = (
    ("👍", "thumbs up"),
    ("❤️", "heart"),
    ("😂", "laughing"),
    ("🎉", "party"),
    ("😮", "surprised"),
    ("😢", "sad"),
    ("👀", "eyes"),
    ("✅", "done"),
)
"""What ``+`` offers (``/react EMOJI`` takes any one emoji)."""

READ_MARK_EVERY = 0.5
"""Seconds the read marker of a room stays put after it moved. Every message that comes
into the room on screen asks to move it, and each move is a store write (and a read
receipt to the members, if they are on): a busy room moves it at most this often, the
last time after its last message, instead of once per message."""


@dataclass(frozen=True)
class Composing:
    """The reply or edit the composer's draft is for; ``draft`` is what the composer
    held before an edit filled it, given back if the edit is cancelled."""

    kind: Literal["reply", "edit"]
    message: Message[Room]
    draft: str = ""


class MessageActions:
    """The app's conversation features; one per app."""

    def __init__(self, app: "ChatApp") -> None:
        self.app = app
        self.composing: Composing | None = None
        self._marking: set[str] = set()
        """Rooms whose read marker is moving, or was moved less than ``READ_MARK_EVERY``
        ago (another move asked for meanwhile waits for that)."""
        self._mark_again: set[str] = set()

    # ------------------------------------------------------------ the selected message

    async def act(self, action: str, message: Message[Room]) -> None:
        """One key on the selected message (``Timeline.ACTIONS``)."""
        match action:
            case "reply":
                self._compose(Composing("reply", message))
            case "edit":
                self._start_edit(message)
            case "delete":
                await self._delete(message)
            case "react":
                self._offer_reactions(message)
            case "versions":
                await self._versions(message)
            case "open" if message.reply_to is not None:
                self.jump_to_original(message)

    def _mine(self, message: Message[Room], verb: str) -> None:
        if not (message.own or message.sender.is_me):
            raise cmd.CommandError(f"you can {verb} only your own messages")
        if message.deleted:
            raise cmd.CommandError("that message was deleted")
        if not message.id:
            raise cmd.CommandError("that message is not confirmed by the relay yet")

    def _start_edit(self, message: Message[Room]) -> None:
        self._mine(message, "edit")
        if message.file is not None or message.unsupported is not None:
            raise cmd.CommandError("only a text message can be edited")
        composer = self.app.composer
        self._compose(Composing("edit", message, composer.text))
        composer.set_draft(message.text)

    def _compose(self, composing: Composing) -> None:
        if composing.kind == "reply" and (composing.message.deleted or not composing.message.id):
            raise cmd.CommandError("that message cannot be replied to")
        self.composing = composing
        who = marked_name(composing.message.sender, labels(composing.message.room.member_list))
        if composing.kind == "reply":
            excerpt = escape_controls(composing.message.text.split("\n", 1)[0])[:40]
            title = f"replying to {who}: {excerpt}"
        else:
            title = "editing your message"
        self.app.composer.border_title = f"{title} · escape cancels"
        self.app.composer.focus()

    def cancel(self) -> None:
        """Escape in the composer: the draft is for no reply or edit any more."""
        composing, self.composing = self.composing, None
        self.app.composer.border_title = None
        if composing is not None and composing.kind == "edit":
            self.app.composer.set_draft(composing.draft)

    async def send(self, tab: RoomTab, text: str) -> bool:
        """Send ``text`` as the pending reply or edit of ``tab``; False if none is."""
        composing = self.composing
        if composing is None or composing.message.room.name != tab.name:
            return False
        self._end_compose()
        if composing.kind == "edit":
            await tab.room.edit(composing.message, text)  # the edit shows when confirmed
            if not self.app.composer.text:
                self.app.composer.set_draft(composing.draft)
            return True
        self.app.show_sent(tab, await tab.room.send(text, reply_to=composing.message))
        return True

    def _end_compose(self) -> None:
        self.composing = None
        self.app.composer.border_title = None

    async def _delete(self, message: Message[Room]) -> None:
        self._mine(message, "delete")
        question = "Delete this message for everyone? It cannot be undone."
        if await self.app.push_screen_wait(ConfirmScreen(question, "Delete")):
            await message.room.delete(message)

    def _offer_reactions(self, message: Message[Room]) -> None:
        if message.deleted or not message.id:
            raise cmd.CommandError("that message cannot be reacted to")
        mine = {r.emoji for r in message.reactions if any(m.is_me for m in r.members)}
        choices = [
            Choice(
                f"{emoji} {name}",
                functools.partial(self._react_soon, message, emoji),
                "remove your reaction" if emoji in mine else "react",
            )
            for emoji, name in QUICK_REACTIONS
        ]
        choose(self.app, choices, "React with… (/react EMOJI for any other)")

    def _react_soon(self, message: Message[Room], emoji: str) -> None:
        self.app.run_worker(self.app._guarded(self.react(message, emoji)), group="commands")

    async def react(self, message: Message[Room], emoji: str) -> None:
        """Add our ``emoji`` to ``message``, or take it back if we hold it already."""
        held = any(r.emoji == emoji and any(m.is_me for m in r.members) for r in message.reactions)
        await message.room.react(message, emoji, not held)

    async def _versions(self, message: Message[Room]) -> None:
        if not message.edited:
            raise cmd.CommandError("that message was not edited")
        versions = await message.room.versions(message)
        timezone = self.app.timezone
        lines = [f"{len(versions)} versions, the original first:"]
        lines += [f"  {clock(v.sent_at, timezone)} {v.text}" for v in versions]
        self.app.say("\n".join(lines))

    def jump_to_original(self, message: Message[Room]) -> None:
        """Select the message a reply quotes, if it is in the loaded scrollback."""
        quote = message.reply_to
        tab = self.app.tabs.get(message.room.name)
        if quote is None or tab is None:
            return
        index = tab.log.find(quote.id) if quote.available else None
        if index is None:
            raise cmd.CommandError("the original is not in this room's loaded history")
        self.app.timeline.files_only = False
        self.app.timeline.select_at(index)

    def selected_or_newest(self, tab: RoomTab) -> Message[Room]:
        """The selected message, else the newest shown message of ``tab``."""
        selected = self.app.timeline.selected
        if selected is not None and selected.message is not None:
            return selected.message
        for entry in reversed(tab.log.entries):
            if entry.message is not None and not entry.message.deleted:
                return entry.message
        raise cmd.CommandError(f"there is no message in {tab.name} yet")

    # ------------------------------------------------------------ the library's news

    def changed(self, message: Message[Room]) -> None:
        """``message`` is now as given (edited, reacted to): redraw its entry, and the
        quotes of replies to it."""
        tab = self.app.tabs.get(message.room.name)
        if tab is None:
            return
        index = tab.log.find(message.id)
        if index is not None:
            self.put(tab, index, message)
        self._requote(tab, message)
        self.app.timeline.changed(tab.log)

    def deleted(self, room: Room, message_id: bytes) -> None:
        """Its sender deleted ``message_id``: its entry says so, its text is gone."""
        tab = self.app.tabs.get(room.name)
        if tab is None:
            return
        index = tab.log.find(message_id)
        if index is None:
            return
        old = tab.log.entries[index].message
        assert old is not None  # find() only matches message entries
        gone = dataclasses.replace(
            old, text="", deleted=True, edited=False, reactions=(), file=None, reply_to=None
        )
        self.put(tab, index, gone)
        self._requote(tab, gone)
        if self.composing is not None and self.composing.message.id == message_id:
            self.cancel()
        self.app.timeline.changed(tab.log)

    def put(self, tab: RoomTab, index: int, message: Message[Room]) -> None:
        """Draw entry ``index`` of ``tab`` again, showing ``message``."""
        (entry,) = self.app._entries([message])
        self._replace(tab, index, entry)

    def _replace(self, tab: RoomTab, index: int, entry: Entry) -> None:
        old = tab.log.entries[index]
        tab.log.replace(index, entry)
        if self.app.timeline.selected is old:
            self.app.timeline.selected = entry

    # ------------------------------------------------------------ read receipts

    def read_by(self, room: Room, member: Member, message_id: bytes) -> None:
        """``member`` read ``room`` up to ``message_id`` (its receipt): the "read by" of
        its footer moves there from the message it read up to before."""
        tab = self.app.tabs.get(room.name)
        if tab is None or member.is_me:
            return
        before = tab.read(member, message_id)
        for moved in {message_id, before or message_id}:
            index = tab.log.find(moved)
            message = tab.log.entries[index].message if index is not None else None
            if index is not None and message is not None:
                self.put(tab, index, message)
        self.app.timeline.changed(tab.log)

    # ------------------------------------------------------------ trust on lines shown

    def remark(self, tab: RoomTab, members: Mapping[bytes, Member]) -> None:
        """The lines of ``tab`` show each sender, and each quoted sender, as ``members``
        (the room's roster now, by key) says: a line whose marker or label would differ
        is drawn again. Trust belongs to the key, so a key verified, unverified,
        petnamed, renamed or flagged as a look-alike today shows so on what it wrote
        yesterday too."""
        changed: dict[int, Message[Room]] = {}
        for index, entry in enumerate(tab.log.entries):
            message = entry.message
            if message is not None and (now := as_known(message, members)) is not message:
                changed[index] = now
        if not changed:
            return
        entries = self.app._entries(list(changed.values()))  # the room's labels once
        for index, entry in zip(changed, entries, strict=True):
            self._replace(tab, index, entry)
        self.app.timeline.changed(tab.log)

    def _requote(self, tab: RoomTab, original: Message[Room]) -> None:
        """Replies on screen quote ``original`` as it is now."""
        for index, entry in enumerate(tab.log.entries):
            reply = entry.message
            quote = reply.reply_to if reply is not None else None
            if reply is None or quote is None or quote.id != original.id:
                continue
            excerpt = "" if original.deleted else original.text.strip().split("\n", 1)[0][:80]
            requoted = dataclasses.replace(quote, excerpt=excerpt, deleted=original.deleted)
            self.put(tab, index, dataclasses.replace(reply, reply_to=requoted))

    # ------------------------------------------------------------ read state

    def unread_changed(self, event: UnreadChanged[Room]) -> None:
        """The library's counts for a room moved: the sidebar shows them, except for
        the room on screen, which is read as it comes."""
        name = event.room.name
        row = self.app.room_list.rows.get(name)
        tab = self.app.tabs.get(name)
        if row is None or tab is None:
            return
        if name == self.app.current:
            if event.unread:
                self.mark_read(tab)
            return
        row.unread, row.mentions = event.unread, event.mentions

    def shown(self, tab: RoomTab) -> None:
        """``tab`` came on screen: a line marks its first unread message, and the room
        is read."""
        unread = tab.room.unread
        if unread:
            self._place_unread_line(tab, tab.room.read_seq, unread)
        self.mark_read(tab)

    def hidden(self, tab: RoomTab) -> None:
        """``tab`` left the screen: its "new messages" line is read, so it goes."""
        line, tab.unread_line = tab.unread_line, None
        if line is not None and line in tab.log.entries:
            tab.log.remove(tab.log.entries.index(line))

    def _place_unread_line(self, tab: RoomTab, read_seq: int, count: int) -> None:
        self.hidden(tab)
        entries = tab.log.entries
        first = next(
            (
                i
                for i, entry in enumerate(entries)
                if entry.message is not None
                and entry.message.seq > read_seq
                and not (entry.message.own or entry.message.sender.is_me)
            ),
            None,
        )
        if first is None:
            return
        line: Entry = unread_line(count, entries[first].message.sent_at, self.app.timezone)  # type: ignore[union-attr]
        tab.unread_line = line
        tab.log.insert(first, line)

    def mark_read(self, tab: RoomTab) -> None:
        """Move the room's read marker to its newest message: at once, unless it moved
        less than ``READ_MARK_EVERY`` ago; then once that is over, for every ask
        meanwhile together (one call at a time)."""
        if tab.name in self._marking:
            self._mark_again.add(tab.name)
            return
        self._marking.add(tab.name)
        self.app.run_worker(self._mark(tab), group="read")

    async def _mark(self, tab: RoomTab) -> None:
        try:
            while True:
                self._mark_again.discard(tab.name)
                try:
                    await tab.room.mark_read()
                except E2EChatError:
                    return  # left meanwhile, or closed: nothing to mark
                await asyncio.sleep(READ_MARK_EVERY)
                if tab.name not in self._mark_again:
                    return
        finally:
            self._marking.discard(tab.name)


def as_known(message: Message[Room], members: Mapping[bytes, Member]) -> Message[Room]:
    """``message`` with its sender and quoted sender as ``members`` knows their keys now
    (``message`` itself if neither would show differently)."""
    sender = _known(message.sender, members)
    quote = message.reply_to
    quoted = quote.sender if quote is not None else None
    quoted_now = _known(quoted, members) if quoted is not None else None
    if sender is message.sender and quoted_now is quoted:
        return message
    if quote is not None and quoted_now is not quoted:
        quote = dataclasses.replace(quote, sender=quoted_now)
    return dataclasses.replace(message, sender=sender, reply_to=quote)


def _known(member: Member, members: Mapping[bytes, Member]) -> Member:
    now = members.get(member.key)
    return member if now is None or _shown_as(now) == _shown_as(member) else now


def _shown_as(member: Member) -> tuple[object, ...]:
    """What of a member a line shows: its label and what decides its marker and tag."""
    return (
        member.display_name,
        member.verified,
        member.lookalikes,
        member.mixed_script,
        member.predecessor,
    )
