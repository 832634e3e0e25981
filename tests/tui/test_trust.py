"""Trust by key in the TUI: markers on every name, look-alike warnings, petnames,
/verify and /unverify, renames and a connection handed over, over the library double."""

from dataclasses import replace

from e2echat_tui.app import ChatApp
from e2echat_tui.completion import complete
from e2echat_tui.composer import Composer
from e2echat_tui.dialogs import VerifyScreen
from e2echat_tui.members import MembersPanel
from e2echat_tui.trust import LOOKALIKE, NEW_KEY, UNVERIFIED, VERIFIED, trust_mark
from textual.widgets import Static

from e2echat import (
    ConnectionReplaced,
    Lookalike,
    Member,
    Predecessor,
    Quote,
    SuccessorAnnounced,
)

from .conftest import SIZE
from .fake import FakeChat, fake_fingerprint, fake_key
from .screen import screen_text
from .test_app import last_line, settle, started, submit, until_screen

WIDE = (130, 34)


def impostor_of(chat: FakeChat, real: Member, *, name: str | None = None) -> Member:
    """A new key under ``real``'s name (or ``name``), flagged by the library as looking
    like ``real``, whom the user verified."""
    flag = Lookalike(real.key, real.name, real.fingerprint, name is None, real.verified)
    return replace(chat.member("mallory"), name=name or real.name, lookalikes=(flag,))


def panel_text(app: ChatApp) -> str:
    """The members panel's text, unwrapped."""
    return str(app.query_one(MembersPanel).render())


def bob_of(chat: FakeChat) -> Member:
    return next(m for m in chat.directory["lobby"].member_list if m.name == "bob")


def test_the_mark_comes_from_the_key_alone(chat: FakeChat) -> None:
    bob = bob_of(chat)
    assert trust_mark(bob) == VERIFIED
    assert trust_mark(replace(bob, verified=False)) == UNVERIFIED
    assert trust_mark(impostor_of(chat, bob)) == LOOKALIKE
    assert trust_mark(replace(bob, verified=False, mixed_script=True)) == LOOKALIKE
    old = Predecessor(fake_key("old"), "bob", fake_fingerprint(fake_key("old")), False)
    assert trust_mark(replace(bob, verified=False, predecessor=old)) == NEW_KEY
    assert trust_mark(chat.me) is None


async def test_a_namesake_of_a_verified_contact_is_flagged_everywhere(
    app: ChatApp, chat: FakeChat
) -> None:
    """The issue's first scenario: a stranger calling itself bob joins; every place that
    shows it says it is not the bob you verified and shows its fingerprint tag."""
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        bob = bob_of(chat)
        mallory = impostor_of(chat, bob)
        chat.arrive("lobby", mallory)
        chat.publish(chat.record(chat.directory["lobby"], mallory, "it's me, new laptop"))
        await settle(pilot)
        real_tag, fake_tag = bob.fingerprint.split()[0], mallory.fingerprint.split()[0]
        join = app.tabs["lobby"].log.entries[-2].body
        assert join.startswith(f"⚠bob#{fake_tag} joined: not the bob you verified")
        assert f"(same name as bob#{real_tag})" in join
        assert mallory.fingerprint in join
        text = screen_text(app)
        assert f"⚠bob#{fake_tag} it's me, new laptop" in text
        assert f"● ⚠bob#{fake_tag}" in text  # the members panel
        assert "⚠ not the bob you verified" in panel_text(app)
        assert f"● ✔bob#{real_tag}" in text
        await submit(pilot, "/members")
        assert f"  bob#{fake_tag} — online, ⚠ not the bob you verified" in last_line(app)
        # completion picks one key: the impostor's name is offered only with its tag
        offered = complete("@bo", app.roster, [])
        assert sorted(c.text for c in offered.candidates) == sorted(
            [f"@bob#{real_tag} ", f"@bob#{fake_tag} "]
        )
        # and the list says which is which: one Tab more must not pick the impostor unseen
        labels = {c.text: c.label for c in offered.candidates}
        assert labels[f"@bob#{real_tag} "].startswith(f"✔ @bob#{real_tag}  ")
        assert labels[f"@bob#{fake_tag} "].startswith(f"⚠ @bob#{fake_tag}  ")


async def test_a_look_alike_name_is_tagged_and_warned(app: ChatApp, chat: FakeChat) -> None:
    """A Cyrillic "o" (U+043E) in "bob" is not bob: the library flags it, the app says so."""
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        bob = bob_of(chat)
        lookalike = impostor_of(chat, bob, name="b\u043eb")
        chat.arrive("lobby", lookalike)
        await settle(pilot)
        tagged = f"b\u043eb#{lookalike.fingerprint.split()[0]}"
        assert last_line(app).startswith(f"⚠{tagged} joined: not the bob you verified (looks like")


