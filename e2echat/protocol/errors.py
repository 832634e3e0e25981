"""The one exception a peer's bad input turns into."""

from e2echat.protocol.constants import ErrorCode


class ProtocolError(ValueError):
    """A frame or value that breaks protocol v1.

    A ValueError so that msgspec reports it, with its sentence, from a `__post_init__`.

    Carries the error code the relay would send back and a sentence a person can act on;
    it never carries the offending bytes, which may be large or secret.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.message!r})"
