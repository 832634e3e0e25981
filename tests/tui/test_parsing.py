"""Pure parts of the TUI: command parsing, escaping, line wrapping and the log."""

import pytest
from e2echat_tui import commands as cmd
from e2echat_tui.composer import clean_paste
from e2echat_tui.lines import Entry, RoomLog, line_count, render_entry, wrap_cells
from e2echat_tui.safe import escape_controls
from e2echat_tui.terminal import TerminalParser
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.style import Style
from textual import events


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", cmd.SendText("hello")),
        ("//shrug", cmd.SendText("/shrug")),
        ("/create den", cmd.Create("den")),
        ("/create den --password", cmd.Create("den", ask_password=True, secret=True)),
        ("/create den --secret", cmd.Create("den", secret=True)),
        ("/join den", cmd.Join("den")),
        ("/join den hunter2", cmd.Join("den", secret="hunter2")),
        ("/join den --password", cmd.Join("den", ask_password=True)),
        ("/leave", cmd.Leave()),
        ("/invite", cmd.Invite()),
        ("/status away", cmd.SetStatus("away")),
        ("/status busy in a meeting", cmd.SetStatus("busy", "in a meeting")),
        ("/verify bob", cmd.Verify("bob")),
        ("/verify @bob", cmd.Verify("bob")),
        ("/verify Ann  Lee", cmd.Verify("Ann  Lee")),  # others' names may have spaces
        ("/msg bob", cmd.Msg("bob")),
        ("/msg @bob#8b90 see  you", cmd.Msg("bob#8b90", "see  you")),
        ("/members", cmd.Members()),
        ("/rooms", cmd.Rooms()),
        ("/nick Al", cmd.Nick("Al")),
        ("/HELP", cmd.Help()),
        ("/help join", cmd.Help("join")),
        ("/help /Join", cmd.Help("join")),
        ("/me waves at  everyone", cmd.Act("waves at  everyone")),
        ("/topic", cmd.Topic()),
        ("/topic  Plans for  [b]Friday[/b] ", cmd.Topic("Plans for  [b]Friday[/b]")),
        ("/names", cmd.Names()),
        ("/clear", cmd.Clear()),
        ("/quit", cmd.Quit()),
    ],
)
def test_parse(line: str, expected: cmd.Parsed) -> None:
    assert cmd.parse(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/frobnicate", "unknown command /frobnicate"),
        ("/create", "usage: /create"),
        ("/create a b", "usage: /create"),
        ("/create a --password --secret", "usage: /create"),
        ("/create a --pasword", "usage: /create"),
        ("/join", "usage: /join"),
        ("/join a b c", "usage: /join"),
        ("/leave now", "usage: /leave"),
        ("/status sleeping", r"busy; usage: /status online\|away\|busy \[TEXT\]$"),
        ("/me", "usage: /me ACTION"),
        ("/help frob", "there is no command /frob"),
        ("/help join leave", r"usage: /help \[COMMAND\]"),
        ("/clear all", "usage: /clear"),
        ("/verify", "usage: /verify"),
        ("/msg", "usage: /msg"),
        ("/nick a b", "usage: /nick"),
    ],
)
def test_parse_errors_say_what_to_type(line: str, message: str) -> None:
    with pytest.raises(cmd.CommandError, match=message):
        cmd.parse(line)


def test_an_action_travels_as_text() -> None:
    assert cmd.action_of("/me waves") == "waves"
    assert cmd.action_of("/means nothing") is None
    assert cmd.action_of("hello") is None


def test_history_and_repr_never_keep_a_room_secret() -> None:
    assert cmd.history_text("/join den hunter2") == "/join den"
    assert cmd.history_text("/join den") == "/join den"
    assert cmd.history_text("/nope x") == "/nope x"
    assert "hunter2" not in repr(cmd.parse("/join den hunter2"))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("bell\x07", "bell\\x07"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("tab\there", "tab\\x09here"),
        ("c1\x9bx", "c1\\x9bx"),
        ("line\u2028sep", "line\\u2028sep"),
        ("family 👨\u200d👩\u200d👧", "family 👨\u200d👩\u200d👧"),
        ("[red]x[/red]", "[red]x[/red]"),
    ],
)
def test_escape_controls(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown


def test_escape_keeps_newlines_only_when_asked() -> None:
    assert escape_controls("a\nb", keep_newlines=True) == "a\nb"
    assert escape_controls("a\nb") == "a\\x0ab"


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")), max_size=300),
    first=st.integers(1, 40),
    rest=st.integers(1, 40),
)
def test_wrap_fits_and_keeps_every_visible_character(text: str, first: int, rest: int) -> None:
    lines = wrap_cells(text, first, rest)
    for number, line in enumerate(lines):
        limit = first if number == 0 else rest
        assert cell_len(line) <= limit or len(line) == 1  # a wide char in a 1-cell line
    assert "".join("".join(lines).split()) == "".join(text.split())


