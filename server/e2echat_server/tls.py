"""The relay's TLS context, whose certificate can be replaced while it serves (SIGHUP).

The server's listening socket keeps the context it was started with; that context's SNI
callback hands each new handshake to the current one. A reload builds a whole new
context first, so a bad or mismatched file leaves the running certificate untouched.
"""

import ssl
from pathlib import Path


class TlsLoadError(ssl.SSLError):
    """A certificate and key that do not load, said in one sentence naming the file."""

    def __str__(self) -> str:
        return str(self.args[0])  # ssl.SSLError shows a one-argument error as a tuple


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # "[SSL] PEM lib (_ssl.c:3905)" for a bad file of either
        why = _why(cert, key, exc)
        raise TlsLoadError(f"TLS certificate {cert} with key {key}: {why}") from None
    except OSError as exc:  # ssl names neither file ("[Errno 2] No such file or directory")
        raise OSError(f"TLS certificate {cert} with key {key}: {exc.strerror}") from None
    return context


def _why(cert: Path, key: Path, exc: ssl.SSLError) -> str:
    """What is wrong with a pair that ``load_cert_chain`` refused, in an operator's words."""
    if exc.reason == "KEY_VALUES_MISMATCH":
        return "the key is not the certificate's"
    if b"-----BEGIN CERTIFICATE-----" not in _read(cert):
        return f"{cert} holds no PEM certificate"
    if b"PRIVATE KEY-----" not in _read(key):
        return f"{key} holds no PEM private key"
    return f"they do not load ({exc.reason or exc})"  # an encrypted key, say


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


class ReloadableTls:
    """A server-side TLS context with a replaceable certificate chain."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.current = _context(cert, key)
        self.listening = _context(cert, key)
        self.listening.sni_callback = self._pick

    def _pick(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        if connection.context is not self.current:
            connection.context = self.current

    def reload(self, cert: Path, key: Path) -> None:
        """Serve ``cert`` to new connections; raises (changing nothing) if it cannot load."""
        self.current = _context(cert, key)
