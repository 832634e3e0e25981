"""The public ``Identity``: the crypto core's identity with the library's error types.

It adds what applications need on top of ``e2echat.crypto.Identity``: a printable
``fingerprint``, one ``save`` for both encrypted and (explicitly allowed) unencrypted
files, and a passphrase from ``$E2ECHAT_PASSPHRASE`` for unattended bots.
"""

import os
from pathlib import Path

from e2echat.client.errors import E2EChatError, WrongPassphrase
from e2echat.crypto import identity as crypto_identity
from e2echat.crypto.errors import KeyFileError, PassphraseError
from e2echat.crypto.safety import fingerprint

PASSPHRASE_ENV = "E2ECHAT_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)


class IdentityFileError(E2EChatError):
    """An identity file that is missing, corrupt, or not an e2echat identity."""


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

    @classmethod
    def load(cls, path: Path | str, passphrase: str | None = None) -> "Identity":
        """Read an identity file. Without ``passphrase``, ``$E2ECHAT_PASSPHRASE`` is used.

        Raises ``WrongPassphrase`` if the passphrase does not open it and
        ``IdentityFileError`` if the file is missing or not an identity file.
        """
        if passphrase is None:
            passphrase = os.environ.get(PASSPHRASE_ENV) or None
        try:
            loaded = super().load(Path(path), passphrase)
        except PassphraseError as exc:
            raise WrongPassphrase(str(exc)) from None
        except KeyFileError as exc:
            raise IdentityFileError(str(exc)) from None
        assert isinstance(loaded, cls)
        return loaded

    def save(
        self,
        path: Path | str,
        passphrase: str | None,
        *,
        allow_unencrypted: bool = False,
        limits: crypto_identity.KdfLimits = crypto_identity.MODERATE,
    ) -> None:
        """Write the identity (atomic, mode 0600), encrypted under ``passphrase``.

        ``passphrase=None`` writes it in clear, which must be asked for explicitly with
        ``allow_unencrypted=True`` (a bot whose key file is protected otherwise).
        """
        if passphrase is None:
            if not allow_unencrypted:
                raise E2EChatError(
                    "refusing to write an unencrypted identity: give a passphrase or pass"
                    " allow_unencrypted=True"
                )
            self.save_unencrypted(Path(path))
        else:
            super().save(Path(path), passphrase, limits=limits)
