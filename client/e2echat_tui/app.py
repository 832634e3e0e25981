"""The chat application: layout, key bindings, command execution, event rendering.

It holds UI state only (per-room scrollback, unread and mention counts, which room is
shown); everything else is asked of the ``ChatBackend``. Backend calls run in workers
so the screen never waits on the network, and the failures a user can act on arrive
as notices in the timeline and a toast, never as tracebacks.
"""

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, OptionList, Static

from e2echat_tui import commands as cmd
from e2echat_tui.backend import ChatBackend, MemberView, MessageView, RoomView
from e2echat_tui.composer import Completion, Composer
from e2echat_tui.dialogs import PasswordScreen, VerifyScreen
from e2echat_tui.format import (
    Level,
    display_name,
    message_entry,
    name_tag,
    namesakes,
    short_fingerprint,
    system_entry,
    topic,
)
from e2echat_tui.lines import Entry, RoomLog
from e2echat_tui.members import MembersPanel
from e2echat_tui.safe import escape_controls
from e2echat_tui.sidebar import RoomList, RoomRow
from e2echat_tui.timeline import Timeline

KEYS_HELP = (
    ("ctrl+n", "jump to the next room with mentions or unread messages"),
    ("alt+up / alt+down", "previous / next room"),
    ("pageup / pagedown", "scroll the timeline"),
    ("up / down", "composer history (or move in the completion list)"),
    ("tab / enter", "accept a completion"),
    ("f1", "help"),
    ("f2", "show / hide the members panel (hidden below 100 columns)"),
    ("ctrl+q", "quit"),
)
STATE_STYLES = {
    "connected": Style(color="#5fd75f", bold=True),
    "connecting": Style(color="#d7af00"),
    "reconnecting": Style(color="#d7af00", bold=True),
    "closed": Style(color="#ff5f5f", bold=True),
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _named(members: Sequence[MemberView], name: str) -> list[MemberView]:
    """The members ``name`` means: ``NAME#TAG`` is a name and a fingerprint prefix (as the
    timeline shows namesakes); any other text is a name (and has no ``#``)."""
    if "#" not in name:
        return [m for m in members if m.name == name]
    base, _, tag = name.rpartition("#")
    prefix = tag.replace(" ", "")
    return [
        m
        for m in members
        if m.name == base and prefix and m.fingerprint.replace(" ", "").startswith(prefix)
    ]


def _has(room: RoomView, member: MemberView) -> bool:
    return any(each.key == member.key for each in room.member_list)


class ChatApp(App[None]):
    """The e2echat terminal client."""

    TITLE = "e2echat"
    # Below 100 columns the members panel gives way and the sidebar narrows, so that an
    # 80x24 terminal still has a timeline wide enough to read (f2 toggles the panel).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (typed by App)
    CSS = """
    #header {
        height: 1; background: $panel; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    Screen.-narrow #members { display: none; }
    Screen.-narrow.-members-toggled #members { display: block; }
    Screen.-wide.-members-toggled #members { display: none; }
    Screen.-narrow RoomList { width: 16; }
    #topic { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    #main { height: 1fr; }
    #centre { width: 1fr; }
    #composer { border: tall $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next_active", "Next active"),
        Binding("alt+down", "cycle_room(1)", "Next room"),
        Binding("alt+up", "cycle_room(-1)", "Prev room", show=False),
        Binding("pageup", "scroll_timeline(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_timeline(1)", "Scroll down", show=False),
        Binding("f1", "help", "Help"),
        Binding("f2", "toggle_members", "Members", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    BACKLOG_CHUNK = 1_000
    MENTION_QUIET = 3.0  # seconds between two announced mentions

    def __init__(
        self,
        backend: ChatBackend,
        *,
        room: str | None = None,
        timezone: tzinfo | None = None,
        clock: Callable[[], datetime] = _utc_now,
        bell: bool = True,
        toast: bool = True,
        history: int = 10_000,
        first_page: int = 200,
    ) -> None:
        """``room`` is shown first; ``timezone`` and ``clock`` make screenshots reproducible;
        ``bell``/``toast`` say how a mention of me is announced; ``history`` is the number
        of stored messages loaded per room (and the scrollback kept): the newest
        ``first_page`` before the first frame, the older ones right after."""
        super().__init__()
        self.backend = backend
        self.timezone = timezone
        self.clock = clock
        self.bell_on_mention = bell
        self.toast_on_mention = toast
        self.history_limit = history
        self.first_page = min(first_page, history)
        self.ready = asyncio.Event()
        self.backlog_loaded = asyncio.Event()
        self.current: str | None = room
        self.logs: dict[str, RoomLog] = {}
        self.rows: dict[str, RoomRow] = {}
        self.loaded_seq: dict[str, int] = {}  # newest seq per room read from history
        self.oldest_seq: dict[str, int] = {}  # oldest seq per room read so far
        self.connection_state = backend.state
        self.quiet_until: dict[str, float] = {}  # per room: no announcement before then

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="main"):
            yield RoomList(id="rooms")
            with Vertical(id="centre"):
                yield Static(id="topic")
                yield Timeline(id="timeline")
                composer = Composer(id="composer")
                yield composer
                yield Completion(composer, self._member_names)
            yield MembersPanel(id="members")
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    async def on_mount(self) -> None:
        for room in self.backend.rooms:
            await self._add_room(room)
        if self.current not in self.logs:
            self.current = next(iter(self.logs), None)
        self._show_rooms()
        self._show_current()
        self._show_header()
        self.composer.focus()
        self.run_worker(self.backend.run(self), name="events", group="events")
        self.call_after_refresh(self.run_worker, self._load_backlog(), group="history")
        self.ready.set()

    async def _add_room(self, room: RoomView) -> None:
        """Start showing ``room`` with its stored history (idempotent: a command and the
        library's ``RoomJoined`` event may both ask)."""
        if room.name in self.logs:
            return
        log = self.logs[room.name] = RoomLog(self.history_limit)  # claimed before awaiting
        self.rows[room.name] = RoomRow(room.name, room.secret)
        history = await room.history(limit=self.first_page)
        log.extend(self._entries(history))
        self.loaded_seq[room.name] = max((message.seq for message in history), default=0)
        if history and len(history) == self.first_page:  # there may be older messages
            self.oldest_seq[room.name] = min((m.seq for m in history if m.seq), default=0)
        self.timeline.appended(log)

    async def _load_backlog(self) -> None:
        """After the first frame: the rest of each room's history, above what is shown."""
        for name in list(self.oldest_seq):
            await self._load_older(name)
        self.backlog_loaded.set()

    async def _load_older(self, name: str) -> None:
        oldest = self.oldest_seq.pop(name, None)  # claimed: loaded once only
        room, log = self._room(name), self.logs.get(name)
        if oldest is None or room is None or log is None:
            return
        history = await room.history(limit=self.history_limit)
        older = [message for message in history if 0 < message.seq < oldest]
        for end in range(len(older), 0, -self.BACKLOG_CHUNK):  # newest first, yielding
            chunk = older[max(end - self.BACKLOG_CHUNK, 0) : end]
            log.prepend(self._entries(chunk))
            self.timeline.prepended(log)
            await asyncio.sleep(0)  # let keys and frames through between chunks

    def _entries(self, messages: Sequence[MessageView]) -> list[Entry]:
        """Timeline entries for messages of one room (namesakes looked up once)."""
        names = namesakes(messages[0].room.member_list) if messages else {}
        return [message_entry(message, self.timezone, names) for message in messages]

    def _who(self, room: RoomView | None, member: MemberView) -> str:
        """``member``'s name for a line about it, tagged if a namesake shares the room."""
        rooms = [room] if room is not None else self.backend.rooms
        return display_name(member, namesakes(m for r in rooms for m in r.member_list))

    def _room(self, name: str | None) -> RoomView | None:
        return next((room for room in self.backend.rooms if room.name == name), None)

    def _member_names(self) -> list[str]:
        room = self._room(self.current)
        return [] if room is None else [m.name for m in room.member_list if not m.is_me]

    # ---------------------------------------------------------------- drawing

    def _show_header(self) -> None:
        """One line: the full fingerprint is in /verify; the header shows its first groups."""
        backend = self.backend
        state = backend.state
        header = Text.assemble(
            ("e2echat", Style(bold=True)),
            "  relay ",
            (escape_controls(backend.url), Style(color="#5fafff")),
            "  ",
            (f"● {state}", STATE_STYLES.get(state, Style())),
            "  you: ",
            (escape_controls(backend.name), Style(bold=True)),
            "  ",
            (escape_controls(short_fingerprint(backend.fingerprint)), Style(color="#8a8a8a")),
            no_wrap=True,
            overflow="ellipsis",
        )
        self.query_one("#header", Static).update(header)

    def _show_rooms(self) -> None:
        self.query_one(RoomList).show_rows(list(self.rows.values()), self.current)

    def _show_current(self) -> None:
        room = self._room(self.current)
        log = self.logs.get(self.current or "", RoomLog())
        self.timeline.show(log)
        self.query_one("#topic", Static).update(
            topic(room) if room else Text("No room: /join NAME or /create NAME")
        )
        self._show_members()

    def _show_members(self) -> None:
        room = self._room(self.current)
        self.query_one(MembersPanel).show_members(room.member_list if room else [])

    def switch_to(self, name: str) -> None:
        """Show room ``name`` and clear its unread and mention badges."""
        if name not in self.logs:
            return
        self.current = name
        row = self.rows[name]
        row.unread = row.mentions = 0
        self.query_one(RoomList).update_row(row)
        self.query_one(RoomList).mark_current(name)
        self._show_current()

    def _append(self, room: str, entry_text: str, level: Level) -> None:
        log = self.logs.get(room)
        if log is None:
            return
        log.append(system_entry(entry_text, self.clock(), self.timezone, level))
        self.timeline.appended(log)

    def say(self, text: str, level: Level = Level.INFO) -> None:
        """A system line in the current room (or a toast when no room is open)."""
        if self.current in self.logs:
            self._append(self.current, text, level)
        else:
            self.notify(escape_controls(text), markup=False)

    def error_notice(self, text: str) -> None:
        """A readable failure: a red line in the timeline and an error toast."""
        self.say(text, Level.ERROR)
        self.notify(escape_controls(text), title="Error", severity="error", markup=False)

    # ---------------------------------------------------------------- keys

    def action_next_active(self) -> None:
        names = list(self.rows)
        if not names:
            return
        start = names.index(self.current) + 1 if self.current in names else 0
        ordered = names[start:] + names[:start]
        target = next((n for n in ordered if self.rows[n].mentions), None) or next(
            (n for n in ordered if self.rows[n].unread), None
        )
        if target is not None:
            self.switch_to(target)

    def action_cycle_room(self, step: int) -> None:
        names = list(self.rows)
        if names:
            index = names.index(self.current) if self.current in names else 0
            self.switch_to(names[(index + step) % len(names)])

    def action_scroll_timeline(self, pages: int) -> None:
        if pages < 0:
            self.timeline.scroll_page_up(animate=False)
        else:
            self.timeline.scroll_page_down(animate=False)

    def action_toggle_members(self) -> None:
        self.screen.toggle_class("-members-toggled")

    def action_help(self) -> None:
        self.show_help()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if isinstance(event.option_list, RoomList) and event.option.id is not None:
            self.switch_to(event.option.id)
            self.composer.focus()

    # ---------------------------------------------------------------- commands

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not isinstance(event.input, Composer):
            return
        line = event.value
        event.input.value = ""
        if not line.strip():
            return
        event.input.remember(line)
        try:
            parsed = cmd.parse(line)
        except cmd.CommandError as exc:
            self.error_notice(str(exc))
            return
        self.run_worker(self.execute(parsed), group="commands")

    async def execute(self, parsed: cmd.Parsed) -> None:
        """Run one parsed composer line; expected failures become notices."""
        readable: tuple[type[Exception], ...] = (cmd.CommandError, *self.backend.expected_errors)
        try:
            await self._execute(parsed)
        except readable as exc:
            self.error_notice(str(exc))

    async def _execute(self, parsed: cmd.Parsed) -> None:
        match parsed:
            case cmd.SendText(text):
                await self._send(text)
            case cmd.Create():
                await self._create(parsed)
            case cmd.Join():
                await self._join(parsed)
            case cmd.Leave():
                room = self._require_room()
                await room.leave()
                self.room_left(room)
            case cmd.Invite():
                invite = self._require_room().invite()
                self.say(f"Invite for {self.current} (anyone holding it can join): {invite}")
                self.copy_to_clipboard(invite)
            case cmd.SetStatus(status, text):
                await self.backend.set_status(status, text)
                self.say(f"Your status is now {status}" + (f": {text}" if text else ""))
            case cmd.Verify(name):
                await self._verify(name)
            case cmd.Members():
                await self._list_members()
            case cmd.Rooms():
                await self._list_rooms()
            case cmd.Nick(name):
                await self.backend.rename(name)
                self._show_header()
                self._show_current()  # a new connection: fresh rooms and rosters
                self.say(f"You are now {self.backend.name}")
            case cmd.Help():
                self.show_help()
            case cmd.Quit():
                self.exit()

    def _require_room(self) -> RoomView:
        room = self._room(self.current)
        if room is None:
            raise cmd.CommandError("you are in no room: /join NAME or /create NAME first")
        return room

    async def _send(self, text: str) -> None:
        room = self._require_room()
        message = await room.send(text)
        log = self.logs[room.name]
        log.extend(self._entries([message]))
        self.timeline.appended(log)

    async def _ask_password(self, prompt: str) -> str | None:
        return await self.push_screen_wait(PasswordScreen(prompt))

    async def _create(self, create: cmd.Create) -> None:
        password = None
        if create.ask_password:
            password = await self._ask_password(f"Password for the new room {create.name}:")
            if password is None:
                return
        room = await self.backend.create(create.name, password, secret=create.secret)
        await self._enter(room)
        if room.secret and password is None:
            self.say("Secret room created: /invite prints the invite string to share.")

    async def _join(self, join: cmd.Join) -> None:
        password, invite = None, None
        if join.ask_password:
            password = await self._ask_password(f"Password for {join.name}:")
            if password is None:
                return
        elif join.secret is not None:
            if self.backend.looks_like_invite(join.secret):
                invite = join.secret
            else:
                password = join.secret
        room = await self.backend.join(join.name, password, invite)
        await self._enter(room)

    async def _enter(self, room: RoomView) -> None:
        await self._add_room(room)
        self._show_rooms()
        self.switch_to(room.name)
        self.say(f"You joined {room.name}")
        await self._load_older(room.name)

    async def _verify(self, name: str) -> None:
        room = self._require_room()
        matches = _named(room.member_list, name)
        if not matches:
            raise cmd.CommandError(f"no member named {name} in {room.name}")
        if len(matches) > 1:
            choices = " or ".join(f"/verify {m.name}#{name_tag(m)}" for m in matches)
            if len({name_tag(m) for m in matches}) < len(matches):  # a ground-out tag
                choices = "add more of the fingerprint after the #: " + ", ".join(
                    m.fingerprint for m in matches
                )
            raise cmd.CommandError(f"{len(matches)} members are named {name}: {choices}")
        member = matches[0]
        screen = VerifyScreen(member, self.backend.safety_number(member))
        if not await self.push_screen_wait(screen):
            return
        await self.backend.mark_verified(member)
        self.say(f"{self._who(room, member)} is verified")
        await room.members()  # refreshes the cached roster, which now carries the mark
        self._show_members()

    async def _list_members(self) -> None:
        room = self._require_room()
        members = await room.members()
        lines = [f"{len(members)} members of {room.name}:"]
        names = namesakes(members)
        for member in members:
            trust = "you" if member.is_me else "verified" if member.verified else "unverified"
            if not member.validated and not member.is_me:
                trust = "no keys shared"
            lines.append(f"  {display_name(member, names)} — {member.status}, {trust}")
        self.say("\n".join(lines))
        self._show_members()

    async def _list_rooms(self) -> None:
        summaries = await self.backend.list_rooms()
        lines = [f"{len(summaries)} listed rooms on the relay:"]
        for summary in summaries:
            kind = "secret" if summary.secret else "open"
            about = f" — {summary.description}" if summary.description else ""
            lines.append(f"  {summary.name} ({kind}, {summary.member_count} members){about}")
        self.say("\n".join(lines))

    def show_help(self) -> None:
        lines = ["Commands:"]
        lines += [f"  {spec.usage} — {spec.summary}" for spec in cmd.COMMANDS]
        lines += ["Keys:"]
        lines += [f"  {key} — {what}" for key, what in KEYS_HELP]
        self.say("\n".join(lines))

    # ---------------------------------------------------------------- ChatListener

    def message_received(self, message: MessageView) -> None:
        name = message.room.name
        log = self.logs.get(name)
        if log is None or 0 < message.seq <= self.loaded_seq.get(name, 0):
            return  # not a room we show, or already loaded from history
        log.extend(self._entries([message]))
        if name == self.current:
            self.timeline.appended(log)
        else:
            row = self.rows[name]
            row.unread += 1
            row.mentions += message.mentions_me
            self.query_one(RoomList).update_row(row)
        if message.mentions_me and not message.own:
            self._announce_mention(message)

    def _announce_mention(self, message: MessageView) -> None:
        """Bell and toast, at most once per room every ``MENTION_QUIET`` seconds: anyone
        in a room can mention you, and a flood must not become a storm of bells and toasts
        (every mention still counts in the sidebar and is highlighted in the timeline)."""
        now, room = time.monotonic(), message.room.name
        if now < self.quiet_until.get(room, 0.0):
            return
        self.quiet_until[room] = now + self.MENTION_QUIET
        if self.bell_on_mention:
            self.bell()
        if self.toast_on_mention:
            self.notify(
                escape_controls(message.text)[:200],
                title=f"{self._who(message.room, message.sender)} in "
                + escape_controls(message.room.name),
                markup=False,
            )

    def connection_changed(self, state: str, detail: str | None) -> None:
        """The header always follows; the timeline hears of losses and recoveries only."""
        previous, self.connection_state = self.connection_state, state
        self._show_header()
        if state in ("reconnecting", "closed"):
            self.say(f"Connection {state}" + (f": {detail}" if detail else ""), Level.WARNING)
        elif state == "connected" and previous in ("reconnecting", "closed"):
            self.say("Connected again")
        if state == "connected":
            self.run_worker(self._refresh_roster(), group="commands")

    async def _refresh_roster(self) -> None:
        """Ask the relay for the shown room's members and redraw the panel: until then
        the cached roster may carry the presence of the last session."""
        room = self._room(self.current)
        if room is None:
            return
        try:
            await room.members()
        except self.backend.expected_errors:
            return  # offline again: the next "connected" asks again
        if room.name == self.current:
            self._show_members()

    def member_joined(self, room: RoomView, member: MemberView) -> None:
        self._append(room.name, f"{self._who(room, member)} joined", Level.INFO)
        if room.name == self.current:
            self._show_members()

    def member_validated(self, room: RoomView, member: MemberView) -> None:
        if room.secret and not member.is_me:
            self._append(
                room.name,
                f"{self._who(room, member)} proved the room secret: keys shared",
                Level.INFO,
            )
        if room.name == self.current:
            self._show_members()

    def member_left(self, room: RoomView, member: MemberView) -> None:
        self._append(room.name, f"{self._who(room, member)} left", Level.INFO)
        if room.name == self.current:
            self._show_members()

    def presence_changed(self, member: MemberView) -> None:
        room = self._room(self.current)
        if room is not None and _has(room, member):
            self._show_members()

    def undecryptable(
        self, room: RoomView, sender: MemberView | None, seq: int, reason: str
    ) -> None:
        who = self._who(room, sender) if sender else "an unknown sender"
        self._append(
            room.name, f"Could not decrypt message #{seq} from {who}: {reason}", Level.ERROR
        )

    def room_joined(self, room: RoomView) -> None:
        if room.name not in self.logs:
            self.run_worker(self._track(room), group="commands")

    async def _track(self, room: RoomView) -> None:
        await self._add_room(room)
        self._show_rooms()
        await self._load_older(room.name)

    def room_left(self, room: RoomView) -> None:
        if self.logs.pop(room.name, None) is None:
            return
        del self.rows[room.name]
        if self.current == room.name:
            self.current = next(iter(self.logs), None)
        self._show_rooms()
        self._show_current()
        self.notify(escape_controls(f"You left {room.name}"), markup=False)

    def notice(self, text: str) -> None:
        self.say(text, Level.WARNING)
        self.notify(escape_controls(text), severity="warning", markup=False)
