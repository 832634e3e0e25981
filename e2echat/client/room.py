"""``Room``: a handle on one joined room; reads are local, the async methods do I/O.

A handle reads the engine's ``RoomState`` (whose roster snapshot is replaced, never
mutated) and does its I/O through ``RoomOps``, which the client implements: the handle
depends on no client module, so nothing imports in a circle.
"""

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from e2echat.client.errors import (
    EmptyMessage,
    InvalidInput,
    InvalidReaction,
    NotInHistory,
    SecretPending,
    WrongAccess,
)
from e2echat.client.events import RoomChanged
from e2echat.client.membership import ROLE_NAMES, ROLES_BY_NAME
from e2echat.client.models import Member, Message, Version, key_of
from e2echat.client.progress import Progress, Transfer
from e2echat.client.roomstate import RoomState
from e2echat.client.running import RunningTransfer
from e2echat.client.texts import check_description
from e2echat.crypto.errors import PayloadError
from e2echat.crypto.events import LogStatement
from e2echat.crypto.payload import Delete, Edit, Reaction, is_one_emoji
from e2echat.crypto.roomlog import Role
from e2echat.crypto.roomsecret import Invite, RoomSecret
from e2echat.crypto.session import CryptoSession

Relation = Edit | Delete | Reaction
SignLog = Callable[[CryptoSession, bytes, int], LogStatement]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_text(text: str) -> None:
    """Refuse a message text that is not a string, before any I/O."""
    if not isinstance(text, str):
        raise InvalidInput(f"A message text is a str, not {type(text).__name__}.")


def _id_of(message: "Message[Room]") -> bytes:
    if not message.id:
        raise NotInHistory("That message has not reached the relay yet (it has no id).")
    return message.id


class RoomOps(Protocol):
    """What a room handle asks of the client."""

    @property
    def url(self) -> str: ...

    async def _send(
        self,
        room: "Room",
        text: str,
        reply_to: "Message[Room] | None",
        mentions: tuple[bytes, ...],
    ) -> Message["Room"]: ...

    async def _relate(self, room: "Room", relation: Relation) -> None: ...

    async def _versions(self, room: "Room", message: "Message[Room]") -> list[Version]: ...

    async def _typing(self, room: "Room", typing: bool) -> None: ...

    async def _mark_read(self, room: "Room", seq: int | None) -> None: ...

    async def _search(
        self, room: "Room | None", query: str, limit: int
    ) -> list[Message["Room"]]: ...

    async def _members(self, room: "Room") -> list[Member]: ...

    async def _leave(self, room: "Room") -> None: ...

    async def _log_change(self, room: "Room", sign: SignLog) -> None: ...

    async def _change_password(self, room: "Room", password: str) -> None: ...

    def _check_rotator(self, room: "Room") -> None: ...

    async def _changes(self, room: "Room") -> list[RoomChanged["Room"]]: ...

    async def _history(
        self, room: "Room", limit: int, before: int | None, after: int | None
    ) -> list[Message["Room"]]: ...

    async def _pending(self, room: "Room") -> list[Message["Room"]]: ...

    async def _send_file(
        self, room: "Room", path: Path, caption: str, progress: Progress
    ) -> Message["Room"]: ...

    async def _download(
        self,
        room: "Room",
        message: Message["Room"],
        folder: Path | None,
        progress: Progress,
    ) -> Path: ...


