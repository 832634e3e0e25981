"""Verification of `hello` and of signed prekeys, with PyNaCl directly.

The relay never imports the library's crypto sessions: it has no business holding
anything that decrypts, only the means to check that a key signed what it claims.
"""

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from e2echat.protocol import (
    ErrorCode,
    Hello,
    ProtocolError,
    SignedPrekey,
    hello_transcript,
    name_transcript,
    prekey_transcript,
    split_name_statement,
)


def _signed(key: bytes, message: bytes, sig: bytes) -> bool:
    try:
        VerifyKey(key).verify(message, sig)
    except (BadSignatureError, ValueError):
        return False
    return True


def prekey_signed(key: bytes, prekey: SignedPrekey) -> bool:
    """Whether identity ``key`` signed ``prekey`` (over ``prekey_transcript``)."""
    return _signed(key, prekey_transcript(prekey.id, prekey.key), prekey.sig)


def verify_name_statement(key: bytes, statement: bytes) -> None:
    """Raise ProtocolError(auth_failed) unless ``key`` signed ``statement``.

    Its layout and name were checked when the frame was decoded.
    """
    issued, sig, name = split_name_statement(statement)
    if not _signed(key, name_transcript(key, name, issued), sig):
        raise ProtocolError(
            ErrorCode.AUTH_FAILED, "The name statement is not signed by this identity key."
        )


def verify_hello(hello: Hello, relay: str, nonce: bytes) -> None:
    """Raise ProtocolError(auth_failed) unless ``hello`` is signed for this relay and nonce."""
    if not prekey_signed(hello.key, hello.prekey):
        raise ProtocolError(ErrorCode.AUTH_FAILED, "The prekey is not signed by this identity key.")
    transcript = hello_transcript(
        relay, nonce, hello.key, hello.name, hello.prekey.id, hello.prekey.key, hello.prekey.sig
    )
    if not _signed(hello.key, transcript, hello.sig):
        raise ProtocolError(
            ErrorCode.AUTH_FAILED,
            "The hello signature does not verify for this relay and challenge.",
        )
    if hello.name_statement is not None:
        verify_name_statement(hello.key, hello.name_statement)
