"""Slash commands: one table that drives parsing, ``/help``, completion and the docs.

Parsing is pure: a composer line becomes either ``SendText`` or one of the command
dataclasses below, or raises ``CommandError`` with a sentence the user can act on.
Nothing is executed here; the app decides what each command does.
"""

from dataclasses import dataclass
from typing import Final, Literal

Status = Literal["online", "away", "busy"]
STATUSES: Final[tuple[Status, ...]] = ("online", "away", "busy")
_STATUS_BY_NAME: Final[dict[str, Status]] = {status: status for status in STATUSES}


class CommandError(ValueError):
    """A composer line that is not a valid command; ``str()`` says how to fix it."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One slash command as the user sees it in ``/help`` and in completion."""

    name: str
    usage: str
    summary: str


COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec(
        "create",
        "/create NAME [--password | --secret]",
        "Create a room: open, secret with a password (asked for), or secret by invite.",
    ),
    CommandSpec(
        "join",
        "/join NAME [PASSWORD | INVITE | --password]",
        "Join a room; --password asks for the password without showing it.",
    ),
    CommandSpec(
        "msg",
        "/msg NAME[#TAG] [TEXT]",
        "Open a direct conversation with a member of your rooms (started if new); send TEXT.",
    ),
    CommandSpec("leave", "/leave", "Leave the current room."),
    CommandSpec("invite", "/invite", "Show (and copy) an invite string for this secret room."),
    CommandSpec("status", "/status online|away|busy [TEXT]", "Set your presence."),
    CommandSpec("verify", "/verify NAME", "Show a member's safety number; mark its key verified."),
    CommandSpec("unverify", "/unverify NAME", "Withdraw your verification of a member's key."),
    CommandSpec(
        "petname",
        "/petname NAME[#TAG] [PETNAME]",
        "Your own name for a member's key, shown instead of theirs (none: remove it).",
    ),
    CommandSpec("me", "/me ACTION", "Say what you do: shown as * NAME ACTION."),
    CommandSpec(
        "topic",
        "/topic [TEXT]",
        "Show the description of the current room, or set it (admins and owners).",
    ),
    CommandSpec("members", "/members", "List the members of the current room."),
    CommandSpec(
        "info", "/info", "This room's members with their roles, its epoch and its change log."
    ),
    CommandSpec(
        "kick",
        "/kick NAME[#TAG]",
        "Remove a member (admins): a new room secret; it reads nothing sent after.",
    ),
    CommandSpec("ban", "/ban NAME[#TAG]", "Remove a member and refuse its return (admins)."),
    CommandSpec("unban", "/unban NAME[#TAG]", "Lift a ban (admins); it rejoins with the secret."),
    CommandSpec("op", "/op NAME[#TAG]", "Make a member an admin of this room (owners)."),
    CommandSpec("deop", "/deop NAME[#TAG]", "Make an admin a plain member again (owners)."),
    CommandSpec(
        "password",
        "/password",
        "Change this room's password (asked for; admins): members read on, the old one fails.",
    ),
    CommandSpec(
        "rotate",
        "/rotate",
        "A new secret for this invite room (admins): every earlier invite stops working.",
    ),
    CommandSpec("names", "/names", "The names in the current room on one line, online first."),
    CommandSpec("clear", "/clear", "Clear the timeline of this room (its stored history stays)."),
    CommandSpec("rooms", "/rooms", "List the relay's listed rooms."),
    CommandSpec("nick", "/nick NAME", "Change your display name (your rooms see it)."),
    CommandSpec("mute", "/mute", "No bell, toast or desktop notification from this room."),
    CommandSpec("unmute", "/unmute", "Let this room notify again."),
    CommandSpec("upload", "/upload PATH", "Encrypt a file and send it to the current room."),
    CommandSpec(
        "download",
        "/download",
        "Save the selected file message (f3 selects; else the newest) to your downloads.",
    ),
    CommandSpec("cancel", "/cancel", "Cancel every running upload and download."),
    CommandSpec(
        "react",
        "/react EMOJI",
        "React to the selected message (ctrl+up selects; else the newest); again removes it.",
    ),
    CommandSpec("help", "/help [COMMAND]", "Show the commands and keys, or one command."),
    CommandSpec("quit", "/quit", "Leave the program."),
)
_BY_NAME: Final = {spec.name: spec for spec in COMMANDS}


