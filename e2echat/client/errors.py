"""The errors of the public API: one base class, one subclass per thing a caller handles.

Messages are sentences a person can act on; they never carry keys, secrets or plaintext.
"""


class E2EChatError(Exception):
    """Base class of every error the ``e2echat`` client library raises."""


class ConnectError(E2EChatError):
    """The relay could not be reached, does not speak protocol v1, or asks us to wait."""


class AuthError(E2EChatError):
    """The relay refused our ``hello`` (bad signature, name, or a closed 4401)."""


class RelayError(E2EChatError):
    """The relay answered a request with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class WrongPassphrase(E2EChatError):  # noqa: N818 (the public API name)
    """A passphrase (identity file) or room password that does not open what it should."""


class NotAMember(E2EChatError):  # noqa: N818 (the public API name)
    """An operation on a room we are not (or no longer) a member of."""
