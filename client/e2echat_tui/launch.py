"""Run the TUI over a real ``e2echat.Client`` (used by ``connect`` and ``demo``)."""

from pathlib import Path

from e2echat import Client, Identity
from e2echat_tui.adapter import LibraryBackend
from e2echat_tui.app import ChatApp


def library_backend(
    url: str, *, identity: Identity, name: str, store: Path | None = None
) -> LibraryBackend:
    """A backend that (re)connects to ``url`` as ``identity`` under a display name."""

    def connect(display_name: str) -> Client:
        return Client(url, identity=identity, name=display_name, store=store)

    return LibraryBackend(connect, name)


async def run_chat(
    backend: LibraryBackend, *, room: str | None = None, bell: bool = True, toast: bool = True
) -> None:
    """Connect, run the app until the user quits, disconnect."""
    async with backend:
        await ChatApp(backend, room=room, bell=bell, toast=toast).run_async()
