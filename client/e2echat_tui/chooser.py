"""A fuzzy chooser over plain-text choices, on Textual's command palette.

Textual's ``App.search_commands`` reads each name and help text as markup, so a link
``https://x.test/[b]y[/b]`` would show as ``https://x.test/y``. Here a choice's name is
a ``Content`` built from plain text (the fuzzy match highlighted on it) and its help is
escaped: what the list shows is exactly the text.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import App
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, SimpleProvider
from textual.content import Content
from textual.markup import escape
from textual.screen import Screen


@dataclass(frozen=True, slots=True)
class Choice:
    name: str
    chosen: Callable[[], object]
    about: str


class PlainChoices(SimpleProvider):
    """The choices of one ``choose`` call (a ``SimpleProvider``: the palette takes an
    instance of that class only)."""

    def __init__(self, screen: Screen[Any], choices: Sequence[Choice]) -> None:
        super().__init__(screen, [(c.name, c.chosen, c.about) for c in choices])

    async def discover(self) -> Hits:
        for each in self._commands:
            yield DiscoveryHit(
                Content(each.name), each.callback, each.name, escape(each.help_text or "")
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for each in self._commands:
            score = matcher.match(each.name)
            if score > 0:
                shown = Content(each.name)
                _, offsets = matcher.fuzzy_search.match(query, each.name)
                for offset in offsets:
                    shown = shown.stylize(matcher.match_style, offset, offset + 1)
                yield Hit(score, shown, each.callback, each.name, escape(each.help_text or ""))


def choose(app: App[Any], choices: Sequence[Choice], placeholder: str) -> None:
    """Show ``choices`` in the command palette; the one picked is called."""
    provider = PlainChoices(app.screen, choices)
    # as Textual's own search_commands does: the palette's annotation omits instances
    palette = CommandPalette(providers=[provider], placeholder=placeholder)  # type: ignore[list-item]
    app.push_screen(palette)
