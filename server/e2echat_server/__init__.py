"""The e2echat relay: it routes opaque ciphertext and public keys and never reads a message.

Embedding (tests, `e2echat demo`)::

    from e2echat_server import Relay, RelayConfig

    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        print(relay.url)  # ws://127.0.0.1:<port>/

As a subprocess: ``python -m e2echat_server --port 0 --memory`` prints the bound URL as
the first line of stdout, then serves until SIGTERM or SIGINT.

The names below are imported when first used, so that the ``e2echat-server`` command
(``e2echat_server.entry``) takes SIGHUP over before the relay's modules load.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2echat_server.config import ConfigError, RelayConfig
    from e2echat_server.relay import Relay
    from e2echat_server.version import __version__

__all__ = ["ConfigError", "Relay", "RelayConfig", "__version__"]
_HOMES = {
    "ConfigError": "e2echat_server.config",
    "RelayConfig": "e2echat_server.config",
    "Relay": "e2echat_server.relay",
    "__version__": "e2echat_server.version",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'e2echat_server' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
