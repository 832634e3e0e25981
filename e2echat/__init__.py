"""e2echat: end-to-end encrypted chat — the library that bots and the terminal client share.

A bot in a few lines::

    import asyncio
    import e2echat

    async def main() -> None:
        identity = e2echat.Identity.load(e2echat.default_identity_path())
        async with e2echat.Client("ws://127.0.0.1:8765/", identity=identity, name="echo") as chat:
            room = await chat.join("lobby")
            async for msg in chat.messages():
                await msg.room.send(f"{msg.sender.name} said: {msg.text}")

    asyncio.run(main())

See docs/bots.md for the tour. Everything an application needs is exported here; the
subpackages (protocol, crypto, store, client) are internal layers.
"""

from e2echat.client.client import Client, FollowedRoom
from e2echat.client.errors import (
    AlreadyConnected,
    AmbiguousMention,
    AuthError,
    BadStatus,
    Banned,
    ConnectError,
    E2EChatError,
    EmptyMessage,
    IdentityExists,
    IdentityFileError,
    InvalidInput,
    InvalidInvite,
    InvalidName,
    InvalidReaction,
    InvalidRoomOption,
    LogRefused,
    MessageTooLong,
    NameTaken,
    NoSuchRoom,
    NotAllowed,
    NotAMember,
    NotConnected,
    NotInHistory,
    PassphraseRequired,
    RelayError,
    Replaced,
    RoomFull,
    StoreError,
    StoreInUse,
    TransferError,
    WrongAccess,
    WrongPassphrase,
)
from e2echat.client.events import (
    CatchingUp,
    ClockSkewed,
    ConnectionChanged,
    ConnectionReplaced,
    DirectStarted,
    Event,
    LogBehind,
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
    RoomChanged,
    RoomDeleted,
    RoomFrozen,
    RoomJoined,
    RoomLeft,
    RoomLost,
    SendFailed,
    SuccessorAnnounced,
    TypingChanged,
    Undecryptable,
    UnreadChanged,
)
from e2echat.client.identity import Identity
from e2echat.client.models import (
    ConnectionState,
    FileInfo,
    Lookalike,
    Member,
    Message,
    Predecessor,
    Quote,
    Reaction,
    RoomSummary,
    Version,
)
from e2echat.client.paths import bot_identity_path, default_identity_path, default_store_path
from e2echat.client.progress import Transfer, TransferProgress
from e2echat.client.room import Room
from e2echat.client.runner import BOT_OPTIONS, run
from e2echat.crypto.identity import UnencryptedKeyWarning

__version__ = "0.1.0"

__all__ = [
    "BOT_OPTIONS",
    "AlreadyConnected",
    "AmbiguousMention",
    "AuthError",
    "BadStatus",
    "Banned",
    "CatchingUp",
    "Client",
    "ClockSkewed",
    "ConnectError",
    "ConnectionChanged",
    "ConnectionReplaced",
    "ConnectionState",
    "DirectStarted",
    "E2EChatError",
    "EmptyMessage",
    "Event",
    "FileInfo",
    "FollowedRoom",
    "Identity",
    "IdentityExists",
    "IdentityFileError",
    "InvalidInput",
    "InvalidInvite",
    "InvalidName",
    "InvalidReaction",
    "InvalidRoomOption",
    "LogBehind",
    "LogRefused",
    "Lookalike",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "MemberRenamed",
    "MemberValidated",
    "Message",
    "MessageDeleted",
    "MessageEdited",
    "MessageSent",
    "MessageTooLong",
    "NameTaken",
    "NoSuchRoom",
    "NotAMember",
    "NotAllowed",
    "NotConnected",
    "NotInHistory",
    "Notice",
    "PassphraseRequired",
    "Predecessor",
    "PresenceChanged",
    "Quote",
    "Reaction",
    "ReactionsChanged",
    "ReadReceipt",
    "RelayError",
    "Replaced",
    "Room",
    "RoomChanged",
    "RoomDeleted",
    "RoomFrozen",
    "RoomFull",
    "RoomJoined",
    "RoomLeft",
    "RoomLost",
    "RoomSummary",
    "SendFailed",
    "StoreError",
    "StoreInUse",
    "SuccessorAnnounced",
    "Transfer",
    "TransferError",
    "TransferProgress",
    "TypingChanged",
    "Undecryptable",
    "UnencryptedKeyWarning",
    "UnreadChanged",
    "Version",
    "WrongAccess",
    "WrongPassphrase",
    "__version__",
    "bot_identity_path",
    "default_identity_path",
    "default_store_path",
    "run",
]