@dataclass(frozen=True, slots=True)
class SendText:
    """Plain text for the current room (``//x`` sends ``/x`` literally)."""

    text: str


@dataclass(frozen=True, slots=True)
class Create:
    name: str
    ask_password: bool = False
    secret: bool = False


@dataclass(frozen=True, slots=True, repr=False)
class Join:
    """``secret`` is a password or an invite string: never shown in a repr."""

    name: str
    secret: str | None = None
    ask_password: bool = False

    def __repr__(self) -> str:
        hidden = "<hidden>" if self.secret else None
        return f"Join(name={self.name!r}, secret={hidden}, ask_password={self.ask_password})"


@dataclass(frozen=True, slots=True)
class Msg:
    """``name`` as typed (``NAME`` or ``NAME#TAG``, without a leading ``@``)."""

    name: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Invite:
    pass


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: Status
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Verify:
    name: str


@dataclass(frozen=True, slots=True)
class Unverify:
    name: str


@dataclass(frozen=True, slots=True)
class Petname:
    """``name`` as typed (``NAME`` or ``NAME#TAG``); ``petname`` None removes it."""

    name: str
    petname: str | None


@dataclass(frozen=True, slots=True)
class Members:
    pass


@dataclass(frozen=True, slots=True)
class Rooms:
    pass


Moderation = Literal["kick", "ban", "unban", "op", "deop"]
MODERATIONS: Final[tuple[Moderation, ...]] = ("kick", "ban", "unban", "op", "deop")


@dataclass(frozen=True, slots=True)
class Moderate:
    """``/kick``, ``/ban``, ``/unban``, ``/op`` or ``/deop`` of the member ``name`` (as
    typed: ``NAME`` or ``NAME#TAG``, without a leading ``@``)."""

    action: Moderation
    name: str


@dataclass(frozen=True, slots=True)
class RoomInfo:
    pass


@dataclass(frozen=True, slots=True)
class ChangePassword:
    pass


@dataclass(frozen=True, slots=True)
class Rotate:
    pass


@dataclass(frozen=True, slots=True)
class Act:
    """``/me ACTION``: sent as the text ``/me ACTION``, which clients show as an action."""

    action: str


@dataclass(frozen=True, slots=True)
class Topic:
    """``/topic`` shows the description (``text`` None); ``/topic TEXT`` sets it."""

    text: str | None = None


@dataclass(frozen=True, slots=True)
class Names:
    pass


@dataclass(frozen=True, slots=True)
class Clear:
    pass


@dataclass(frozen=True, slots=True)
class Nick:
    name: str


@dataclass(frozen=True, slots=True)
class Mute:
    """``/mute`` (True) or ``/unmute`` (False) the current room."""

    mute: bool


@dataclass(frozen=True, slots=True)
class Upload:
    """``path`` as typed (``~`` not yet expanded)."""

    path: str


@dataclass(frozen=True, slots=True)
class Download:
    pass


@dataclass(frozen=True, slots=True)
class Cancel:
    pass


@dataclass(frozen=True, slots=True)
class React:
    """``/react EMOJI``: the library checks that it is one emoji."""

    emoji: str


@dataclass(frozen=True, slots=True)
class Help:
    """``command`` is the name of one command to explain (None: all of them)."""

    command: str | None = None


@dataclass(frozen=True, slots=True)
class Quit:
    pass


Command = (
    Create
    | Join
    | Msg
    | Leave
    | Invite
    | SetStatus
    | Verify
    | Unverify
    | Petname
    | Members
    | RoomInfo
    | Moderate
    | ChangePassword
    | Rotate
    | Rooms
    | Act
    | Topic
    | Names
    | Clear
    | Nick
    | Mute
    | Upload
    | Download
    | Cancel
    | React
    | Help
    | Quit
)
Parsed = SendText | Command

_NO_ARGS: Final[dict[str, Command]] = {
    "leave": Leave(),
    "invite": Invite(),
    "members": Members(),
    "info": RoomInfo(),
    "password": ChangePassword(),
    "rotate": Rotate(),
    "rooms": Rooms(),
    "names": Names(),
    "clear": Clear(),
    "mute": Mute(True),
    "unmute": Mute(False),
    "download": Download(),
    "cancel": Cancel(),
    "quit": Quit(),
}


def _usage(name: str) -> CommandError:
    return CommandError(f"usage: {_BY_NAME[name].usage}")


