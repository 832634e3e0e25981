"""The errors of the public API: one base class, one subclass per thing a caller handles.

Every refusal has its own class, so a bot catches exactly what it can act on
(``except e2echat.EmptyMessage``) instead of matching message strings. Refusals of bad
input (``InvalidInput`` and its subclasses) also derive from ``ValueError``. Names
say what was refused, without an ``Error`` suffix, like ``WrongPassphrase``.

Messages are sentences a person can act on; they never carry keys, secrets or plaintext.
"""

from typing import Literal


class E2EChatError(Exception):
    """Base class of every error the ``e2echat`` client library raises."""


class ConnectError(E2EChatError):
    """The relay could not be reached, does not speak protocol v1, or asks us to wait."""


class AuthError(E2EChatError):
    """The relay refused our ``hello`` (bad signature, name, or a closed 4401)."""


class Replaced(ConnectError):
    """The same identity connected from another place, and the relay handed the
    connection over to it (close code 4409). The client does not reconnect on its own:
    two clients of one key would otherwise take the connection from each other."""


class RelayError(E2EChatError):
    """The relay answered a request with an ``error`` frame; ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class LogRefused(E2EChatError):
    """The relay served a page of a room's membership log that does not extend the log
    we hold: an entry that does not validate, or a page from another position than the
    one asked for. The fetch stops at that page; what needed the log (a join, a change)
    is abandoned."""


class NoSuchRoom(RelayError):
    """The relay has no room of that name (``code`` ``no_such_room``)."""


class NameTaken(RelayError):
    """The relay already has a room of that name (``code`` ``name_taken``)."""


class Banned(RelayError):
    """The room's log bans our key: the relay refuses our join (``code`` ``forbidden``)
    whatever password or invite it carries, until an admin or owner unbans the key."""


class RoomFull(RelayError):
    """The room has as many members as it allows (``code`` ``room_full``): a join works
    again once a member leaves."""


class TooManyRooms(RelayError):
    """We are in as many rooms as the relay lets one user be in (``code``
    ``quota_exceeded`` in reply to ``create_room`` or ``join_room``): leave one first."""


class WrongPassphrase(E2EChatError):
    """A passphrase (identity file) or room password that does not open what it should."""


class NotAMember(E2EChatError):
    """An operation on a room we are not (or no longer) a member of."""


class NotConnected(E2EChatError):
    """The client is not open (use ``async with Client(...)``) or is already closed."""


class AlreadyConnected(E2EChatError):
    """``connect()`` on a client that is already connected."""


class InvalidInput(E2EChatError, ValueError):
    """An argument the library refuses before any I/O; nothing was changed."""


class InvalidName(InvalidInput):
    """A user or room name that the protocol does not allow (length, characters)."""


class AmbiguousMention(InvalidInput):
    """``@name`` fits several members (namesakes): write ``@name#tag`` (``Member.tag``)
    or pass ``mentions=`` to say which key you mean."""


class EmptyMessage(InvalidInput):
    """``send("")``: an empty message is never sent."""


class MessageTooLong(InvalidInput):
    """A message whose encrypted body would exceed the relay's limit."""


class InvalidReaction(InvalidInput):
    """A reaction that is not one bounded emoji (docs/crypto.md section 8.3)."""


class NotInHistory(InvalidInput):
    """A reply, edit or reaction names a message this device does not hold."""


class NotAllowed(E2EChatError):
    """Editing or deleting someone else's message, or another change receivers refuse."""


class BadStatus(InvalidInput):
    """A presence status other than online, away or busy, or a status text too long."""


class InvalidInvite(InvalidInput):
    """An invite string that does not parse, or is for another room."""


class InvalidRoomOption(InvalidInput):
    """A room description too long, an unknown ``access``, or options that contradict."""


class WrongAccess(E2EChatError):
    """The room's kind does not fit the request: a password for a room without one, an
    invite of a room that is not an invite room."""


class SecretRequired(WrongAccess):
    """A join without a password or invite of a room that needs one. ``needs`` is
    "password" when the room opens with a password now (a client can ask for it and try
    again), else "invite" (an invite room, or a password room whose secret an admin
    changed without setting a new password)."""

    def __init__(self, message: str, needs: Literal["password", "invite"]) -> None:
        super().__init__(message)
        self.needs = needs


class SecretPending(E2EChatError):
    """Another member changed the room's secret (a kick, a ban, a new secret) and the new
    one has not reached this device yet: an invite made now would be the old, dead one.
    ``SecretArrived`` says when it has."""


class StoreError(E2EChatError):
    """The store file cannot be opened: another identity's, a newer schema, damaged."""


class StoreInUse(StoreError):
    """Another e2echat client (in this or another process) has the store open."""


class IdentityFileError(E2EChatError):
    """An identity file that is missing, corrupt, or not an e2echat identity."""


class IdentityExists(IdentityFileError):
    """``Identity.save`` refused to replace an existing identity (pass ``overwrite=True``)."""


class PassphraseRequired(E2EChatError):
    """No passphrase was given where one is needed (or an unencrypted key not allowed)."""


class TransferError(E2EChatError):
    """A file upload or download that failed: the relay refused it (``code``), the
    connection kept dropping, or the file does not check against its signed hash."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
