"""Desktop notifications, opt-in (``desktop = true``), through the system's own tool.

``notify-send`` (libnotify, on Linux and the BSDs) or ``osascript`` (macOS) when one is
on the ``PATH``: no library to install and nothing that fails to import. Title and
text are passed as arguments (never through a shell or a script's source); the text
is escaped for the body markup libnotify servers accept. Without either tool the user
is told once and the bell and toast go on as before.
"""

import asyncio
import html
import shutil

_OSASCRIPT = (
    "on run argv",
    "display notification (item 2 of argv) with title (item 1 of argv)",
    "end run",
)


class DesktopNotifier:
    """Sends one notification at a time; ``send`` returns a problem to tell, or None."""

    def __init__(self) -> None:
        self.notify_send = shutil.which("notify-send")
        self.osascript = None if self.notify_send else shutil.which("osascript")
        self._told = False

    def command(self, title: str, body: str) -> list[str] | None:
        if self.notify_send is not None:
            return [self.notify_send, "--app-name=e2echat", "--", title, html.escape(body)]
        if self.osascript is not None:
            script = [arg for line in _OSASCRIPT for arg in ("-e", line)]
            return [self.osascript, *script, title, body]
        return None

    async def send(self, title: str, body: str) -> str | None:
        command = self.command(title, body)
        if command is None:
            return self._once("Desktop notifications need notify-send or osascript on the PATH.")
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            code = await process.wait()
        except OSError as exc:
            return self._once(f"Desktop notification failed: {exc.strerror}")
        return self._once(f"Desktop notification failed (exit status {code})") if code else None

    def _once(self, problem: str) -> str | None:
        """Each kind of failure is worth one line, not one per message."""
        if self._told:
            return None
        self._told = True
        return problem
