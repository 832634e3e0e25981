"""Image previews: kitty graphics or sixel where the terminal has them, text otherwise.

Optional: it needs ``textual-image`` (``pip install 'e2echat-tui[images]'``), which
asks the terminal what it supports. That question must be asked before Textual takes
the terminal over, and only of a real terminal, so ``detect_graphics`` runs once at
start (``E2ECHAT_IMAGES=off`` skips it). Without support, a preview is a line of text:
the image's format and size read from its header, never its pixels.

The image is decoded only after the download checked it against its signed hash, and
only up to ``MAX_PIXELS`` (a small file can claim a huge picture).
"""

import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from e2echat_tui.files import human_size
from e2echat_tui.safe import escape_controls

Graphics = Literal["kitty", "sixel"]
IMAGES_ENV = "E2ECHAT_IMAGES"
MAX_PIXELS = 40_000_000
_found: list[Graphics | None] = []
_MULTIPLEXERS = ("TMUX", "STY")  # set inside tmux, GNU screen


def detect_graphics() -> Graphics | None:
    """Which image protocol the terminal speaks (asked once; None without one).

    Call it before the app starts. Only a terminal on stdin and stdout is asked, not
    inside tmux or screen, and only if textual-image is installed and
    ``E2ECHAT_IMAGES`` is not ``off``.
    """
    if _found:
        return _found[0]
    _found.append(_detect())
    return _found[0]


def _detect() -> Graphics | None:
    if os.environ.get(IMAGES_ENV, "").lower() == "off":
        return None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    if any(os.environ.get(name) for name in _MULTIPLEXERS):
        return None  # tmux and screen take the kitty query (an APC) for the pane's title
    try:
        from textual_image import renderable, widget  # both ask the terminal, once
        from textual_image.renderable import sixel, tgp
    except Exception:
        return None
    if renderable.Image is sixel.Image and widget.Image is widget.SixelImage:
        return "sixel"
    if renderable.Image is tgp.Image:
        return "kitty"
    return None


def describe_image(path: Path, media_type: str) -> str:
    """A plain description of an image file: format and size in pixels when Pillow can
    read its header, else its type and size in bytes."""
    size = human_size(path.stat().st_size)
    try:
        from PIL import Image
    except ImportError:
        return f"{escape_controls(media_type)}, {size}"
    try:
        with Image.open(path) as image:
            width, height = image.size
            kind = image.format or media_type
    except Exception:
        return f"{escape_controls(media_type)}, {size}, not a readable image"
    return f"{escape_controls(kind)} image, {width}x{height} pixels, {size}"


def image_widget(path: Path, graphics: Graphics) -> Any:
    """The textual-image widget that shows ``path`` with ``graphics``; raises
    ``ValueError`` for an image too large or unreadable to decode."""
    from PIL import Image
    from textual_image import widget

    try:
        with Image.open(path) as probe:
            width, height = probe.size
    except Exception as exc:
        raise ValueError("not a readable image") from exc
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width}x{height} pixels is too large to preview")
    kind = widget.SixelImage if graphics == "sixel" else widget.TGPImage
    return kind(path, id="picture")


class PreviewScreen(ModalScreen[None]):
    """An image over the chat; Escape closes it."""

    DEFAULT_CSS = """
    PreviewScreen { align: center middle; }
    PreviewScreen > Vertical {
        width: 80%; height: 80%; padding: 1 2; border: thick $primary; background: $surface;
    }
    PreviewScreen #picture { width: auto; height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, picture: Any, title: str) -> None:
        super().__init__()
        self._picture = picture
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, markup=False)
            yield self._picture
