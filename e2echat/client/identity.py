"""The public ``Identity``: the crypto core's identity with the library's error types.

It adds what applications need on top of ``e2echat.crypto.Identity``: a printable
``fingerprint``, one ``save`` for both encrypted and (explicitly allowed) unencrypted
files that never replaces an identity unless told to, a passphrase from
``$E2ECHAT_PASSPHRASE`` or from the file named by ``$E2ECHAT_PASSPHRASE_FILE`` (a
service manager's credential) for unattended bots, and ``load_or_create`` for a bot's
first run.
"""

import os
import sys
from pathlib import Path
from types import FrameType

from e2echat.client import kdfcost
from e2echat.client.errors import (
    E2EChatError,
    IdentityExists,
    IdentityFileError,
    PassphraseRequired,
    WrongPassphrase,
)
from e2echat.client.paths import default_identity_path, make_private_dir
from e2echat.crypto import identity as crypto_identity
from e2echat.crypto.errors import KeyFileError, PassphraseError
from e2echat.crypto.safety import fingerprint

PASSPHRASE_ENV = "E2ECHAT_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
PASSPHRASE_FILE_ENV = "E2ECHAT_PASSPHRASE_FILE"  # noqa: S105 (a variable name)


class Identity(crypto_identity.Identity):
    """Your Ed25519 identity key; its public key is your user id. Repr shows no secret."""

    __slots__ = ()

    @classmethod
    def generate(cls) -> "Identity":
        """A fresh identity from the operating system's random generator."""
        generated = super().generate()
        assert isinstance(generated, cls)
        return generated

    @property
    def fingerprint(self) -> str:
        """The public key as 16 groups of 4 hex digits, for people to compare."""
        return fingerprint(self.public_key)

    def __repr__(self) -> str:
        return f"Identity(fingerprint={self.fingerprint!r}, secret=<redacted>)"

    @classmethod
    def load(cls, path: Path | str | None = None, passphrase: str | None = None) -> "Identity":
        """Read an identity file (default: ``default_identity_path()``).

        Without ``passphrase``, ``$E2ECHAT_PASSPHRASE`` or the first line of the file
        named by ``$E2ECHAT_PASSPHRASE_FILE`` is used. Raises ``WrongPassphrase`` if the
        passphrase does not open it and ``IdentityFileError`` if the file is missing or
        not an identity file.
        """
        path = default_identity_path() if path is None else Path(path)
        if passphrase is None:
            passphrase = passphrase_from_environment()
        try:
            loaded = super().load(path, passphrase)
        except PassphraseError as exc:
            raise WrongPassphrase(str(exc)) from None
        except KeyFileError as exc:
            raise IdentityFileError(str(exc)) from None
        assert isinstance(loaded, cls)
        return loaded

    @classmethod
    def load_or_create(
        cls, path: Path | str | None = None, *, allow_unencrypted: bool = False
    ) -> "Identity":
        """A bot's identity: loaded if the file exists, else made and saved once.

        The passphrase comes from the environment, as for ``load``; with none set a new
        identity is refused (``PassphraseRequired``) unless ``allow_unencrypted=True``.
        Two processes starting at once end up with the same identity.
        """
        path = default_identity_path() if path is None else Path(path)
        if path.exists():
            return cls.load(path)
        identity = cls.generate()
        try:
            identity._save(
                path,
                passphrase_from_environment(),
                allow_unencrypted=allow_unencrypted,
                overwrite=False,
                limits=None,
                stacklevel=_caller_stacklevel(),
            )
        except IdentityExists:
            return cls.load(path)
        return identity

    def save(
        self,
        path: Path | str,
        passphrase: str | None,
        *,
        allow_unencrypted: bool = False,
        overwrite: bool = False,
        limits: crypto_identity.KdfLimits | None = None,
    ) -> None:
        """Write the identity (atomic, mode 0600, new directories 0700), encrypted under
        ``passphrase``.

        An existing file is never replaced unless ``overwrite=True``: replacing an
        identity makes a new user, and the old key is lost (``IdentityExists``).
        ``passphrase=None`` writes it in clear, which must be asked for explicitly with
        ``allow_unencrypted=True`` (a bot whose key file is protected otherwise).
        ``limits`` is the Argon2id cost (default: about a second and 256 MiB).
        """
        self._save(
            Path(path),
            passphrase,
            allow_unencrypted=allow_unencrypted,
            overwrite=overwrite,
            limits=limits,
            stacklevel=_caller_stacklevel(),
        )

    def _save(
        self,
        path: Path,
        passphrase: str | None,
        *,
        allow_unencrypted: bool,
        overwrite: bool,
        limits: crypto_identity.KdfLimits | None,
        stacklevel: int,
    ) -> None:
        if passphrase is None and not allow_unencrypted:
            raise PassphraseRequired(
                "refusing to write an unencrypted identity: give a passphrase (or set"
                f" ${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV}) or pass allow_unencrypted=True"
            )
        if not overwrite and path.exists():
            raise _exists(path)
        make_private_dir(path.parent)
        try:
            if passphrase is None:
                self.save_unencrypted(path, overwrite=overwrite, stacklevel=stacklevel + 1)
            else:
                limits = kdfcost.identity_limits() if limits is None else limits
                super().save(path, passphrase, limits=limits, overwrite=overwrite)
        except FileExistsError:
            raise _exists(path) from None
        except PassphraseError as exc:
            raise PassphraseRequired(str(exc)) from None
        except KeyFileError as exc:  # limits out of range
            raise E2EChatError(str(exc)) from None


def passphrase_from_environment() -> str | None:
    """``$E2ECHAT_PASSPHRASE``, else the first line of ``$E2ECHAT_PASSPHRASE_FILE``.

    Setting both is refused: which one is meant cannot be guessed.
    """
    direct = os.environ.get(PASSPHRASE_ENV) or None
    file_name = os.environ.get(PASSPHRASE_FILE_ENV) or None
    if file_name is None:
        return direct
    if direct is not None:
        raise PassphraseRequired(f"set ${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV}, not both")
    try:
        text = Path(file_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PassphraseRequired(
            f"cannot read the passphrase file ${PASSPHRASE_FILE_ENV} ({file_name}): {reason}"
        ) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise PassphraseRequired(f"the passphrase file {file_name} is empty")
    return lines[0]


def _exists(path: Path) -> IdentityExists:
    return IdentityExists(
        f"{path} already holds an identity; replacing it makes a new user and loses the"
        " old key: pass overwrite=True if that is what you want"
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised one call below our caller point at
    the first frame outside the e2echat package (the application's line)."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _in_library(frame):
        frame = frame.f_back
        level += 1
    return level + 1


def _in_library(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and (name == "e2echat" or name.startswith("e2echat."))
