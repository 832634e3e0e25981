"""Default file locations: platformdirs, or everything under ``$E2ECHAT_HOME``.

One base directory keeps a user's identity and stores together, and one variable moves
all of it (tests, bots in containers, several identities side by side).
"""

import contextlib
import os
import re
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


def bot_identity_path(name: str) -> Path:
    """Where ``e2echat.run`` keeps the identity of the bot called ``name``: one per bot
    name, so that two bots on one machine are two users with two stores, not one user
    whose second process is refused the store."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"
    return data_dir() / "bots" / f"{safe}.key"


def default_store_path(identity: Identity) -> Path:
    """The SQLite store of ``identity``: one file per identity, named by its public key."""
    return data_dir() / "stores" / f"{identity.public_key.hex()}.sqlite3"


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` and any missing parent with mode 0700 (``mkdir(parents=True)``
    would give the parents the umask's mode, typically 0755).

    Directories that exist are left as they are, except e2echat's own data directory
    and its ``stores``, which are tightened to 0700: an identity's files reveal whom it
    talks to, even sealed.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            path.mkdir(mode=0o700)
    own = data_dir()
    for path in (own, own / "stores"):
        if directory == path or path in directory.parents:
            _restrict(path, 0o700)


def make_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing (so that SQLite, which gives
    its ``-wal`` and ``-shm`` files the mode of the database, never makes a 0644 file);
    an existing file, and its ``-wal``/``-shm`` companions, are tightened to 0600."""
    make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if each.exists():
            _restrict(each, 0o600)


def _restrict(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)