async def test_verify_and_unverify_by_key(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/unverify carol")
        assert last_line(app) == "?carol is not verified"
        await submit(pilot, "/unverify @bob")
        assert chat.unverified == ["bob"]
        assert last_line(app) == "?bob is no longer verified"
        assert "● ?bob" in screen_text(app)
        assert "✔ verified" not in screen_text(app)
        await submit(pilot, "/unverify")
        assert last_line(app) == "usage: /unverify NAME"


async def test_the_verify_dialog_shows_the_fingerprint_and_the_warning(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        mallory = impostor_of(chat, bob_of(chat))
        chat.arrive("lobby", mallory)
        await settle(pilot)
        app.query_one(Composer).text = f"/verify bob#{mallory.fingerprint.split()[0]}"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        shown = str(screen.query_one("#safety", Static).render())
        assert mallory.fingerprint in shown
        assert "⚠ not the bob you verified" in shown
        assert screen.focused is not None
        assert screen.focused.id == "close"
        await pilot.press("enter")  # one stray Enter grants nothing
        await settle(pilot)
        assert chat.verified == []


async def test_a_petname_follows_the_key(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        carol_tag = chat.member("carol").fingerprint.split()[0]
        await submit(pilot, "/petname carol Carol from work")
        assert chat.petnames == [("carol", "Carol from work")]
        assert last_line(app) == f"carol#{carol_tag} is ?Carol from work to you"
        text = screen_text(app)
        assert "◐ ?Carol from work" in text
        assert "calls itself carol" in panel_text(app)
        chat.deliver("lobby", "carol", "lunch?")
        await settle(pilot)
        assert "?Carol from work lunch?" in screen_text(app)
        app.query_one(Composer).text = "/verify Carol from work"  # a petname names the key
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        assert "Carol from work" in str(screen.query_one("#safety", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        await submit(pilot, "/petname carol")
        assert chat.petnames[-1] == ("carol", None)
        assert last_line(app) == "?carol has no petname any more"
        await submit(pilot, "/petname alice Me")
        assert last_line(app) == "a petname is your name for someone else's key"


async def test_a_new_key_of_someone_known_is_marked(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        old = chat.member("carol")
        new = replace(
            chat.member("carol2"),
            name="carol",
            predecessor=Predecessor(old.key, "carol", old.fingerprint, verified=False),
        )
        chat.depart("lobby", "carol")
        chat.arrive("lobby", new)
        await settle(pilot)
        assert last_line(app) == "↻carol joined"
        assert f"↻ new key of carol#{old.fingerprint.split()[0]}, unverified" in panel_text(app)


async def test_a_rename_is_told_in_every_shared_room(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        bob_tag = bob_of(chat).fingerprint.split()[0]
        chat.rename_member("bob", "robert")
        await settle(pilot)
        assert last_line(app, "lobby") == f"bob#{bob_tag} is now ✔robert"
        assert last_line(app, "team") == f"bob#{bob_tag} is now ✔robert"
        assert "● ✔robert" in screen_text(app)


async def test_a_replaced_connection_says_what_happened(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.emit(ConnectionReplaced("this connection was replaced"))
        await settle(pilot)
        assert last_line(app).startswith("Your identity connected from another place")


async def test_names_are_never_markup(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        hostile = replace(chat.member("eve"), name="[b]eve[/b]\x1b[2J", petname=None)
        chat.arrive("lobby", hostile)
        await settle(pilot)
        await submit(pilot, "/petname [b]eve[/b]\x1b[2J [i]x[/i]")
        text = screen_text(app)
        assert "?[b]eve[/b]" in text
        assert "\x1b" not in text


async def test_a_successor_announced_is_told(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        lobby, bob = chat.directory["lobby"], bob_of(chat)
        chat.emit(SuccessorAnnounced(lobby, bob, fake_key("bob2"), carried=True))  # type: ignore[arg-type]
        await settle(pilot)
        new_tag = fake_key("bob2").hex()[:4]
        assert last_line(app) == (
            f"✔bob moved to a new key {new_tag}: your verification carries over to it"
        )


def lines_of(app: ChatApp) -> list[str]:
    """The lobby's lines, prefix and body, as plain text."""
    return [
        "".join(segment.text for segment in entry.prefix) + entry.body
        for entry in app.tabs["lobby"].log.entries
    ]


async def test_lines_already_shown_follow_the_trust_in_their_key(
    app: ChatApp, chat: FakeChat
) -> None:
    """A marker belongs to the key, not to the moment a line arrived: unverifying bob
    and naming carol take effect on what they wrote before too, and a reply quoting
    carol quotes her under the petname."""
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        chat.deliver("lobby", "bob", "written while verified")
        asked = chat.deliver("lobby", "carol", "written before the petname")
        lobby = chat.directory["lobby"]
        quote = Quote(asked.id, True, asked.sender, asked.text, asked.seq)
        chat.publish(replace(chat.record(lobby, bob_of(chat), "an answer"), reply_to=quote))
        await settle(pilot)
        assert any(line.endswith("✔bob written while verified") for line in lines_of(app))
        await submit(pilot, "/unverify bob")
        await submit(pilot, "/petname carol Carol from work")
        lines = lines_of(app)
        assert any(line.endswith("?bob written while verified") for line in lines)
        assert not any("✔bob" in line for line in lines)
        assert any(line.endswith("?Carol from work written before the petname") for line in lines)
        answer = app.tabs["lobby"].log.entries[-3]  # then the two lines of the commands
        assert "".join(s.text for s in answer.quote).startswith("↱ ?Carol from work: written")
        assert "?Carol from work: written before" in screen_text(app)


async def test_a_namesake_arriving_tags_what_the_first_one_wrote(
    app: ChatApp, chat: FakeChat
) -> None:
    """A second "carol" joins: the library flags both keys, and carol's earlier lines get
    her tag, as her new ones do, so no line reads as either of them."""
    async with app.run_test(size=WIDE) as pilot:
        await started(app, chat)
        chat.deliver("lobby", "carol", "hello from the first carol")
        await settle(pilot)
        lobby = chat.directory["lobby"]
        carol = next(m for m in lobby.member_list if m.name == "carol")
        stranger = impostor_of(chat, carol)
        flag = Lookalike(stranger.key, "carol", stranger.fingerprint, True, False)
        lobby.member_list[lobby.member_list.index(carol)] = replace(carol, lookalikes=(flag,))
        chat.arrive("lobby", stranger)
        await settle(pilot)
        tagged = f"⚠carol#{carol.fingerprint.split()[0]} hello from the first carol"
        assert any(line.endswith(tagged) for line in lines_of(app))
