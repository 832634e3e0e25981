"""The relay's TLS context, whose certificate can be replaced while it serves (SIGHUP).

The server's listening socket keeps the context it was started with; that context's SNI
callback hands each new handshake to the current one. A reload builds a whole new
context first, so a bad or mismatched file leaves the running certificate untouched.
"""

import ssl
from pathlib import Path


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError:
        raise
    except OSError as exc:  # ssl names neither file ("[Errno 2] No such file or directory")
        raise OSError(f"TLS certificate {cert} with key {key}: {exc.strerror}") from None
    return context


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