class Room:
    """A room we joined. Get it from ``Client.create``, ``Client.join`` or ``Client.rooms``.

    ``secret`` is False for an open room: anyone the relay admits can read new messages.
    """

    def __init__(self, client: RoomOps, state: RoomState) -> None:
        self._client = client
        self._state = state

    @property
    def id(self) -> bytes:
        """The relay-assigned 16-byte room id."""
        return self._state.record.id

    @property
    def name(self) -> str:
        """The room's name on the relay (unique there)."""
        return self._state.record.name

    @property
    def description(self) -> str:
        """The description: the newest one the membership log holds (set by an admin),
        else the one given at creation."""
        log = self._state.log
        return log.description if log is not None else self._state.record.description

    @property
    def epoch(self) -> int:
        """The room's epoch: kicks, bans and secret changes each start a new one."""
        log = self._state.log
        return log.epoch if log is not None else 0

    @property
    def roles(self) -> dict[bytes, str]:
        """Each member's role by key, from the validated membership log: "owner",
        "admin" or "member" (empty for a room created without a log)."""
        log = self._state.log
        if log is None:
            return {}
        return {key: ROLE_NAMES[Role(value)] for key, value in log.members.items()}

    @property
    def access(self) -> str:
        """How the room is entered: "open", "password" or "invite"."""
        return self._state.record.access

    @property
    def banned(self) -> frozenset[bytes]:
        """The keys the membership log bans (``unban`` lifts a ban)."""
        log = self._state.log
        return log.banned if log is not None else frozenset()

    @property
    def log_head(self) -> tuple[int, bytes]:
        """How many entries our validated log holds and the hash of the newest: members
        whose heads at one length differ were shown different histories by the relay."""
        log = self._state.log
        return (log.length, log.head) if log is not None else (0, bytes(32))

    def role(self, member: Member | bytes) -> str | None:
        """``member``'s role ("owner", "admin", "member"), None if the log lacks it."""
        return self.roles.get(key_of(member))

    @property
    def frozen(self) -> str | None:
        """Why nothing can be sent here (the relay forked the room's log), else None."""
        return self._state.frozen

    @property
    def secret(self) -> bool:
        """True for password and invite rooms; False for open rooms."""
        return self._state.record.access != "open"

    @property
    def last_seq(self) -> int:
        """Every message up to this room seq has been processed."""
        return self._state.sync.floor

    @property
    def member_list(self) -> list[Member]:
        """The members as last known (no I/O); ``members()`` asks the relay."""
        return list(self._state.member_list)

    @property
    def joined(self) -> bool:
        """False once we left the room."""
        return self._state.joined

    @property
    def unread(self) -> int:
        """Messages from others after the read marker (they count while we are away)."""
        return self._state.read.unread

    @property
    def mentions(self) -> int:
        """Of the unread messages, how many mention us."""
        return self._state.read.mentions

    @property
    def read_seq(self) -> int:
        """The read marker: everything up to this seq was read ("new messages" after it)."""
        return self._state.read.read_seq

    @property
    def peer(self) -> bytes | None:
        """The other member's key if this is a direct conversation (``Client.direct``)."""
        return self._state.record.peer

    async def send(
        self,
        text: str,
        *,
        reply_to: "Message[Room] | None" = None,
        mentions: Iterable[Member | bytes] = (),
    ) -> Message["Room"]:
        """Encrypt and send ``text``, mentioning ``mentions`` (members, so keys).
        ``reply_to`` (a stored message of this room) makes it a reply that quotes it.

        ``@name`` in the text mentions the member of that name; ``@name#tag`` picks one
        of several namesakes by fingerprint tag (``Member.tag``), and a bare ``@name``
        that fits several raises ``AmbiguousMention``. Offline, the message waits in the
        outbox and goes out in order on reconnect; the returned message then has ``seq`` 0,
        and a ``MessageSent`` (or ``SendFailed``) with its ``send_id`` follows.
        """
        _check_text(text)
        return await self._client._send(self, text, reply_to, tuple(map(key_of, mentions)))

    async def edit(self, message: "Message[Room]", text: str) -> None:
        """Replace the text of our own ``message``; members see the newest with "(edited)".
        ``@name`` mentions as in ``send`` (a bare ``@name`` of namesakes raises
        ``AmbiguousMention``)."""
        _check_text(text)
        if not text:
            raise EmptyMessage("An empty message is not sent.")
        # the engine resolves ``@name`` in the new text as ``send`` does
        await self._client._relate(self, Edit(_id_of(message), text, (), _now_ms()))

    async def delete(self, message: "Message[Room]") -> None:
        """Delete our own ``message``: every member drops its text, the relay its copy."""
        await self._client._relate(self, Delete(_id_of(message), _now_ms()))

    async def react(self, message: "Message[Room]", emoji: str, add: bool = True) -> None:
        """Add (or with ``add=False`` withdraw) our ``emoji`` reaction to ``message``: we
        add one emoji only, and may withdraw any reaction (one an older version sent)."""
        try:
            reaction = Reaction(_id_of(message), emoji, add, _now_ms())
        except PayloadError as exc:
            raise InvalidReaction(str(exc)) from None
        if add and not is_one_emoji(emoji):
            raise InvalidReaction("a reaction is one emoji, such as 👍")
        await self._client._relate(self, reaction)

    async def versions(self, message: "Message[Room]") -> list[Version]:
        """Every version of ``message``, the original first."""
        return await self._client._versions(self, message)

    async def typing(self, typing: bool = True) -> None:
        """Tell the members we are typing (call it on each keystroke: it is rate-limited)
        or stopped; encrypted, never stored by the relay, off with ``Client(typing=False)``."""
        await self._client._typing(self, typing)

    async def mark_read(self, message: "Message[Room] | None" = None) -> None:
        """Move the read marker to ``message`` (the newest message if None)."""
        await self._client._mark_read(self, None if message is None else message.seq)

    async def search(self, query: str, limit: int = 50) -> list[Message["Room"]]:
        """This room's stored messages holding every word of ``query``, newest first."""
        return await self._client._search(self, query, limit)

    def send_file(
        self, path: str | Path, *, caption: str = "", progress: Progress | None = None
    ) -> Transfer[Message["Room"]]:
        """Encrypt a file under a fresh key, upload it, then send the message that carries
        its key, name and hash (the relay sees none of them).

        The upload starts at once; ``await`` the returned ``Transfer`` for the message,
        ``async for`` over it (or pass ``progress``, a callback) for ``TransferProgress``,
        ``cancel()`` it to stop: nothing is sent and the partial upload is deleted. Once
        the upload is complete the message goes out even if cancelled. A dropped
        connection resumes the upload; a file that cannot be read, or changes while it
        is read, is a ``TransferError`` and nothing is sent.
        """
        target = Path(path)
        return RunningTransfer(
            lambda report: self._client._send_file(self, target, caption, report), progress
        )

    def download(
        self,
        message: Message["Room"],
        folder: str | Path | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer[Path]:
        """Fetch, check and save ``message``'s file (see ``Message.download``)."""
        target = Path(folder) if folder is not None else None
        return RunningTransfer(
            lambda report: self._client._download(self, message, target, report), progress
        )

    async def members(self) -> list[Member]:
        """The member list, fresh from the relay."""
        return await self._client._members(self)

    async def kick(self, member: Member | bytes) -> None:
        """Remove ``member`` (admins and owners, over a lower role): a new epoch, whose
        secret only the remaining members get, and every sender's chain rotated, so it
        reads nothing sent from now on. Raises ``NotAllowed`` without the role."""
        key = key_of(member)
        await self._client._log_change(self, lambda s, r, now: s.kick(r, key, now))

    async def ban(self, member: Member | bytes) -> None:
        """Kick ``member`` and refuse its joins until an admin lifts the ban (``unban``)."""
        key = key_of(member)
        await self._client._log_change(self, lambda s, r, now: s.ban(r, key, now))

    async def unban(self, member: Member | bytes) -> None:
        """Lift ``member``'s ban and admit it (admins and owners): the log lists it as a
        member again, so members share their keys with it at once (it reads what is
        sent from now on, nothing from before); to enter the room through the relay it
        still needs the current password or invite."""
        key = key_of(member)
        await self._client._log_change(self, lambda s, r, now: s.admit(r, key, now))

    async def set_role(self, member: Member | bytes, role: str) -> None:
        """Make ``member`` an "admin" or a plain "member" again (owners only)."""
        wanted = ROLES_BY_NAME.get(role)
        if wanted not in (Role.ADMIN, Role.MEMBER):
            raise InvalidInput(f'A role is "admin" or "member", not {role!r}.')
        key = key_of(member)
        await self._client._log_change(
            self, lambda s, r, now: s.set_role(r, key, Role(wanted), now)
        )

    async def rotate_secret(self) -> None:
        """Change the room secret at random (admins and owners): every invite given so
        far stops working (``invite()`` gives the new one). In an open room it starts a
        new epoch. A password room changes its password instead (``change_password``)."""
        if self._state.record.access == "password":
            raise WrongAccess("A password room changes its secret with change_password.")
        await self._client._log_change(self, lambda s, r, now: s.rotate_secret(r, now))

    def check_secret_change(self) -> None:
        """Raise ``NotAllowed`` now if the room's rules would refuse us ``rotate_secret``
        or ``change_password``: we are not an admin or owner, or the room is frozen.
        Nothing is signed or sent: an app asks before it asks for a new password."""
        self._client._check_rotator(self)

    async def change_password(self, password: str) -> None:
        """Give a password room a new password (admins and owners): the old one opens
        nothing from now on; members keep reading without it."""
        if self._state.record.access != "password":
            raise WrongAccess(f"Room {self.name!r} has no password to change.")
        await self._client._change_password(self, password)

    async def set_description(self, description: str) -> None:
        """Set the room's description (admins and owners): a printable text of at most
        200 characters and 512 bytes of UTF-8, as at creation (else ``InvalidRoomOption``,
        before anything is signed or sent)."""
        check_description(description)
        text = description
        await self._client._log_change(self, lambda s, r, now: s.describe(r, text, now))

    async def changes(self) -> list[RoomChanged["Room"]]:
        """Every change of the membership log, oldest first, checked by this client:
        who created the room, joined, was kicked, banned, made admin, and so on."""
        return await self._client._changes(self)

    async def leave(self) -> None:
        """Leave the room: a signed ``leave`` entry tells every member (who stop sharing
        keys with us), then its keys and history are deleted from this device."""
        await self._client._leave(self)

    async def history(
        self, limit: int = 100, *, before: int | None = None, after: int | None = None
    ) -> list[Message["Room"]]:
        """Up to ``limit`` messages from the local store, oldest first: the newest (below
        seq ``before``), or from seq ``after`` on (to show a quoted or found message)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(
                f"A history limit is a number of messages, 0 or more, not {limit!r}."
            )
        return await self._client._history(self, limit, before, after)

    async def pending(self) -> list[Message["Room"]]:
        """Our messages the relay has not stored yet, oldest first, also those sent
        before a restart: as ``send`` returned them (seq 0, with their ``send_id``).
        Each is followed by its ``MessageSent``, or by ``SendFailed`` if it is given up."""
        return await self._client._pending(self)

    def invite(self) -> str:
        """The invite string of an invite room (anyone holding it can join and read).

        Raises ``SecretPending`` between another member's change of the secret and the
        new secret's arrival (``SecretArrived``): the invite would be the old one."""
        record = self._state.record
        if record.access != "invite" or record.secret is None:
            raise WrongAccess(f"room {record.name!r} is not an invite room: it has no invite")
        secret, log = RoomSecret(record.secret), self._state.log
        if log is not None and log.secret and secret.verifier != log.verifier:
            raise SecretPending(
                f"The new secret of room {record.name!r} (epoch {log.epoch}) has not reached"
                " this device yet: an invite now would be the old one. It comes from the"
                " member who changed it."
            )
        return str(Invite(self._client.url, record.name, secret))

    def __repr__(self) -> str:
        kind = self._state.record.access
        return f"Room(name={self.name!r}, {kind}, members={len(self._state.member_list)})"
