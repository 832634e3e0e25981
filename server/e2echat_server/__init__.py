"""The e2echat relay: it routes opaque ciphertext and public keys and never reads a message.

Embedding (tests, `e2echat demo`)::

    from e2echat_server import Relay, RelayConfig

    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        print(relay.url)  # ws://127.0.0.1:<port>/

As a subprocess: ``python -m e2echat_server --port 0 --memory`` prints the bound URL as
the first line of stdout, then serves until SIGTERM or SIGINT.
"""

from e2echat_server.config import ConfigError, RelayConfig
from e2echat_server.relay import Relay
from e2echat_server.version import __version__

__all__ = ["ConfigError", "Relay", "RelayConfig", "__version__"]
