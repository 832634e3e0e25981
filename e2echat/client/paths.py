"""Default file locations: platformdirs, or everything under ``$E2ECHAT_HOME``.

One base directory keeps a user's identity and stores together, and one variable moves
all of it (tests, bots in containers, several identities side by side).
"""

import os
from pathlib import Path

import platformdirs

from e2echat.crypto.identity import Identity

HOME_ENV = "E2ECHAT_HOME"


def data_dir() -> Path:
    """``$E2ECHAT_HOME`` if set, else the platform's user data directory for e2echat."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("e2echat", appauthor=False))


def default_identity_path() -> Path:
    """Where the identity key lives unless a path is given."""
    return data_dir() / "identity.key"


def default_store_path(identity: Identity) -> Path:
    """The SQLite store of ``identity``: one file per identity, named by its public key."""
    return data_dir() / "stores" / f"{identity.public_key.hex()}.sqlite3"
