"""A change the directory has made in memory and the store has yet to make durable. Pure.

A directory operation checks and applies its change in one step (no other request can
slip in between), and returns it as a `Change`: the store write that makes it durable,
and how to take it back. The shell awaits the write, then calls `commit` on success or
`undo` on failure, exactly once; so no undo logic lives in the shell, and every change
follows the same path (`Engine.apply`).
"""

from collections.abc import Awaitable, Callable
from enum import Enum

from e2echat_server.store import Store


class ChangeState(Enum):
    PENDING = "pending"
    COMMITTED = "committed"
    UNDONE = "undone"


def _nothing() -> None:
    """A change whose memory side needs no undo (the store keeps an older value)."""


class Change:
    """One applied, not yet durable, directory change (see the module docstring)."""

    __slots__ = ("_on_commit", "_undo", "operation", "persist", "state")

    def __init__(
        self,
        operation: str,
        persist: Callable[[Store], Awaitable[object]],
        undo: Callable[[], None] = _nothing,
        on_commit: Callable[[], None] = _nothing,
    ) -> None:
        self.operation = operation  # the store operation's name, for metrics and logs
        self.persist = persist
        self._undo = undo
        self._on_commit = on_commit
        self.state = ChangeState.PENDING

    def commit(self) -> None:
        """The write is durable: the change stays."""
        self._settle(ChangeState.COMMITTED)
        self._on_commit()

    def undo(self) -> None:
        """The write failed: take the change back in memory."""
        self._settle(ChangeState.UNDONE)
        self._undo()

    def _settle(self, state: ChangeState) -> None:
        if self.state is not ChangeState.PENDING:
            raise RuntimeError(f"this {self.operation} change is already {self.state.value}")
        self.state = state

    def __repr__(self) -> str:
        return f"<Change {self.operation} {self.state.value}>"
