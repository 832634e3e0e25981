"""Which event loop runs the relay: uvloop when it is installed, else asyncio's own.

uvloop (the ``e2echat-server[uvloop]`` extra) does the same work as asyncio's loop in
less CPU per socket event (docs/benchmarks.md), so ``auto`` takes it when importable.
It is an extra, not a dependency: it is a compiled package that some platforms lack,
and the relay is the same program on either loop.
"""

import asyncio
import importlib
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
INSTALL_HINT = "pip install 'e2echat-server[uvloop]'"


class LoopUnavailableError(RuntimeError):
    """``event_loop = "uvloop"`` was asked for and uvloop is not installed."""


def loop_factory(choice: str) -> tuple[str, LoopFactory | None]:
    """The name and factory of the loop ``choice`` (`auto`, `uvloop`, `asyncio`) asks for
    (None: asyncio's default); raise LoopUnavailableError for `uvloop` without uvloop."""
    if choice != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise LoopUnavailableError(
                    f"event_loop 'uvloop' needs uvloop installed ({INSTALL_HINT})"
                ) from None
        else:
            factory: LoopFactory = uvloop.new_event_loop
            return "uvloop", factory
    return "asyncio", None


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop this coroutine runs on (for the start log)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
