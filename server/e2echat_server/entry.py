"""The ``e2echat-server`` command's first step: SIGHUP is taken over before anything else.

Loading the relay's modules takes a second or more on a busy host, and until a process
handles SIGHUP the signal's default action ends it: a ``systemctl reload`` (or a log
rotation's SIGHUP) just after a start would kill the relay. So the command notes a
SIGHUP from its very first step, and the relay applies one that came early once it
listens (``taken``), as it does for one that comes while it checks its database.
"""

import signal
from types import FrameType

_asked = False


def _note(signum: int, frame: FrameType | None) -> None:
    global _asked
    _asked = True


def note_hangups() -> None:
    """From now on a SIGHUP is noted (see ``taken``), never the default action."""
    signal.signal(signal.SIGHUP, _note)


def taken() -> bool:
    """Whether a SIGHUP was noted since the last call."""
    global _asked
    asked, _asked = _asked, False
    return asked


def main() -> None:
    note_hangups()
    from e2echat_server.cli import main as command  # only now: the heavy part

    command()
