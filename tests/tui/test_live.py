"""The TUI over the real library and a real relay: the demo, other clients, /nick, invites."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from e2echat_server.config import RelayConfig
from e2echat_server.relay import Relay
from e2echat_tui.app import ChatApp, ChatEvent, ChatMessage
from e2echat_tui.composer import Composer
from e2echat_tui.demo import GREETER, LOBBY, demo_session, greeter_reply
from e2echat_tui.dialogs import VerifyScreen
from e2echat_tui.format import Level
from textual.pilot import Pilot

from e2echat import Client, Identity, Message, Room
from e2echat.testing import wait_for_member

from .screen import screen_text

SIZE = (110, 30)
TIMEOUT = 15


class WatchedApp(ChatApp):
    """A ChatApp that signals every timeline change, so tests await instead of polling."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.changed = asyncio.Event()

    def _append(self, room: str, entry_text: str, level: Level) -> None:
        super()._append(room, entry_text, level)
        self.changed.set()

    # Textual calls the handler of every class in the MRO: ChatApp's runs after these.
    def on_chat_message(self, _posted: ChatMessage) -> None:
        self.call_later(self.changed.set)

    def on_chat_event(self, _posted: ChatEvent) -> None:
        self.call_later(self.changed.set)


async def until(app: WatchedApp, predicate: Callable[[], bool]) -> None:
    """Wait (bounded) until ``predicate`` holds, re-checking after each timeline change."""
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            app.changed.clear()
            await app.changed.wait()


async def first_message(
    messages: AsyncIterator[Message[Room]], wanted: Callable[[Message[Room]], bool]
) -> Message[Room]:
    """The first of ``messages`` (a library subscription) that is ``wanted`` (bounded)."""
    async with asyncio.timeout(TIMEOUT):
        async for message in messages:
            if wanted(message):
                return message
    raise AssertionError("the subscription ended")


def bodies(app: ChatApp, room: str = LOBBY) -> list[str]:
    return [entry.body for entry in app.tabs[room].log.entries]


async def type_line(pilot: Pilot[None], line: str) -> None:
    pilot.app.query_one(Composer).text = line
    await pilot.press("enter")


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[tuple[WatchedApp, Pilot[None], str]]:
    async with demo_session(tmp_path, name="tess") as chat:
        app = WatchedApp(chat, room=LOBBY, bell=False)
        async with app.run_test(size=SIZE) as pilot:
            await app.ready.wait()
            yield app, pilot, chat.url


def test_greeter_replies() -> None:
    assert greeter_reply("tess", "hi").startswith("@tess hello!")
    assert "/help" in greeter_reply("tess", "help me")
    assert "/verify greeter" in greeter_reply("tess", "how do I verify?")


async def test_demo_greets_and_answers_mentions(
    session: tuple[WatchedApp, Pilot[None], str],
) -> None:
    app, pilot, url = session
    await until(app, lambda: any("Welcome to e2echat, @tess" in b for b in bodies(app)))
    welcome = next(e for e in app.tabs[LOBBY].log.entries if e.body.startswith("Welcome"))
    assert welcome.background is not None  # it mentions me: highlighted
    await type_line(pilot, f"hi @{GREETER}")
    await until(app, lambda: any("hello! I read your message" in b for b in bodies(app)))
    text = screen_text(app)
    assert url in text
    assert "● connected" in text
    assert "tess hi @greeter" in text
    assert "greeter @tess hello!" in text
    members = {m.name for m in app.chat.rooms[0].member_list}
    assert members == {"tess", GREETER}


async def test_verify_the_greeter_and_a_refused_nick(
    session: tuple[WatchedApp, Pilot[None], str],
) -> None:
    app, pilot, _ = session
    await type_line(pilot, f"/verify {GREETER}")
    async with asyncio.timeout(TIMEOUT):
        while not isinstance(app.screen, VerifyScreen):
            await pilot.pause()
    greeter = next(m for m in app.chat.rooms[0].member_list if m.name == GREETER)
    first_group = app.chat.safety_number(greeter).split()[0]
    assert first_group in screen_text(app)
    await pilot.click("#confirm")
    await until(app, lambda: bodies(app)[-1] == f"✔{GREETER} is verified")
    await pilot.pause()
    greeter = next(m for m in app.chat.rooms[0].member_list if m.name == GREETER)
    assert greeter.verified
    assert "✔ verified" in screen_text(app)
    await type_line(pilot, "/nick " + "n" * 40)
    await until(app, lambda: bodies(app)[-1].startswith("Error") or "32" in bodies(app)[-1])
    assert app.chat.name == "tess"
    assert app.chat.state == "connected"