def test_wrap_prefers_word_boundaries_and_honours_newlines() -> None:
    assert wrap_cells("the quick brown fox", 10, 10) == ["the quick", "brown fox"]
    assert wrap_cells("one\ntwo", 20, 20) == ["one", "two"]
    assert wrap_cells("abcdefghij", 4, 3) == ["abcd", "efg", "hij"]


def _entry(body: str) -> Entry:
    from rich.segment import Segment

    return Entry(prefix=(Segment("12:00 bob "),), body=body, body_style=Style())


def test_a_4000_character_message_wraps_within_the_width() -> None:
    entry = _entry("word " * 800)
    strips = render_entry(entry, 60)
    assert line_count(entry, 60) == len(strips) > 60
    assert all(strip.cell_length <= 60 for strip in strips)
    assert strips[1].text.startswith(" " * 10)  # continuation hangs under the body


def test_room_log_counts_lines_trims_in_batches_and_relayouts() -> None:
    log = RoomLog(limit=100)
    log.set_width(30)
    for number in range(150):
        log.append(_entry(f"message {number}" + (" long" * 10 if number % 10 == 0 else "")))
    assert 100 <= len(log.entries) <= 110
    assert log.line_count == sum(line_count(e, 30) for e in log.entries)
    last = log.line(log.line_count - 1)
    assert last is not None
    assert "message 149" in last.text
    assert log.line(log.line_count) is None
    log.set_width(200)
    assert log.line_count == len(log.entries)
    assert log.line(-1) is None


def test_room_log_prepends_older_entries_up_to_the_limit() -> None:
    log = RoomLog(limit=10)
    log.set_width(40)
    log.extend([_entry(f"new {n}") for n in range(6)])
    newest = log.line(log.line_count - 1)
    log.prepend([_entry(f"old {n}") for n in range(8)])
    assert [e.body for e in log.entries] == [f"old {n}" for n in range(4, 8)] + [
        f"new {n}" for n in range(6)
    ]
    assert log.line_count == 10
    assert log.line(9) is newest  # the cached strips of the newer entries stay valid
    log.prepend([_entry("ignored")])
    assert len(log.entries) == 10


def test_header_fingerprint_is_shortened_to_its_first_groups() -> None:
    from e2echat_tui.format import short_fingerprint

    full = " ".join(f"{i:04x}" for i in range(16))
    assert short_fingerprint(full) == "0000 0001 0002 0003 …"
    assert short_fingerprint("abcd ef01") == "abcd ef01"


def test_invites_are_told_from_passwords() -> None:
    assert cmd.looks_like_invite("ws://127.0.0.1:8765/vault#" + "A" * 43)
    assert cmd.looks_like_invite("wss://relay.example/vault#x")
    assert not cmd.looks_like_invite("correct horse battery staple")
    assert not cmd.looks_like_invite("ws://no-fragment/vault")


def terminal_tokens(*chunks: str) -> list[tuple[str, str | None]]:
    parser = TerminalParser()
    tokens = [token for chunk in (*chunks, "") for token in parser.feed(chunk)]
    return [
        (type(t).__name__, t.key if isinstance(t, events.Key) else getattr(t, "text", None))
        for t in tokens
    ]


def test_a_paste_with_escapes_stays_one_paste_in_order() -> None:
    """Textual's own parser sends the part after an ESC as keys, before the paste."""
    paste = "\x1b[200~one\x1b[2J\ntwo\x1b]0;t\x07\x1b[201~"
    assert terminal_tokens(paste + "x") == [
        ("Paste", "one\x1b[2J\ntwo\x1b]0;t\x07"),
        ("Key", "x"),
    ]
    # The end marker split across two reads, and an ESC at the very end of a read.
    assert terminal_tokens("\x1b[200~a\x1b", "b\x1b[20", "1~y") == [
        ("Paste", "a\x1bb"),
        ("Key", "y"),
    ]


def test_alt_enter_and_alt_digits_are_reported() -> None:
    assert terminal_tokens("\x1b\r") == [("Key", "alt+enter")]
    assert terminal_tokens("\x1b1") == [("Key", "alt+1")]
    assert terminal_tokens("\r") == [("Key", "enter")]


def test_pastes_are_cleaned() -> None:
    assert clean_paste("a\r\nb\rc\td") == ("a\nb\nc   d", 0)
    assert clean_paste("x\x1b[31my\u202e") == ("x\\x1b[31my\\u202e", 2)
