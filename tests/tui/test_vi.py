"""vi's normal mode as a pure function: each command on plain strings, and properties."""

import pytest
from e2echat_tui.vi import Draft, Normal, Outcome, normal_cursor
from hypothesis import given
from hypothesis import strategies as st


def typed(text: str, cursor: int, keys: list[str] | str, normal: Normal | None = None) -> Outcome:
    """The outcome of ``keys`` from ``text`` and ``cursor``, each edit applied in turn;
    its ``draft`` is where they leave the draft."""
    normal = normal or Normal()
    draft, outcome = Draft(text, cursor), Outcome()
    for key in keys:
        outcome = normal.feed(key, draft)
        draft = outcome.draft or draft
        if outcome.mode == "insert":
            break
    return Outcome(draft, outcome.mode, outcome.undo, outcome.history, outcome.pending)


@pytest.mark.parametrize(
    ("text", "cursor", "keys", "after", "cursor_after"),
    [
        # motions, with counts
        ("hello world", 0, "l", "hello world", 1),
        ("hello world", 4, "3h", "hello world", 1),
        ("hello world", 10, "0", "hello world", 0),
        ("  indented", 8, "^", "  indented", 2),
        ("hello world", 0, "$", "hello world", 10),
        ("hello world", 0, "w", "hello world", 6),
        ("hello, world", 0, "w", "hello, world", 5),
        ("hello, world", 0, "W", "hello, world", 7),
        ("a b c d", 0, "3w", "a b c d", 6),
        ("hello world", 8, "b", "hello world", 6),
        ("hello world", 6, "b", "hello world", 0),
        ("hello, world", 7, "B", "hello, world", 0),
        ("hello world", 0, "e", "hello world", 4),
        ("hello world", 4, "e", "hello world", 10),
        ("hello, world", 0, "E", "hello, world", 5),
        ("hello world", 0, "fo", "hello world", 4),
        ("hello world", 0, "2fo", "hello world", 7),
        ("hello world", 0, "to", "hello world", 3),
        ("hello world", 10, "Fo", "hello world", 7),
        ("hello world", 10, "To", "hello world", 8),
        ("a,b,c,d", 0, "f,;", "a,b,c,d", 3),
        ("a,b,c,d", 0, "f,;;,", "a,b,c,d", 3),
        ("one\ntwo\nthree", 1, "j", "one\ntwo\nthree", 5),
        ("one\ntwo\nthree", 9, "k", "one\ntwo\nthree", 5),
        ("one\ntwo\nthree", 0, "G", "one\ntwo\nthree", 8),
        ("one\ntwo\nthree", 0, "2G", "one\ntwo\nthree", 4),
        ("one\ntwo\nthree", 8, "gg", "one\ntwo\nthree", 0),
        ("ab", 0, "9l", "ab", 1),  # never past the last character
        # deleting
        ("hello world", 0, "x", "ello world", 0),
        ("hello world", 0, "3x", "lo world", 0),
        ("hello", 4, "x", "hell", 3),
        ("hello", 3, "X", "helo", 2),
        ("hello world", 0, "dw", "world", 0),
        ("a b c d", 0, "d2w", "c d", 0),
        ("a b c d", 0, "2d2w", "", 0),
        ("one two\nthree", 4, "dw", "one \nthree", 3),  # a word motion stops at the line end
        ("hello world", 0, "de", " world", 0),
        ("hello world", 6, "db", "world", 0),
        ("hello world", 3, "d0", "lo world", 0),
        ("hello world", 3, "d$", "hel", 2),
        ("hello world", 3, "D", "hel", 2),
        ("hello world", 0, "dto", "o world", 0),
        ("hello world", 0, "dfo", " world", 0),
        ("one\ntwo\nthree", 4, "dd", "one\nthree", 4),
        ("one\ntwo\nthree", 4, "2dd", "one", 0),
        ("one\ntwo\nthree", 8, "dd", "one\ntwo", 4),
        ("one\ntwo\nthree", 0, "dj", "three", 0),
        ("one\ntwo\nthree", 8, "dk", "one", 0),
        ("one\ntwo\nthree", 4, "dG", "one", 0),
        ("only line", 3, "dd", "", 0),
        # other changes
        ("hello", 0, "rj", "jello", 0),
        ("hello", 0, "3rx", "xxxlo", 2),
        ("hello", 0, "3~", "HELlo", 3),
        ("one\n  two", 0, "J", "one two", 3),
        ("one\ntwo\nthree", 0, "3J", "one two three", 7),
        # yank and put
        ("hello world", 0, "yep", "hhelloello world", 5),
        ("hello world", 0, "xp", "ehllo world", 1),
        ("hello world", 0, "x3p", "ehhhllo world", 3),
        ("hello big world", 6, "dwP", "hello big world", 9),
        ("one\ntwo", 0, "yyp", "one\none\ntwo", 4),
        ("one\ntwo", 4, "yyP", "one\ntwo\ntwo", 4),
        ("one\ntwo", 4, "ddP", "two\none", 0),
        ("one\ntwo", 0, "Yjp", "one\ntwo\none", 8),
        ("hello world", 3, "y$", "hello world", 3),
    ],
)
def test_commands(text: str, cursor: int, keys: str, after: str, cursor_after: int) -> None:
    outcome = typed(text, cursor, keys)
    assert outcome.draft == Draft(after, cursor_after)
    assert outcome.mode == "normal"


