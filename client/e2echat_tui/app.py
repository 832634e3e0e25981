"""The chat application: layout, key bindings, command execution, event rendering.

It renders an ``e2echat.Client`` through the library's public types. The library's
messages and events arrive as Textual messages (``ChatMessage``, ``ChatEvent``) posted
by two pump workers; what is on screen follows reactive state (the shown room, its
roster, the connection state, my name) that the widgets bind to. Library calls run in
workers so the screen never waits on the network, and the failures a user can act on
arrive as notices in the timeline and a toast, never as tracebacks.
"""

import asyncio
import functools
import os
import time
import webbrowser
from collections.abc import AsyncIterable, Callable, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

import textual.message
from platformdirs import user_downloads_path
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Footer

import e2echat
from e2echat import (
    CatchingUp,
    ClockSkewed,
    ConnectionChanged,
    ConnectionReplaced,
    E2EChatError,
    LogBehind,
    Member,
    MemberJoined,
    MemberLeft,
    MemberRenamed,
    MemberValidated,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    Notice,
    PresenceChanged,
    ReactionsChanged,
    ReadReceipt,
    Room,
    RoomChanged,
    RoomDeleted,
    RoomFrozen,
    RoomJoined,
    RoomLeft,
    RoomLost,
    SecretRequired,
    SendFailed,
    SuccessorAnnounced,
    Undecryptable,
    UnreadChanged,
)
from e2echat_tui import commands as cmd
from e2echat_tui import terminal
from e2echat_tui.chooser import Choice, choose
from e2echat_tui.completion import Completion, complete
from e2echat_tui.composer import CompletionMenu, Composer, InputHistory
from e2echat_tui.config import Preferences
from e2echat_tui.conversation import MessageActions
from e2echat_tui.dialogs import ConfirmScreen, PasswordScreen, ReadingScreen, VerifyScreen
from e2echat_tui.files import human_size, is_image
from e2echat_tui.format import Level, counted, message_entry, peer_label, system_entry
from e2echat_tui.header import Header, Topic
from e2echat_tui.keys import APP_KEYS, help_lines
from e2echat_tui.lines import Entry, RoomLog
from e2echat_tui.links import links_in
from e2echat_tui.members import MembersPanel, sorted_members
from e2echat_tui.moderation import info_view, moderate
from e2echat_tui.names import pick_member
from e2echat_tui.notify import DesktopNotifier
from e2echat_tui.preview import Graphics, PreviewScreen, describe_image, image_widget
from e2echat_tui.progress import Activity, CatchUp, ProgressBoard
from e2echat_tui.rooms import RoomTab
from e2echat_tui.safe import escape_controls
from e2echat_tui.sidebar import RoomList
from e2echat_tui.timeline import Timeline
from e2echat_tui.transfers import Running, Transfers
from e2echat_tui.trust import (
    labels,
    marked_name,
    plain_name,
    tag,
    trust_label,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _readable_file(typed: str) -> Path:
    """The file ``/upload`` names (``~`` expanded), or a ``CommandError``."""
    path = Path(os.path.expanduser(typed))
    if not _is_file(path):
        raise cmd.CommandError(f"{typed} is not a file that can be read")
    return path


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _size_label(path: Path) -> str:
    try:
        return human_size(path.stat().st_size)
    except OSError:
        return "size unknown"


def _has(room: Room, member: Member) -> bool:
    return any(each.key == member.key for each in room.member_list)


class ChatMessage(textual.message.Message):
    """A room message from the library."""

    def __init__(self, message: e2echat.Message[Room]) -> None:
        super().__init__()
        self.message = message


class ChatEvent(textual.message.Message):
    """An event from the library (joins, presence, key changes, the connection, ...)."""

    def __init__(self, event: e2echat.Event) -> None:
        super().__init__()
        self.event = event


class ChatApp(App[None]):
    """The e2echat terminal client over a connected ``e2echat.Client``."""

    TITLE = "e2echat"
    # Below 100 columns the members panel gives way and the sidebar narrows, so that an
    # 80x24 terminal still has a timeline wide enough to read (f2 toggles the panel).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (typed by App)
    CSS = """
    Screen.-narrow #members { display: none; }
    Screen.-narrow.-members-toggled #members { display: block; }
    Screen.-wide.-members-toggled #members { display: none; }
    Screen.-narrow RoomList { width: 16; }
    #main { height: 1fr; }
    #centre { width: 1fr; }
    #composer { border: tall $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [spec.binding() for spec in APP_KEYS]

    BACKLOG_CHUNK = 500
    MENTION_QUIET = 3.0  # seconds between two announced mentions

    current: reactive[str | None] = reactive(None, init=False)
    """The room on screen."""
    roster: reactive[tuple[Member, ...]] = reactive(())
    """The members of the room on screen, as last known."""
    connection: reactive[str] = reactive("connecting")
    relay_url: reactive[str] = reactive("")
    """The relay URL in use: the node connected to, or the one dialled next."""
    user: reactive[str] = reactive("")
    """My display name."""
    progress_text: reactive[str] = reactive("")
    """What ``progress`` shows in the status line."""

    def __init__(
        self,
        chat: e2echat.Client,
        *,
        room: str | None = None,
        timezone: tzinfo | None = None,
        clock: Callable[[], datetime] = _utc_now,
        bell: bool = True,
        toast: bool = True,
        history: int = 10_000,
        first_page: int = 200,
        graphics: Graphics | None = None,
        downloads: Path | None = None,
        preferences: Preferences | None = None,
    ) -> None:
        """``room`` is shown first; ``timezone`` and ``clock`` make screenshots reproducible;
        ``bell``/``toast`` say how a mention of me is announced; ``history`` is the number
        of stored messages loaded per room (and the scrollback kept): the newest
        ``first_page`` before the first frame, the older ones right after. ``graphics``
        is the terminal's image protocol (``preview.detect_graphics``, asked before the
        app starts); ``downloads`` is where files are saved (the platform's folder);
        ``preferences`` are the config file's keys, notifications and theme.

        The app subscribes to ``chat``'s messages and events here, so an app made before
        ``chat`` connects misses nothing of the session (what it also reads from the
        store is skipped by seq)."""
        super().__init__()
        self.chat = chat
        self.set_reactive(ChatApp.relay_url, chat.url)
        # Unbounded: the pumps move each item at once into Textual's queue, but only from
        # mount on, and a catch-up may publish more than the library's bound (10,000) by
        # then; bounded, the oldest would be dropped, and what came after the history
        # was read would be missing on screen.
        self._messages: AsyncIterable[e2echat.Message[Room]] = chat.messages(bounded=False)
        self._events: AsyncIterable[e2echat.Event] = chat.events(bounded=False)
        self.timezone = timezone
        self.clock = clock
        self.bell_on_mention = bell
        self.toast_on_mention = toast
        self.history_limit = history
        self.first_page = min(first_page, history)
        self.ready = asyncio.Event()
        self.backlog_loaded = asyncio.Event()
        self.first_room = room
        self.tabs: dict[str, RoomTab] = {}
        self.listed_rooms: list[str] = []  # the relay's listed rooms, as last asked
        self.roomless_history = InputHistory()  # what was sent while in no room
        self.graphics = graphics
        self.downloads = downloads
        self.saved: dict[bytes, Path] = {}  # blob id -> where this session saved it
        self.preferences = preferences or Preferences()
        self.muted = set(self.preferences.muted)  # rooms that never notify (/mute)
        self.desktop = DesktopNotifier() if self.preferences.desktop else None
        self.progress = ProgressBoard(self._progress_changed)
        """Long work for the status line: ``progress.start(label, total)``."""
        self._connecting: Activity | None = None
        self.transfers = Transfers(self.progress, self._transfers_changed)
        """The running uploads and downloads (in the status line)."""
        self.actions = MessageActions(self)
        """Replies, edits, deletes, reactions and read state."""
        self._catch_ups: dict[str, CatchUp] = {}  # by room name
        self._removed: dict[str, str] = {}  # room name: who kicked or banned me, till it goes

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Save a screenshot (the command palette's "Save screenshot") in the downloads
        folder, made first if it does not exist: Textual's own fails without it."""
        folder = Path(path) if path else self.downloads or user_downloads_path()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.error_notice(f"The screenshot cannot be saved in {folder}: {exc.strerror}")
            return None
        return super().deliver_screenshot(filename, str(folder), time_format)

    def get_driver_class(self) -> type[Driver]:
        """The terminal driver that keeps pastes whole and reports Alt+Enter."""
        return terminal.driver_class() or super().get_driver_class()

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        header = Header(self.relay_url, self.chat.fingerprint, id="header")
        yield header.data_bind(
            url=ChatApp.relay_url,
            state=ChatApp.connection,
            user=ChatApp.user,
            progress=ChatApp.progress_text,
        )
        with Horizontal(id="main"):
            yield RoomList(id="rooms").data_bind(ChatApp.current)
            with Vertical(id="centre"):
                yield Topic(id="topic")
                yield Timeline(id="timeline")
                yield CompletionMenu(id="completions")
                yield Composer(
                    completer=self._complete,
                    keymap=self.preferences.keymap,
                    vi=self.preferences.vi,
                    id="composer",
                )
            yield MembersPanel(id="members").data_bind(members=ChatApp.roster)
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def room_list(self) -> RoomList:
        return self.query_one(RoomList)

    async def on_mount(self) -> None:
        app_keys = {spec.id for spec in APP_KEYS}
        self.set_keymap({k: v for k, v in self.preferences.keymap.items() if k in app_keys})
        if self.preferences.theme is not None:
            self.theme = self.preferences.theme
        self.connection, self.user = str(self.chat.state), self.chat.name or ""
        self._connection_progress(self.connection)
        for room in self.chat.rooms:
            await self._add_room(room)
        first = self.first_room if self.first_room in self.tabs else next(iter(self.tabs), None)
        self.current = first
        self.composer.focus()
        self.run_worker(self._pump(self._messages, ChatMessage), name="messages", group="pump")
        self.run_worker(self._pump_events(), name="events", group="pump")
        # (the coroutine is made only then: an app that ends first leaves none unawaited)
        self.call_after_refresh(lambda: self.run_worker(self._load_backlog(), group="history"))
        self.run_worker(self._learn_listed_rooms(), group="commands")
        self.ready.set()

    async def _learn_listed_rooms(self) -> None:
        """The relay's listed rooms, for completing ``/join`` (best effort)."""
        try:
            self.listed_rooms = [summary.name for summary in await self.chat.list_rooms()]
        except E2EChatError:
            return

    async def _pump(
        self, source: AsyncIterable[Any], wrap: Callable[[Any], textual.message.Message]
    ) -> None:
        async for item in source:
            self.post_message(wrap(item))

    async def _pump_events(self) -> None:
        """The library's events as ``ChatEvent``s, in order, but for the start of a
        catch-up, taken at once: the messages it brings may be queued ahead of it
        (thousands, at start), and the status line counts them as they are shown. Its
        end comes in order, after them; a lost connection ends it here too, in order
        with the starts."""
        async for event in self._events:
            if isinstance(event, CatchingUp) and not event.finished:
                self._catch_up_started(event)
                continue
            if isinstance(event, ConnectionChanged) and str(event.state) != "connected":
                self._end_catch_ups()  # a catch-up cut short starts again at the next connect
            self.post_message(ChatEvent(event))

    async def _add_room(self, room: Room) -> None:
        """Start showing ``room`` with its stored history (idempotent: a command and the
        library's ``RoomJoined`` event may both ask)."""
        if room.name in self.tabs:
            return
        tab = self.tabs[room.name] = RoomTab(room, RoomLog(self.history_limit))  # claimed
        row = self.room_list.add(room.name, room.secret, self._peer_label(room))
        row.muted = room.name in self.muted
        if room.name != self.current:  # the counts of the library survive restarts
            row.unread, row.mentions = room.unread, room.mentions
        history = await room.history(limit=self.first_page)
        pending = await room.pending()  # sent before a restart, and not stored yet
        if not self.is_running:
            return  # the app is closing: its widgets are going away
        tab.log.extend(self._entries([*history, *pending]))
        tab.loaded_seq = max((message.seq for message in history), default=0)
        if history and len(history) == self.first_page:  # there may be older messages
            tab.older_than = min((m.seq for m in history if m.seq), default=0)
        self.timeline.appended(tab.log)

    async def _load_backlog(self) -> None:
        """After the first frame: the rest of each room's history, above what is shown."""
        for tab in list(self.tabs.values()):
            await self._load_older(tab)
        self.backlog_loaded.set()

    async def _load_older(self, tab: RoomTab) -> None:
        oldest, tab.older_than = tab.older_than, None  # claimed: loaded once only
        if oldest is None or self.tabs.get(tab.name) is not tab:
            return
        loading = self.progress.start(f"loading #{tab.name} history")
        try:
            history = await tab.room.history(limit=self.history_limit)
            older = [message for message in history if 0 < message.seq < oldest]
            for end in range(len(older), 0, -self.BACKLOG_CHUNK):  # newest first, yielding
                if not self.is_running:
                    return  # the app is closing: its widgets are going away
                chunk = older[max(end - self.BACKLOG_CHUNK, 0) : end]
                tab.log.prepend(self._entries(chunk))
                self.timeline.prepended(tab.log)
                loading.advance(len(older) - end + len(chunk), len(older))
                # a frame between chunks, and the keys that came meanwhile: a bare
                # sleep(0) let the next chunk in before the screen painted again
                await self.timeline.wait_for_refresh()
        finally:
            loading.finish()

    def _entries(self, messages: Sequence[e2echat.Message[Room]]) -> list[Entry]:
        """Timeline entries for messages of one room (its labels and who read what
        looked up once)."""
        if not messages:
            return []
        room = messages[0].room
        shown = labels(room.member_list)
        tab = self.tabs.get(room.name)
        readers = tab.readers if tab is not None else {}
        failed = tab.failed if tab is not None else {}
        return [
            message_entry(
                message,
                self.timezone,
                shown,
                readers.get(message.id, ()),
                failed.get(message.send_id) if message.send_id else None,
            )
            for message in messages
        ]

    def show_sent(self, tab: RoomTab, message: e2echat.Message[Room]) -> None:
        """Show our ``message`` as ``send`` returned it (pending while its seq is 0) or
        as its ``MessageSent`` says: in place of its pending entry, else at the bottom.
        An entry of it that is confirmed already stays (a ``MessageSent`` can come
        before the pending copy that ``send`` returned), as does one from history."""
        index = tab.log.find_sent(message.send_id)
        if index is None:
            if 0 < message.seq <= tab.loaded_seq:
                return
            tab.log.extend(self._entries([message]))
            self.timeline.appended(tab.log)
            return
        shown = tab.log.entries[index].message
        if message.seq and shown is not None and not shown.seq:
            self.actions.put(tab, index, message)
            self.timeline.changed(tab.log)

    def _send_failed(self, event: SendFailed[Room]) -> None:
        """The library gave up sending our message ``event.send_id``: its entry says why
        (or a line does, for an edit, delete or reaction), and a toast."""
        room = event.room
        tab = self.tabs.get(room.name)
        if tab is None:
            return
        tab.failed[event.send_id] = event.reason
        index = tab.log.find_sent(event.send_id)
        message = tab.log.entries[index].message if index is not None else None
        if index is not None and message is not None:
            self.actions.put(tab, index, message)
            self.timeline.changed(tab.log)
        else:
            self._append(room.name, event.text, Level.ERROR)
        toast = escape_controls(f"{room.name}: {event.text}")
        self.notify(toast, severity="error", markup=False)

    def _who(self, room: Room | None, member: Member) -> str:
        """``member``'s trust marker and name for a line about it, tagged if it could pass
        for someone else in the room (or a contact)."""
        rooms = [room] if room is not None else self.chat.rooms
        return marked_name(member, labels(m for r in rooms for m in r.member_list))

    @property
    def shown(self) -> RoomTab | None:
        """The room on screen."""
        return self.tabs.get(self.current) if self.current is not None else None

    def _complete(self, before: str) -> Completion:
        return complete(before, self.roster, [*self.tabs, *self.listed_rooms])

    # ---------------------------------------------------------------- reactive state

    def watch_current(self, old: str | None, new: str | None) -> None:
        composer, previous, tab = self.composer, self.tabs.get(old or ""), self.shown
        if self.actions.composing is not None:
            self.actions.cancel()  # a reply or edit belongs to the room it was started in
        if previous is not None:
            previous.draft = composer.text
            self.actions.hidden(previous)
        composer.input_history = tab.history if tab else self.roomless_history
        if previous is not None:
            composer.set_draft(tab.draft if tab else "")
        elif tab is not None and tab.draft:  # after the room's own draft, if it had one
            composer.set_draft("\n".join(filter(None, (tab.draft, composer.text))))
        # else what was written while no room was shown (before the first one came, or
        # while a /join ran) stays where it is, cursor and all: it is now the room's
        if tab is not None:
            self.actions.shown(tab)
        self.timeline.show(tab.log if tab else RoomLog())
        self.query_one(Topic).room = tab.room if tab else None
        self._sync_roster()

    def _sync_roster(self, room: Room | None = None) -> None:
        """Take the shown room's roster from the library (if ``room`` is it, or is None)."""
        tab = self.shown
        if room is None or (tab is not None and tab.room.name == room.name):
            self.roster = tuple(tab.room.member_list) if tab else ()
        topic = self.query_one(Topic)
        if tab is not None and tab.room.peer is not None:  # its header names the peer
            topic.known = tuple(m for t in self.tabs.values() for m in t.room.member_list)
            topic.refresh()

    def switch_to(self, name: str) -> None:
        """Show room ``name`` (its unread and mention badges clear)."""
        if name in self.tabs:
            self.current = name

    def _append(self, room: str, entry_text: str, level: Level) -> None:
        tab = self.tabs.get(room)
        if tab is None:
            return
        tab.log.append(system_entry(entry_text, self.clock(), self.timezone, level))
        self.timeline.appended(tab.log)

    def say(self, text: str, level: Level = Level.INFO) -> None:
        """A system line in the current room (or a toast when no room is open)."""
        if self.current in self.tabs:
            self._append(self.current, text, level)
        else:
            self.notify(escape_controls(text, keep_newlines=True), markup=False)

    def error_notice(self, text: str) -> None:
        """A readable failure: a red line in the timeline (if a room is shown) and an
        error toast."""
        if self.current in self.tabs:
            self._append(self.current, text, Level.ERROR)
        self.notify(
            escape_controls(text, keep_newlines=True), title="Error", severity="error", markup=False
        )

    # ---------------------------------------------------------------- keys

    def action_next_active(self) -> None:
        names = list(self.tabs)
        if not names:
            return
        start = names.index(self.current) + 1 if self.current in names else 0
        rows = self.room_list.rows
        ordered = names[start:] + names[:start]
        target = next((n for n in ordered if rows[n].mentions), None) or next(
            (n for n in ordered if rows[n].unread), None
        )
        if target is not None:
            self.switch_to(target)

    def action_cycle_room(self, step: int) -> None:
        names = list(self.tabs)
        if names:
            index = names.index(self.current) if self.current in names else 0
            self.switch_to(names[(index + step) % len(names)])

    def action_show_room(self, number: int) -> None:
        """Alt+N: the Nth room of the sidebar."""
        names = list(self.tabs)
        if 0 < number <= len(names):
            self.switch_to(names[number - 1])

    def action_switch_room(self) -> None:
        """A fuzzy finder over the joined rooms (Textual's command palette); a direct
        conversation is found by the other person's name, never by its random one."""
        rows = self.room_list.rows

        def about(name: str) -> str:
            row = rows.get(name)
            badges = [f"{row.unread} unread" if row and row.unread else ""]
            badges.append(f"{row.mentions} mentions" if row and row.mentions else "")
            badges.append("muted" if name in self.muted else "")
            return " · ".join(b for b in badges if b) or "no unread messages"

        def shown(name: str) -> str:  # a direct conversation as the sidebar names it
            row = rows.get(name)
            return f"@ {row.peer}" if row is not None and row.peer is not None else name

        rooms = [
            Choice(shown(n), functools.partial(self.switch_to, n), about(n)) for n in self.tabs
        ]
        choose(self, rooms, "Room…")

    def action_newest(self) -> None:
        self.timeline.newest()

    def on_composer_past_end(self, _event: Composer.PastEnd) -> None:
        self.timeline.newest()

    def action_open_link(self) -> None:
        """Offer the links of the shown room, newest first; the chosen one goes to the
        system's opener (``webbrowser``): nothing opens without this key and a choice."""
        tab = self.shown
        found = links_in(tab.log.entries if tab else [])
        if not found:
            self.say("No link in this room's recent messages.")
            return
        links = [Choice(x.url, functools.partial(self._open, x.url), x.about) for x in found]
        choose(self, links, "Link to open…")

    def _open(self, url: str) -> None:
        self.say(f"Opening {url}")
        self.run_worker(asyncio.to_thread(webbrowser.open, url), group="commands")

    def action_scroll_timeline(self, pages: int) -> None:
        if pages < 0:
            self.timeline.scroll_page_up(animate=False)
        else:
            self.timeline.scroll_page_down(animate=False)

    def action_toggle_members(self) -> None:
        self.screen.toggle_class("-members-toggled")

    def action_help(self) -> None:
        self.show_help()

    def action_select_message(self) -> None:
        if self.timeline.select_newest() is None:
            self.say("No message in this room yet.")
            return
        self.timeline.focus()

    def action_select_files(self) -> None:
        if self.timeline.select_newest_file() is None:
            self.say("No file in this room yet: /upload PATH sends one.")
            return
        self.timeline.focus()

    def _transfers_changed(self) -> None:
        if self.screen_stack:  # (none once the app is closing)
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``f4`` is offered in the footer only while a transfer runs. The timeline's
        scroll keys, bound with priority, pass over it while a dialog is on top, so the
        dialog's own text scrolls instead of the timeline behind it."""
        if action in ("scroll_timeline", "newest"):
            return not isinstance(self.screen, ModalScreen)
        return action != "cancel_transfer" or bool(self.transfers.running)

    def action_cancel_transfer(self) -> None:
        entry = self.transfers.newest()
        if entry is not None:
            entry.transfer.cancel()

    def on_timeline_chosen(self, event: Timeline.Chosen) -> None:
        message = event.entry.message
        if message is None:
            return
        if message.file is not None and event.action in ("open", "preview"):
            work = self._preview(message) if event.action == "preview" else self._download(message)
            self.run_worker(self._guarded(work), group="transfers")
            return
        self.run_worker(self._guarded(self.actions.act(event.action, message)), group="commands")

    def on_timeline_left(self, _event: Timeline.Left) -> None:
        self.composer.focus()

    def on_room_list_picked(self, event: RoomList.Picked) -> None:
        self.switch_to(event.room)
        self.composer.focus()

    # ---------------------------------------------------------------- commands

    def on_composer_submitted(self, event: Composer.Submitted) -> None:
        """Run or send the draft. A draft that cannot go anywhere (a mistyped command,
        text with no room open) stays in the composer; one whose command fails comes
        back (without any secret) unless something new was written meanwhile."""
        line = event.text
        if not line.strip():
            self._keep_draft(event.composer, line)
            return
        try:
            parsed = cmd.parse(line)
        except cmd.CommandError as exc:
            self.error_notice(str(exc))
            self._keep_draft(event.composer, line)
            return
        tab = self.shown
        if isinstance(parsed, cmd.SendText) and tab is None:
            self.error_notice("you are in no room: /join NAME or /create NAME first")
            self._keep_draft(event.composer, line)
            return
        event.composer.input_history.remember(line)
        self.run_worker(self.execute(parsed, tab, line), group="commands")

    @staticmethod
    def _keep_draft(composer: Composer, line: str) -> None:
        """Put back a draft that cannot go anywhere, before what was typed since."""
        composer.set_draft(line + composer.text)

    def on_composer_cancelled(self, _event: Composer.Cancelled) -> None:
        self.actions.cancel()

    def on_composer_escaped(self, event: Composer.Escaped) -> None:
        self.say(
            f"The paste held {event.count} control character(s): they are shown as "
            "escapes like \\x1b and would be sent that way.",
            Level.WARNING,
        )

    def on_composer_file_pasted(self, event: Composer.FilePasted) -> None:
        self.run_worker(self._offer_upload(event.path, event.text), group="transfers")

    def on_composer_completing(self, event: Composer.Completing) -> None:
        self.query_one(CompletionMenu).show(event.completion, event.index)

    async def execute(self, parsed: cmd.Parsed, tab: RoomTab | None = None, line: str = "") -> None:
        """Run one parsed composer line written in ``tab``; expected failures become
        notices, and the line goes back to that room's draft."""
        await self._guarded(self._execute(parsed, tab, line), tab, line)

    async def _guarded(self, work: Any, tab: RoomTab | None = None, line: str = "") -> None:
        """Run a command's work: its expected failures become notices, and ``line``, the
        composer line that asked for it (if any), goes back to the draft of ``tab``."""
        try:
            await work
        except (cmd.CommandError, E2EChatError) as exc:
            self.error_notice(str(exc))
            self._restore(tab, cmd.history_text(line))

    def _restore(self, tab: RoomTab | None, line: str) -> None:
        """Give ``line`` back to the draft of ``tab`` if that draft is still empty."""
        if not line:
            return
        if tab is self.shown:
            if not self.composer.text:
                self.composer.set_draft(line)
        elif tab is not None and not tab.draft:
            tab.draft = line

    async def _execute(self, parsed: cmd.Parsed, origin: RoomTab | None, line: str) -> None:
        """Run ``parsed``, the composer ``line`` written in ``origin``. A transfer runs on
        in a worker of its own, which gives ``line`` back to that draft if it fails."""
        match parsed:
            case cmd.SendText(text):
                await self._send(text)
            case cmd.Create():
                await self._create(parsed)
            case cmd.Join():
                await self._join(parsed)
            case cmd.Msg(name, text):
                await self._direct(name, text)
            case cmd.Leave():
                tab = self._require_room()
                await tab.room.leave()
                self._room_left(tab.room)
            case cmd.Invite():
                invite = self._require_room().room.invite()
                self.say(f"Invite for {self.current} (anyone holding it can join): {invite}")
                self.copy_to_clipboard(invite)
            case cmd.SetStatus(status, text):
                await self.chat.set_status(status, text)
                self._sync_roster()
                self.say(f"Your status is now {status}" + (f": {text}" if text else ""))
            case cmd.Verify(name):
                await self._verify(name)
            case cmd.Unverify(name):
                await self._unverify(name)
            case cmd.Petname(name, petname):
                await self._set_petname(name, petname)
            case cmd.Members():
                await self._list_members()
            case cmd.RoomInfo():
                room = self._require_room().room
                who = functools.partial(self._who, room)
                info = info_view(room, await room.changes(), who, self.timezone)
                await self.push_screen_wait(ReadingScreen(info))
            case cmd.Moderate(action, name):
                await moderate(self._require_room().room, action, name)
            case cmd.ChangePassword():
                room = self._require_room().room
                if room.access != "password":
                    raise cmd.CommandError(
                        f"{room.name} has no password: /rotate gives an invite room a new secret"
                    )
                room.check_secret_change()  # a member who may not is told before any prompt
                password = await self._ask_new_password(f"New password for {room.name}:")
                if password is not None:
                    await room.change_password(password)
            case cmd.Rotate():
                await self._require_room().room.rotate_secret()
                self.say("Every earlier invite stops working: /invite prints the new one.")
            case cmd.Rooms():
                await self._list_rooms()
            case cmd.Act(action):
                await self._send(cmd.ACTION_PREFIX + action)
            case cmd.Topic(text):
                await self._topic(text)
            case cmd.Names():
                await self._list_names()
            case cmd.Mute(mute):
                name = self._require_room().name
                (self.muted.add if mute else self.muted.discard)(name)
                self.room_list.rows[name].muted = mute
                self.say(
                    f"{name} is muted: no bell, toast or desktop notification from it"
                    if mute
                    else f"{name} notifies again"
                )
            case cmd.Clear():
                tab = self._require_room()
                tab.log, tab.older_than = RoomLog(self.history_limit), None  # none reloads
                self.timeline.show(tab.log)
            case cmd.Nick(name):
                await self._rename(name)
            case cmd.Upload(path):
                self._require_room()
                work = self._guarded(self._upload(path), origin, line)
                self.run_worker(work, group="transfers")
            case cmd.Download():
                work = self._guarded(self._download(self._file_to_fetch()), origin, line)
                self.run_worker(work, group="transfers")
            case cmd.Cancel():
                for entry in list(self.transfers.running):
                    entry.transfer.cancel()
            case cmd.React(emoji):
                tab = self._require_room()
                await self.actions.react(self.actions.selected_or_newest(tab), emoji)
            case cmd.Help(command):
                self.show_help(command)
            case cmd.Quit():
                self.exit()

    def _require_room(self) -> RoomTab:
        tab = self.shown
        if tab is None:
            raise cmd.CommandError("you are in no room: /join NAME or /create NAME first")
        return tab

    async def _send(self, text: str) -> None:
        tab = self._require_room()
        if await self.actions.send(tab, text):
            return
        self.show_sent(tab, await tab.room.send(text))

    # ---------------------------------------------------------------- files

    async def _follow(self, transfer: e2echat.Transfer[Any], name: str, direction: str) -> Any:
        """Show ``transfer`` in the status line until it ends; its result, or None if
        it was cancelled (by f4 or /cancel: leaving the app cancels the worker too)."""
        entry: Running = self.transfers.start(transfer, name, direction)
        try:
            async for progress in transfer:
                self.transfers.advance(entry, progress)
            return await transfer
        except asyncio.CancelledError:
            if not transfer.done() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # the worker itself was cancelled
            self.say(f"{direction.capitalize()} of {name} cancelled: nothing was kept.")
            return None
        finally:
            self.transfers.finish(entry)

    async def _offer_upload(self, path: Path, text: str) -> None:
        """A pasted file path: ask before uploading; a "no" pastes it as text."""
        tab = self.shown
        if tab is None:
            self.composer.insert_paste(text)
            return
        question = (
            f"Upload {path.name} ({_size_label(path)}) to {tab.name}?"
            " Everyone in the room can open it."
        )
        if await self.push_screen_wait(ConfirmScreen(question, "Upload")):
            await self._guarded(self._upload(str(path)))
        else:
            self.composer.insert_paste(text)

    async def _upload(self, typed: str) -> None:
        tab = self._require_room()
        path = _readable_file(typed)
        message = await self._follow(tab.room.send_file(path), path.name, "upload")
        if message is not None:
            self.show_sent(tab, message)

    def _file_to_fetch(self) -> e2echat.Message[Room]:
        """The selected file message, else the newest one of the shown room."""
        tab = self._require_room()
        selected = self.timeline.selected
        if selected is not None and selected.message is not None:
            return selected.message
        newest = next(
            (e.message for e in reversed(tab.log.entries) if e.message and e.message.file), None
        )
        if newest is None:
            raise cmd.CommandError(f"there is no file in {tab.name} to download")
        return newest

    async def _download(self, message: e2echat.Message[Room]) -> Path | None:
        info = message.file
        if info is None:
            return None
        name = escape_controls(info.name)
        fetching = message.download(self.downloads)
        saved: Path | None = await self._follow(fetching, info.name, "download")
        if saved is None:
            return None
        self.saved[info.blob] = saved
        self.say(f"Saved {name} ({human_size(info.size)}) as {saved}")
        return saved

    async def _preview(self, message: e2echat.Message[Room]) -> None:
        """Show an image file (fetched first if this session has not saved it)."""
        info = message.file
        if info is None:
            return
        if not is_image(info):
            raise cmd.CommandError(
                f"{info.name} is not an image ({info.media_type}): Enter saves it"
            )
        saved = self.saved.get(info.blob)
        if saved is None or not _is_file(saved):
            saved = await self._download(message)
            if saved is None:
                return
        if self.graphics is None:
            self.say(f"{escape_controls(info.name)}: {describe_image(saved, info.media_type)}")
            return
        try:
            picture = image_widget(saved, self.graphics)
        except ValueError as exc:
            raise cmd.CommandError(f"cannot preview {info.name}: {exc}") from None
        await self.push_screen_wait(PreviewScreen(picture, escape_controls(info.name)))

    async def _ask_password(self, prompt: str) -> str | None:
        return await self.push_screen_wait(PasswordScreen(prompt))

    async def _ask_new_password(self, prompt: str) -> str | None:
        """A password being set, asked for twice (a typo in a hidden entry would lock
        everyone out); None if either prompt is cancelled. Two entries that differ are
        refused before anything is sent."""
        password = await self._ask_password(prompt)
        if password is None:
            return None
        again = await self._ask_password("The same password again:")
        if again is None:
            return None
        if again != password:
            raise cmd.CommandError("the two passwords differ: nothing changed")
        return password

    async def _create(self, create: cmd.Create) -> None:
        password = None
        if create.ask_password:
            password = await self._ask_new_password(f"Password for the new room {create.name}:")
            if password is None:
                return
        room = await self.chat.create(create.name, password, secret=create.secret)
        if not room.secret:
            about = "an open room"
        elif password is None:
            about = "a secret room: /invite prints the invite string to share"
        else:
            about = "a secret room: its password lets others join"
        await self._enter(room, f"You created {room.name}, {about}")

    async def _join(self, join: cmd.Join) -> None:
        password, invite = None, None
        if join.ask_password:
            password = await self._ask_password(f"Password for {join.name}:")
            if password is None:
                return
        elif join.secret is not None:
            if cmd.looks_like_invite(join.secret):
                invite = join.secret
            else:
                password = join.secret
        try:
            room = await self.chat.join(join.name, password, invite)
        except SecretRequired as exc:
            # `/join NAME` of a password room: ask for it, as `/join NAME --password` does.
            if exc.needs != "password":
                raise
            password = await self._ask_password(f"Password for {join.name}:")
            if password is None:
                return
            room = await self.chat.join(join.name, password)
        await self._enter(room, f"You joined {room.name}")

    async def _enter(self, room: Room, said: str) -> None:
        """Show ``room``, just created or joined, with the one line ``said`` about it."""
        await self._add_room(room)
        self.switch_to(room.name)
        self.say(said)
        await self._load_older(self.tabs[room.name])

    def _peer_label(self, room: Room) -> str | None:
        """A direct conversation's other person as the sidebar shows it; else None."""
        return peer_label(room, [m for tab in self.tabs.values() for m in tab.room.member_list])

    async def _direct(self, name: str, text: str) -> None:
        """``/msg``: the direct conversation with the one member ``name`` means (by key:
        a name that fits several members is refused), shown; ``text`` is sent there."""
        members = {m.key: m for tab in self.tabs.values() for m in tab.room.member_list}
        others = [m for m in members.values() if not m.is_me]
        room = await self.chat.direct(
            pick_member(others, name, "msg", f"no member of your rooms is named {name}")
        )
        await self._add_room(room)
        self.switch_to(room.name)
        if text:
            self.show_sent(self.tabs[room.name], await room.send(text))

    async def _rename(self, name: str) -> None:
        """A signed rename: the relay announces it to every room we are in."""
        try:
            await self.chat.rename(name)
        finally:
            self.user = self.chat.name or ""
            self._sync_roster()
        self.say(f"You are now {self.chat.name}")

    def _member_named(self, name: str, command: str) -> tuple[Room, Member]:
        """The shown room and the one member of it ``name`` means (by key)."""
        room = self._require_room().room
        missing = f"no member named {name} in {room.name}"
        return room, pick_member(room.member_list, name, command, missing)

    async def _verify(self, name: str) -> None:
        """The safety number, and the key verified only by a deliberate press."""
        room, member = self._member_named(name, "verify")
        screen = VerifyScreen(member, self.chat.safety_number(member))
        if not await self.push_screen_wait(screen):
            return
        await self.chat.mark_verified(member)
        self.say(f"{self._who(room, await self._refreshed(room, member))} is verified")
        await self._remark()

    async def _unverify(self, name: str) -> None:
        room, member = self._member_named(name, "unverify")
        if member.is_me or not member.verified:
            raise cmd.CommandError(f"{self._who(room, member)} is not verified")
        await self.chat.unverify(member)
        self.say(f"{self._who(room, await self._refreshed(room, member))} is no longer verified")
        await self._remark()

    async def _set_petname(self, name: str, petname: str | None) -> None:
        room, member = self._member_named(name, "petname")
        if member.is_me:
            raise cmd.CommandError("a petname is your name for someone else's key")
        await self.chat.set_petname(member, petname)
        now = self._who(room, await self._refreshed(room, member))
        own = f"{escape_controls(member.name)}#{tag(member)}"
        self.say(f"{own} is {now} to you" if petname else f"{now} has no petname any more")
        await self._remark()

    async def _remark(self) -> None:
        """Every room's lines show their senders' keys as the library knows them now
        (after a change of trust, a rename, a successor): each roster is read again,
        and the sidebar's direct conversations name their peer with it."""
        for tab in list(self.tabs.values()):
            try:
                members = await tab.room.members()
            except E2EChatError:
                continue  # a room left meanwhile
            if not self.is_running:
                return  # the app is closing: its widgets are going away
            if self.tabs.get(tab.name) is tab:
                self.actions.remark(tab, {member.key: member for member in members})
        for tab in self.tabs.values():  # the sidebar names each direct peer as it is now
            row = self.room_list.rows.get(tab.name)
            if row is not None and tab.room.peer is not None:
                row.peer = self._peer_label(tab.room)

    async def _refreshed(self, room: Room, member: Member) -> Member:
        """``member`` as the library knows it now (after a trust change), the shown
        roster with it."""
        members = await room.members()  # refreshes the cached roster, which carries it
        self._sync_roster(room)
        return next((m for m in members if m.key == member.key), member)

    async def _list_members(self) -> None:
        room = self._require_room().room
        members = await room.members()
        lines = [f"{counted(len(members), 'member')} of {room.name}:"]
        shown = labels(members)
        for member in members:
            trust = trust_label(member)[0]
            line = f"  {plain_name(member, shown)} — {member.status}, {trust}"
            if member.status_text:  # the member's own words, last, on this one line
                line += " · " + escape_controls(member.status_text)
            lines.append(line)
        self.say("\n".join(lines))
        self._sync_roster(room)

    async def _list_rooms(self) -> None:
        summaries = await self.chat.list_rooms()
        self.listed_rooms = [summary.name for summary in summaries]
        lines = [f"{counted(len(summaries), 'listed room')} on the relay:"]
        for summary in summaries:
            kind = "secret" if summary.secret else "open"
            about = f" — {escape_controls(summary.description)}" if summary.description else ""
            members = counted(summary.member_count, "member")
            lines.append(f"  {summary.name} ({kind}, {members}){about}")
        self.say("\n".join(lines))

    async def _topic(self, text: str | None) -> None:
        """``/topic``: show the room's description; ``/topic TEXT``: set it, through the
        room's signed log (the library refuses a member who is not an admin or owner,
        and a text too long, before anything is sent)."""
        room = self._require_room().room
        if text is None:
            about = escape_controls(room.description) if room.description else "no description"
            self.say(f"Topic of {room.name}: {about}")  # one line, as the topic line shows it
            return
        await room.set_description(text)
        self._room_changed(room)
        self.say(f"You set the topic of {room.name}: {escape_controls(room.description)}")

    def _room_changed(self, room: Room) -> None:
        """A change of ``room``'s log (its description, roles, members) was applied."""
        if room.name == self.current:
            self.query_one(Topic).refresh(layout=True)

    async def _list_names(self) -> None:
        room = self._require_room().room
        members = sorted_members(await room.members())
        shown = labels(members)
        listed = ", ".join(marked_name(member, shown) for member in members)
        self.say(f"{counted(len(members), 'member')} in {room.name}: {listed}")
        self._sync_roster(room)

    def show_help(self, command: str | None = None) -> None:
        if command is not None:
            spec = cmd.spec(command)
            self.say(f"{spec.usage} — {spec.summary}")
            return
        lines = ["Commands:"]
        lines += [f"  {spec.usage} — {spec.summary}" for spec in cmd.COMMANDS]
        lines += ["Keys:"]
        lines += [f"  {key} — {what}" for key, what in help_lines(self.preferences.keymap)]
        if self.current in self.tabs:
            self.say("\n".join(lines))
        else:  # no timeline to hold it, and a toast is too short for it
            self.push_screen(ReadingScreen(Text("\n".join(lines))))

    # ---------------------------------------------------------------- the library's news

    def on_chat_message(self, posted: ChatMessage) -> None:
        if not self.is_running:
            return  # the app is closing: its widgets are going away
        message = posted.message
        name = message.room.name
        catch_up = self._catch_ups.get(name)
        if catch_up is not None and catch_up.shown(message.seq):
            self._end_catch_up(name)
        tab = self.tabs.get(name)
        if tab is None or 0 < message.seq <= tab.loaded_seq:
            return  # not a room we show, or already loaded from history
        tab.log.extend(self._entries([message]))
        if name == self.current:
            self.timeline.appended(tab.log)
        if self._notifies(message):
            self._announce(tab, message)

    def _notifies(self, message: e2echat.Message[Room]) -> bool:
        """Whether ``message`` is announced: never my own, nothing from a muted room;
        mentions of me, or (``on = "messages"``) any message of a room not shown."""
        if message.own or message.sender.is_me or message.room.name in self.muted:
            return False
        match self.preferences.notify_on:
            case "mentions":
                return message.mentions_me
            case "messages":
                return message.mentions_me or message.room.name != self.current
            case _:
                return False

    def _announce(self, tab: RoomTab, message: e2echat.Message[Room]) -> None:
        """Bell, toast and desktop notification, at most once per room every
        ``MENTION_QUIET`` seconds: anyone in a room can mention you, and a flood must
        not become a storm of bells and toasts (every message still counts in the
        sidebar, and mentions are highlighted in the timeline)."""
        now = time.monotonic()
        if now < tab.quiet_until:
            return
        tab.quiet_until = now + self.MENTION_QUIET
        title = f"{self._who(message.room, message.sender)} in " + escape_controls(
            message.room.name
        )
        body = escape_controls(message.text)[:200]
        if self.bell_on_mention:
            self.bell()
        if self.toast_on_mention:
            self.notify(body, title=title, markup=False)
        if self.desktop is not None:
            self.run_worker(self._desktop_notify(title, body), group="notify")

    async def _desktop_notify(self, title: str, body: str) -> None:
        assert self.desktop is not None
        problem = await self.desktop.send(title, body)
        if problem is not None:
            self.say(problem, Level.WARNING)

    def on_chat_event(self, posted: ChatEvent) -> None:
        if not self.is_running:
            return  # the app is closing: its widgets are going away
        match posted.event:
            case ConnectionChanged(state=state, detail=detail):
                self._connection_changed(str(state), detail)
            case MemberJoined(room=room, member=member):
                self._joined(room, member)
            case MemberRenamed(member=member, previous=previous):
                self._renamed(member, previous)
            case SuccessorAnnounced(room=room, member=member, successor=new, carried=carried):
                after = "your verification carries over to it" if carried else "not verified"
                line = f"{self._who(room, member)} moved to a new key {new.hex()[:4]}: {after}"
                self._append(room.name, line, Level.INFO)
                self.run_worker(self._remark(), group="trust", exclusive=True)
            case MemberValidated(room=room, member=member):
                if room.secret and not member.is_me:
                    text = f"{self._who(room, member)} proved the room secret: keys shared"
                    self._append(room.name, text, Level.INFO)
                self._sync_roster(room)
            case MemberLeft(room=room, member=member):
                self._append(room.name, f"{self._who(room, member)} left", Level.INFO)
                self._sync_roster(room)
            case PresenceChanged():
                self._sync_roster()
            case Undecryptable(room=room, sender=sender, seq=seq, reason=reason, waiting=waiting):
                who = self._who(room, sender) if sender else "an unknown sender"
                text = f"Could not decrypt message #{seq} from {who}: {reason}"
                if waiting:
                    text += " (it is kept, and shown when its key arrives)"
                self._append(room.name, text, Level.ERROR)
            case ReadReceipt(room=room, member=member, message_id=message_id):
                self.actions.read_by(room, member, message_id)
            case MessageEdited(message=message) | ReactionsChanged(message=message):
                self.actions.changed(message)
            case MessageDeleted(room=room, message_id=message_id):
                self.actions.deleted(room, message_id)
            case MessageSent(room=room, message=message):
                if (tab := self.tabs.get(room.name)) is not None:
                    self.show_sent(tab, message)
            case SendFailed() as failed:
                self._send_failed(failed)
            case UnreadChanged():
                self.actions.unread_changed(posted.event)
            case RoomJoined(room=room):
                if room.name not in self.tabs:
                    self.run_worker(self._track(room), group="commands")
            case RoomDeleted(room=room, reason=reason):
                self._room_left(room, f"The relay says its operator deleted {room.name}: {reason}")
            case RoomLost(room=room):
                self._room_left(
                    room,
                    f"The relay no longer lists you in {room.name} (it lost its data, or you"
                    " left it from another place): its history is gone from this device",
                )
            case RoomLeft(room=room):
                self._room_left(room, self._removed.pop(room.name, None))
            case RoomChanged(room=room) as change if change.kind not in ("join", "leave"):
                # joins and leaves show as the relay announces them; /info lists them
                said = change.describe(functools.partial(self._who, room))
                self._append(room.name, said, Level.INFO)
                self._sync_roster(room)
                self._room_changed(room)
                if change.subject is not None and change.subject.is_me:
                    if change.kind in ("kick", "ban"):  # said when the room goes (RoomLeft)
                        self._removed[room.name] = (
                            f"You are no longer in {room.name}: {said}. Nothing sent there"
                            " reaches you now, and its history is gone from this device"
                        )
                    else:
                        self.notify(escape_controls(f"{room.name}: {said}"), markup=False)
            case RoomFrozen(room=room, reason=reason):
                text = (
                    f"Nothing more is sent in {room.name}: the relay showed a forked log ({reason})"
                )
                self._append(room.name, text, Level.ERROR)
            case LogBehind(room=room) as behind:
                level = Level.ERROR if behind.withheld else Level.WARNING
                self._append(room.name, behind.text, level)
            case ConnectionReplaced():
                self.say(
                    "Your identity connected from another place (another terminal or bot)"
                    " and the relay handed the connection over to it. This window stays"
                    " closed: quit, and connect again here to take the identity back.",
                    Level.WARNING,
                )
            case CatchingUp(room=room):  # the end (``_pump_events`` takes the rest)
                self._end_catch_up(room.name)
            case Notice(text=text) | ClockSkewed(text=text):
                self.say(text, Level.WARNING)
                self.notify(escape_controls(text), severity="warning", markup=False)

    def _joined(self, room: Room, member: Member) -> None:
        """A join line; a name that could pass for someone else's says whose."""
        warning = None if member.verified else member.warning
        line = f"{self._who(room, member)} joined"
        level = Level.INFO
        if warning is not None:
            line, level = f"{line}: {warning} (key {member.fingerprint})", Level.WARNING
        self._append(room.name, line, level)
        self._sync_roster(room)
        if member.lookalikes or member.mixed_script:  # its namesakes are flagged too
            self.run_worker(self._remark(), group="trust", exclusive=True)

    def _renamed(self, member: Member, previous: str | None) -> None:
        """A signed rename, told in every room we share with the key."""
        for tab in self.tabs.values():
            if any(m.key == member.key for m in tab.room.member_list):
                was = f"{escape_controls(previous)}#{tag(member)}" if previous else tag(member)
                line = f"{was} is now {self._who(tab.room, member)}"
                self._append(tab.name, line, Level.INFO)
        self._sync_roster()
        self.run_worker(self._remark(), group="trust", exclusive=True)

    def _progress_changed(self, text: str) -> None:
        self.progress_text = text

    def _connection_progress(self, state: str) -> None:
        """Connecting and reconnecting show in the status line until they end."""
        if state in ("connecting", "reconnecting"):
            if self._connecting is None:
                self._connecting = self.progress.start(state)
            else:
                self._connecting.relabel(state)
        elif self._connecting is not None:
            self._connecting.finish()
            self._connecting = None

    def _catch_up_started(self, event: CatchingUp[Room]) -> None:
        """A room fetching what it missed shows in the status line until it is shown."""
        name = event.room.name
        known = self._catch_ups.get(name)
        if known is not None and known.end == event.seq:
            return  # the same catch-up, a page further
        self._end_catch_up(name)
        activity = self.progress.start(f"syncing #{name}", event.total)
        self._catch_ups[name] = CatchUp(activity, event.seq - event.total, event.seq)

    def _end_catch_up(self, name: str) -> None:
        catch_up = self._catch_ups.pop(name, None)
        if catch_up is not None:
            catch_up.activity.finish()

    def _end_catch_ups(self) -> None:
        for name in list(self._catch_ups):
            self._end_catch_up(name)

    def _connection_changed(self, state: str, detail: str | None) -> None:
        """The header always follows (with the node of a cluster now in use); the
        timeline hears of losses and recoveries only."""
        self._connection_progress(state)
        self.relay_url = self.chat.url
        previous, self.connection = self.connection, state
        if state in ("reconnecting", "closed"):
            self.say(f"Connection {state}" + (f": {detail}" if detail else ""), Level.WARNING)
        elif state == "connected" and previous in ("reconnecting", "closed"):
            self.say("Connected again")
        if state == "connected":
            self.run_worker(self._refresh_roster(), group="commands")

    async def _refresh_roster(self) -> None:
        """Ask the relay for the shown room's members: until then the cached roster may
        carry the presence of the last session."""
        tab = self.shown
        if tab is None:
            return
        try:
            await tab.room.members()
        except E2EChatError:
            return  # offline again: the next "connected" asks again
        if self.is_running:  # (else the app is closing: its widgets are going away)
            self._sync_roster(tab.room)

    async def _track(self, room: Room) -> None:
        """A room joined elsewhere (another device, a peer's direct conversation): it is
        listed, and shown if no room is."""
        await self._add_room(room)
        if self.current is None:
            self.switch_to(room.name)
        await self._load_older(self.tabs[room.name])

    def _room_left(self, room: Room, why: str | None = None) -> None:
        if self.tabs.pop(room.name, None) is None:
            return
        self._end_catch_up(room.name)
        self.room_list.discard(room.name)
        if self.current == room.name:
            self.current = next(iter(self.tabs), None)
        if why is None:
            self.notify(f"You left {escape_controls(room.name)}", markup=False)
            return
        # not of my doing: a toast is gone in seconds, the line stays in the room shown
        self.notify(escape_controls(why), markup=False, severity="warning")
        if self.current is not None:
            self._append(self.current, why, Level.WARNING)
