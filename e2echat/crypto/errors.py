"""The exceptions of the crypto core.

Every failure is a ``CryptoError`` so callers can catch one class; the subclasses say
which check failed. Messages name the failed check and never contain key, secret or
plaintext bytes, so they are safe to log and to show.
"""


class CryptoError(Exception):
    """Base class of every error raised by ``e2echat.crypto``."""


class MalformedError(CryptoError):
    """Bytes that do not parse strictly as the expected layout or JSON shape."""


class SignatureError(CryptoError):
    """An Ed25519 signature that does not verify for the claimed key."""


class DecryptionError(CryptoError):
    """An AEAD or sealed box that does not open (wrong key or altered bytes)."""


class PassphraseError(DecryptionError):
    """The passphrase does not open the identity file (or the file was altered)."""


class KeyFileError(CryptoError):
    """An identity file that is missing, corrupt, or of an unknown format."""


class PrekeyError(CryptoError):
    """A signed prekey that is invalid, or a direct envelope for an unknown prekey."""


class EnvelopeError(CryptoError):
    """A direct envelope that is authentic but not acceptable: wrong recipient,
    sender mismatch with the relay, stale or from the future, or for the wrong room."""


class StaleEnvelopeError(EnvelopeError):
    """A direct envelope that checked in every way but its date: outside the freshness
    window, so one of the two clocks is off. ``payload`` says what it was (a share of
    which chain), so the messages waiting for it can be told why."""

    def __init__(self, message: str, payload: object) -> None:
        super().__init__(message)
        self.payload = payload


class ProofError(CryptoError):
    """A membership proof that is missing or does not check."""


class ReplayError(CryptoError):
    """A room message whose (sender, chain, index) was already consumed."""


class ChainError(CryptoError):
    """A ratchet step that is not allowed: unknown chain, before the start index,
    too far ahead, or an inconsistent share."""


class InviteError(CryptoError):
    """An invite string that does not parse."""


class PayloadError(CryptoError):
    """A room payload that is too large, or a decrypted payload that is not valid."""


class FileError(CryptoError):
    """A file or blob that cannot be encrypted or opened as declared: a size that
    changed, a truncated, extended, reordered or altered blob, or a wrong hash."""