@pytest.mark.parametrize(
    ("text", "cursor", "keys", "after", "cursor_after"),
    [
        ("hello", 2, "i", "hello", 2),
        ("hello", 2, "a", "hello", 3),
        ("  hello", 4, "I", "  hello", 2),
        ("hello", 2, "A", "hello", 5),
        ("ab\ncd", 0, "o", "ab\n\ncd", 3),
        ("ab\ncd", 4, "O", "ab\n\ncd", 3),
        ("hello world", 0, "cw", " world", 0),  # vi's cw: to the end of the word
        ("hello world", 5, "cw", "helloworld", 5),  # on a blank: the blanks only
        ("a b c", 0, "c2w", " c", 0),
        ("hello world", 0, "ct ", " world", 0),
        ("hello world", 3, "C", "hel", 3),
        ("hello", 1, "s", "hllo", 1),
        ("hello", 1, "3s", "ho", 1),
        ("one\n  two\nthree", 6, "cc", "one\n  \nthree", 6),  # keeps the indent
        ("one\ntwo", 0, "S", "\ntwo", 0),
    ],
)
def test_commands_that_go_to_insert_mode(
    text: str, cursor: int, keys: str, after: str, cursor_after: int
) -> None:
    outcome = typed(text, cursor, keys)
    assert outcome.mode == "insert"
    assert outcome.draft == Draft(after, cursor_after)


def test_unfinished_commands_wait_and_escape_drops_them() -> None:
    normal = Normal()
    draft = Draft("hello world", 0)
    assert normal.feed("2", draft).pending
    assert normal.feed("d", draft).pending
    assert normal.keys == "2d"
    assert normal.feed("escape", draft) == Outcome()
    assert normal.feed("w", draft).draft == Draft("hello world", 6)  # a plain w now


@pytest.mark.parametrize("keys", ["q", "dq", "gq", "d~", "Z", "zz", "ctrl+x"])
def test_what_is_not_a_command_rings_and_changes_nothing(keys: str) -> None:
    normal = Normal()
    draft = Draft("hello", 1)
    presses = [keys] if keys.startswith("ctrl") else list(keys)
    *first, last = presses
    for key in first:
        normal.feed(key, draft)
    outcome = normal.feed(last, draft)
    assert outcome.refused
    assert outcome.draft is None
    assert normal.keys == ""


@pytest.mark.parametrize(
    ("text", "cursor", "keys"),
    [("hello", 0, "fz"), ("hello", 0, "9rx"), ("only", 0, "J"), ("one", 0, "2dd"), ("", 0, "x")],
)
def test_a_command_that_cannot_be_done_here_is_refused(text: str, cursor: int, keys: str) -> None:
    normal = Normal()
    draft = Draft(text, cursor)
    outcomes = [normal.feed(key, draft) for key in keys]
    assert outcomes[-1].refused
    assert all(outcome.draft is None for outcome in outcomes)


def test_undo_redo_and_the_history_at_the_edges() -> None:
    normal = Normal()
    assert normal.feed("u", Draft("x", 0)) == Outcome(undo=1)
    assert normal.feed("3", Draft("x", 0)).pending
    assert normal.feed("u", Draft("x", 0)) == Outcome(undo=3)
    assert normal.feed("ctrl+r", Draft("x", 0)) == Outcome(undo=-1)
    assert normal.feed("k", Draft("one\ntwo", 1)) == Outcome(history=-1)  # the first line
    assert normal.feed("j", Draft("one\ntwo", 5)) == Outcome(history=1)  # the last line
    assert normal.feed("j", Draft("one\ntwo", 1)).draft == Draft("one\ntwo", 5)


def test_the_register_is_shared_and_linewise_puts_whole_lines() -> None:
    normal = Normal()
    typed("first\nsecond", 0, "dd", normal)  # the register holds "first\n", linewise
    assert typed("a\nb", 0, "p", normal).draft == Draft("a\nfirst\nb", 2)
    assert typed("a\nb", 2, "P", normal).draft == Draft("a\nfirst\nb", 2)
    assert Normal().feed("p", Draft("", 0)).refused  # nothing to put


KEYS = st.sampled_from([*"hl0^$wWbBeEGjkgdcyxXsSDCYpPJ~urfFtT;, 0123", "escape", "ctrl+r"])
TEXT = st.text(alphabet=st.sampled_from("ab ,.\n\t"), max_size=16)


@given(TEXT, st.data(), st.lists(KEYS, max_size=10))
def test_any_keys_keep_the_cursor_on_a_character(
    text: str, data: st.DataObject, keys: list[str]
) -> None:
    cursor = normal_cursor(text, data.draw(st.integers(0, len(text))))
    normal = Normal()
    draft = Draft(text, cursor)
    for key in keys:
        outcome = normal.feed(key, draft)
        if outcome.draft is not None:
            draft = outcome.draft
            assert 0 <= draft.cursor <= len(draft.text)
            if outcome.mode == "normal":
                assert normal_cursor(draft.text, draft.cursor) == draft.cursor
        if outcome.mode == "insert":
            break


@given(TEXT, st.data())
def test_a_deletion_is_put_back_by_p_or_p_before(text: str, data: st.DataObject) -> None:
    """After ``d{motion}``, ``P`` (or ``p``, when the cursor had to step back off the
    line's end) gives back the text: what was deleted went to the register."""
    cursor = normal_cursor(text, data.draw(st.integers(0, len(text))))
    motion = data.draw(st.sampled_from(["l", "h", "w", "e", "b", "$", "0", "fa", "ta", "j"]))
    normal = Normal()
    deleted = typed(text, cursor, "d" + motion, normal)
    if deleted.draft is None or deleted.draft.text in (text, ""):
        return  # refused, nothing deleted, or every line (vi too then keeps an empty one)
    changed, at = deleted.draft.text, deleted.draft.cursor
    back = [typed(changed, at, key, Normal(register=normal.register)).draft for key in "Pp"]
    assert text in [draft.text for draft in back if draft is not None]
