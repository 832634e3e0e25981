"""Links in the timeline: found in what is shown, opened only on request.

A link is an ``http://`` or ``https://`` URL in an entry's shown text (already
escaped, so it holds no control character). Nothing is opened, fetched or previewed
on its own: ``open_link`` lists them and the user picks one. Each comes with its host
in ASCII (IDNA), so a look-alike host (a Cyrillic letter for a Latin one) reads as the
``xn--`` name it really is.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from e2echat_tui.lines import Entry

MAX_LINKS: Final = 50
"""The newest links offered (from the newest entries up)."""

# No spaces, quotes, angle brackets or backslashes (an escape like \x1b shows as text).
_URL: Final = re.compile(r"https?://[^\s<>\"'\\`]+", re.IGNORECASE)
_TRAILING: Final = ".,;:!?)]}*_\u201d\u2019\u00bb\u203a"  # and closing quotes


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    about: str
    """The host as the network sees it, for the list to show beside the link."""


def _host(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
        return host.encode("idna").decode("ascii") if host else None
    except (ValueError, UnicodeError):
        return None


def find_urls(text: str) -> list[str]:
    """The http(s) URLs in ``text``, trailing punctuation left out."""
    urls = []
    for match in _URL.finditer(text):
        url = match.group().rstrip(_TRAILING)
        if url.count("(") > url.count(")") and match.group()[len(url) :].startswith(")"):
            url += ")"  # a balanced parenthesis belongs to the URL (wiki links)
        if _host(url) is not None:
            urls.append(url)
    return urls


def links_in(entries: Iterable[Entry]) -> list[Link]:
    """The distinct links of ``entries``, newest first, at most ``MAX_LINKS``."""
    found: dict[str, Link] = {}
    for entry in reversed(list(entries)):
        for url in reversed(find_urls(entry.body)):
            if url not in found:
                found[url] = Link(url, f"host {_host(url)}")
            if len(found) == MAX_LINKS:
                return list(found.values())
    return list(found.values())
