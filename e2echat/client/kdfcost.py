"""The Argon2id cost of identity files and room passwords, and its cheap test mode.

A test suite that creates identities and password rooms pays about a second and
256 MiB per identity file at the real cost. ``e2echat.testing`` switches this process to
the minimum cost, and only there: the switch refuses unless pytest is running a test,
and the cheap cost applies only while one is (pytest sets ``PYTEST_CURRENT_TEST`` for
the duration of each test). A module that calls the switch at import in a program run
outside pytest gets a ``RuntimeError``, not weak keys.

Files written in the test mode record their cost like any other and load anywhere.
"""

import logging
import os

from e2echat.crypto.identity import INTERACTIVE, MODERATE, KdfLimits

log = logging.getLogger("e2echat")
TEST_ENV = "PYTEST_CURRENT_TEST"
FAST = KdfLimits(1, 8192)
"""Argon2id at libsodium's minimum: tests only."""
_fast = False


def enable_fast_kdf_for_tests() -> None:
    """Use ``FAST`` for new identity files and room passwords while a test runs."""
    global _fast
    if TEST_ENV not in os.environ:
        raise RuntimeError(
            "the cheap test key derivation can only be enabled while pytest runs a test"
        )
    if not _fast:
        log.debug("Argon2id at test cost for this test session")
    _fast = True


def disable_fast_kdf() -> None:
    """Back to the real cost."""
    global _fast
    _fast = False


def _testing() -> bool:
    return _fast and TEST_ENV in os.environ


def identity_limits() -> KdfLimits:
    """The cost of a new identity file: about a second, except under test."""
    return FAST if _testing() else MODERATE


def password_limits() -> KdfLimits:
    """The cost of a room password: well under a second, except under test."""
    return FAST if _testing() else INTERACTIVE