def _parse_create(args: list[str]) -> Create:
    flags = {arg for arg in args if arg.startswith("--")}
    names = [arg for arg in args if not arg.startswith("--")]
    if len(names) != 1 or not flags <= {"--password", "--secret"} or len(flags) > 1:
        raise _usage("create")
    return Create(names[0], ask_password="--password" in flags, secret=bool(flags))


def _parse_join(args: list[str]) -> Join:
    if len(args) == 1:
        return Join(args[0])
    if len(args) == 2:
        if args[1] == "--password":
            return Join(args[0], ask_password=True)
        return Join(args[0], secret=args[1])
    raise _usage("join")


def _parse_status(rest: str) -> SetStatus:
    word, _, text = rest.partition(" ")
    status = _STATUS_BY_NAME.get(word)
    if status is None:
        usage = _BY_NAME["status"].usage
        raise CommandError(f"status is one of {', '.join(STATUSES)}; usage: {usage}")
    return SetStatus(status, text.strip() or None)


def _parse_help(args: list[str]) -> Help:
    if not args:
        return Help()
    wanted = args[0].removeprefix("/").lower()
    if len(args) > 1:
        raise _usage("help")
    if wanted not in _BY_NAME:
        raise CommandError(f"there is no command /{args[0].removeprefix('/')}; /help lists them")
    return Help(wanted)


def spec(name: str) -> CommandSpec:
    """The table row of command ``name`` (a name from ``COMMANDS``)."""
    return _BY_NAME[name]


ACTION_PREFIX: Final = "/me "
"""How a ``/me`` action travels: as text, so every client can read it."""


def action_of(text: str) -> str | None:
    """The action of a received ``/me`` text, or None for an ordinary message."""
    return text[len(ACTION_PREFIX) :] if text.startswith(ACTION_PREFIX) else None


def parse(line: str) -> Parsed:
    """Turn one composer line into text to send or a command; raise ``CommandError``."""
    if not line.startswith("/"):
        return SendText(line)
    if line.startswith("//"):
        return SendText(line[1:])
    head, _, rest = line[1:].partition(" ")
    name, rest = head.lower(), rest.strip()
    args = rest.split()
    if name not in _BY_NAME:
        raise CommandError(f"unknown command /{head}; /help lists the commands")
    if name in _NO_ARGS:
        if args:
            raise _usage(name)
        return _NO_ARGS[name]
    if name == "create":
        return _parse_create(args)
    if name == "join":
        return _parse_join(args)
    if name == "status":
        return _parse_status(rest)
    if name == "msg" and args:
        target, _, text = rest.partition(" ")
        return Msg(target.removeprefix("@"), text.strip())
    if name == "upload" and rest:
        quoted = len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\""
        return Upload(rest[1:-1] if quoted else rest)  # a path may contain spaces
    if name == "help":
        return _parse_help(args)
    if name == "react" and len(args) == 1:
        return React(args[0])
    if name == "me" and rest:
        return Act(rest)
    if name == "topic":
        return Topic(rest or None)  # a description is free text, spaces and all
    if name == "verify" and rest:
        return Verify(rest.removeprefix("@"))  # others' names may contain spaces
    if name == "unverify" and rest:
        return Unverify(rest.removeprefix("@"))
    if name == "petname" and args:
        target, _, petname = rest.partition(" ")
        return Petname(target.removeprefix("@"), petname.strip() or None)
    moderation = next((action for action in MODERATIONS if action == name), None)
    if moderation is not None and rest:
        return Moderate(moderation, rest.removeprefix("@"))
    if name in ("verify", "unverify", "petname", "me", "react", *MODERATIONS) or len(args) != 1:
        raise _usage(name)
    return Nick(args[0])


def looks_like_invite(secret: str) -> bool:
    """Whether a ``/join`` argument is an invite (``ws(s)://relay/room#secret``) rather
    than a password."""
    return secret.startswith(("ws://", "wss://")) and "#" in secret


def history_text(line: str) -> str:
    """What the composer may remember of ``line``: a password or invite is dropped."""
    try:
        parsed = parse(line)
    except CommandError:
        # A mistyped command (``/jion room secret``) may still carry a password: keep
        # the command and its first word only.
        return " ".join(line.split()[:2])
    if isinstance(parsed, Join) and parsed.secret:
        return f"/join {parsed.name}"
    return line