async def test_messages_from_another_library_client_arrive_as_literal_text(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    bob = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "bob.sqlite3")
    async with bob:
        room = await bob.join(LOBBY)
        await until(app, lambda: "?bob joined" in bodies(app))
        await room.send("[red]x[/red] and \x1b[31mred\x1b[0m @tess")
        await until(app, lambda: any(b.startswith("[red]x[/red]") for b in bodies(app)))
        await pilot.pause()
        assert "bob [red]x[/red] and \\x1b[31mred\\x1b[0m @tess" in screen_text(app)
        replies = bob.messages()
        await type_line(pilot, "hello @bob")
        message = await first_message(replies, lambda m: m.sender.name == "tess")
        assert message.text == "hello @bob"
        assert message.mentions_me


async def test_secret_room_invite_status_members_and_nick(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    await type_line(pilot, "/create vault --secret")
    await until(app, lambda: app.current == "vault")
    await type_line(pilot, "/invite")
    await until(app, lambda: any(b.startswith("Invite for vault") for b in bodies(app, "vault")))
    invite = bodies(app, "vault")[-1].rpartition(" ")[2]
    assert app.clipboard == invite
    carol = Client(url, identity=Identity.generate(), name="carol", store=tmp_path / "c.sqlite3")
    async with carol:
        await carol.join("vault", invite=invite)
        await until(app, lambda: "?carol joined" in bodies(app, "vault"))
        await type_line(pilot, "/members")
        await until(app, lambda: bodies(app, "vault")[-1].startswith("2 members of vault"))
        await type_line(pilot, "/status away lunch")
        await until(app, lambda: bodies(app, "vault")[-1].startswith("Your status is now away"))
        await type_line(pilot, "/nick tessa")
        await until(app, lambda: bodies(app, "vault")[-1] == "You are now tessa")
        assert app.chat.name == "tessa"
        assert {room.name for room in app.chat.rooms} == {LOBBY, "vault"}
        await type_line(pilot, "/rooms")
        await until(app, lambda: "listed rooms on the relay" in bodies(app, "vault")[-1])
        # The old connection's closing is part of the rename, not news for the timeline.
        assert not [b for b in bodies(app, "vault") if b.startswith("Connection")]
        await type_line(pilot, "/join vault wrong-password")
        await type_line(pilot, "/create lobby")
        await until(app, lambda: sum("(name_taken)" in b for b in bodies(app, "vault")) == 1)
        await type_line(pilot, "/leave")
        await until(app, lambda: "vault" not in app.tabs)
        assert app.current == LOBBY


async def test_topic_sets_a_description_the_others_read_and_a_member_is_refused(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    await type_line(pilot, "/topic mine now")  # the greeter owns the lobby
    refused = "You are not allowed to do that"  # (the greeter's welcome may come after it)
    await until(app, lambda: any(body.startswith(refused) for body in bodies(app)))
    assert app.chat.rooms[0].description == "The demo room: say hi to @greeter"
    await type_line(pilot, "/create plans")
    await until(app, lambda: app.current == "plans")
    await type_line(pilot, "/topic " + "中" * 180)  # 180 characters, 540 bytes
    too_big = "A room description has at most 512 bytes of UTF-8"
    await until(app, lambda: bodies(app, "plans")[-1].startswith(too_big))
    app.composer.text = ""
    await type_line(pilot, "/topic Friday: [b]release[/b]")
    await until(app, lambda: bodies(app, "plans")[-1].startswith("You set the topic of plans"))
    await pilot.pause()
    assert "· Friday: [b]release[/b]" in screen_text(app)
    bob = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "bob.sqlite3")
    async with bob:
        room = await bob.join("plans")
        assert room.description == "Friday: [b]release[/b]"


async def test_a_reaction_the_library_refuses_is_a_red_line_and_the_line_stays(
    session: tuple[WatchedApp, Pilot[None], str],
) -> None:
    app, pilot, _ = session
    await until(app, lambda: any("Welcome to e2echat, @tess" in b for b in bodies(app)))
    await type_line(pilot, "/react xyz")
    await until(app, lambda: bodies(app)[-1] == "a reaction is one emoji, such as 👍")
    assert app.composer.text == "/react xyz"
    welcome = next(m for m in await app.chat.rooms[0].history() if m.text.startswith("Welcome"))
    assert welcome.reactions == ()


class ProgressApp(WatchedApp):
    """A WatchedApp that keeps every status-line text it showed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.status_texts: list[str] = []

    def _progress_changed(self, text: str) -> None:
        super()._progress_changed(text)
        self.status_texts.append(text)


def news_bodies(app: ChatApp) -> list[str]:
    """The messages of room news (not the "new messages" line above them)."""
    return [body for body in bodies(app, "news") if body.startswith("news ")]


@asynccontextmanager
async def news_missed_by_tess(
    tmp_path: Path, missed: int
) -> AsyncIterator[tuple[str, Room, Identity, Path]]:
    """A relay where bob's room "news" got ``missed`` messages while tess, a member, was
    away: its URL, bob's room (bob stays connected), and tess's identity and store."""
    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        me, store = Identity.generate(), tmp_path / "tess.sqlite3"
        bob = Client(relay.url, identity=Identity.generate(), name="bob", store=tmp_path / "b")
        async with bob:
            news = await bob.create("news")
            async with Client(relay.url, identity=me, name="tess", store=store) as tess:
                await tess.join("news")
            for number in range(missed):  # while tess is away
                await news.send(f"news {number}")
            yield relay.url, news, me, store


async def test_a_catch_up_after_an_absence_shows_in_the_status_line(tmp_path: Path) -> None:
    missed = 40
    async with news_missed_by_tess(tmp_path, missed) as (url, _, me, store):
        tess = Client(url, identity=me, name="tess", store=store)
        app = ProgressApp(tess, room="news", bell=False)  # subscribed before it connects
        async with tess, app.run_test(size=SIZE):
            await until(app, lambda: len(news_bodies(app)) == missed and not app.progress_text)
    shown = [text for text in app.status_texts if text.startswith("syncing #news")]
    assert shown[0] == f"syncing #news: 0 of {missed}"
    counts = [int(text.split(": ")[1].split(" of ")[0]) for text in shown]
    # counted up as the messages were shown (a count repeats when another activity
    # of the status line, such as connecting, starts or ends beside it)
    assert counts == sorted(counts)
    assert len(set(counts)) > 2
    assert news_bodies(app) == [f"news {number}" for number in range(missed)]


async def test_a_catch_up_longer_than_the_backlog_loses_nothing(tmp_path: Path) -> None:
    """The library keeps at most ``backlog`` undelivered items per subscription (10,000
    by default) and drops the oldest past it; a catch-up longer than that, with live
    messages after it, must still reach the screen whole, and so must its events (the
    bound is made small here so that the test is fast: the TUI's consumption is the
    same at any size)."""
    backlog, missed, live = 10, 40, 5
    async with news_missed_by_tess(tmp_path, missed) as (url, news, me, store):
        tess = Client(url, identity=me, name="tess", store=store, backlog=backlog)
        app = ProgressApp(tess, room="news", bell=False)  # subscribed before it connects
        async with tess, app.run_test(size=SIZE):
            for number in range(missed, missed + live):
                await news.send(f"news {number}")
            await until(app, lambda: len(news_bodies(app)) == missed + live)
            await until(app, lambda: not app.progress_text)
            assert news_bodies(app) == [f"news {n}" for n in range(missed + live)]
            # nothing was dropped on the way either (bounded, the catch-up that
            # came before the app mounted lost its oldest 30 to the bound)
            assert app._messages.dropped == 0  # type: ignore[attr-defined]
            assert app._events.dropped == 0  # type: ignore[attr-defined]
    assert f"syncing #news: 0 of {missed}" in app.status_texts  # its start was not lost


async def test_a_read_receipt_of_another_client_shows_under_what_it_read(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    """bob's client sends read receipts (the library's option, off by default); when he
    marks the room read, the line below tess's message says so."""
    app, pilot, url = session
    bob = Client(
        url,
        identity=Identity.generate(),
        name="bob",
        store=tmp_path / "bob.sqlite3",
        read_receipts=True,
    )
    async with bob:
        room = await bob.join(LOBBY)
        await until(app, lambda: "?bob joined" in bodies(app))
        arrived = bob.messages()
        line = "did you read this?"
        await type_line(pilot, line)
        await room.mark_read(await first_message(arrived, lambda m: m.text == line))
        await until(
            app,
            lambda: any(
                e.body == line and "read by ?bob" in "".join(s.text for s in e.footer)
                for e in app.tabs[LOBBY].log.entries
            ),
        )
        await pilot.pause()
        assert "read by ?bob" in screen_text(app)


async def test_a_join_refused_for_a_ban_says_the_key_is_banned(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    """Banned from an invite room, /join with its invite says so, not 'does not open'."""
    app, pilot, url = session
    bob = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "b.sqlite3")
    async with bob:
        ops = await bob.create("ops", secret=True)
        await type_line(pilot, f"/join ops {ops.invite()}")
        await until(app, lambda: app.current == "ops")
        await ops.ban(await wait_for_member(ops, "tess"))
        await until(app, lambda: "ops" not in app.tabs)
        await type_line(pilot, f"/join ops {ops.invite()}")
        banned = "You are banned from room 'ops'"
        await until(app, lambda: any(body.startswith(banned) for body in bodies(app)))
        assert not any("does not open" in body for body in bodies(app))
