"""The other example bots of docs/bots.md, and e2echat.run as a real process."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import echo_bot
import greeter
import pytest
import tour

import e2echat
from e2echat.client import kdfcost
from e2echat.testing import ClientFactory, RelayHandle, ask, wait_for, wait_for_member

HERE = Path(__file__).parent


async def test_echo_bot(e2echat_client: ClientFactory) -> None:
    await e2echat_client("echo-bot", setup=echo_bot.setup)
    alice = await e2echat_client("alice")
    room = await alice.room("lobby")
    reply = await ask(room, "hello bot")
    assert (reply.sender.name, reply.text, reply.mentions_me) == (
        "echo-bot",
        "hello bot",
        True,
    )
    assert reply.reply_to is not None
    assert reply.reply_to.excerpt == "hello bot"


async def test_greeter_greets_newcomers_and_the_notifier_posts(
    e2echat_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_PASSWORD", "correct horse")
    bot = await e2echat_client("greeter", setup=greeter.greeter)
    alice = await e2echat_client("alice")
    inbox = alice.messages()
    await alice.room("ops", password="correct horse")
    welcome = await wait_for(inbox)
    assert (welcome.sender.name, welcome.text) == (
        "greeter",
        "Welcome, alice! Say !help to the roll-bot.",
    )

    notifier = await e2echat_client(
        "notifier", setup=lambda chat: greeter.notify(chat, "deploy done")
    )
    assert await notifier.flush() == 0
    note = await wait_for(inbox, lambda msg: msg.sender.name == "notifier")
    assert note.text == "deploy done"
    assert bot.get_room("ops") is not None
    with pytest.raises(e2echat.WrongPassphrase):
        await (await e2echat_client("mallory")).room("ops", password="guess")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_run_serves_until_a_signal_then_exits_cleanly(
    e2echat_relay: RelayHandle, e2echat_client: ClientFactory, stop: signal.Signals
) -> None:
    # an identity at test cost, so that the bot process does not pay a second of Argon2id
    e2echat.Identity.generate().save(
        e2echat.bot_identity_path("echo-bot"), os.environ["E2ECHAT_PASSPHRASE"]
    )
    assert kdfcost.identity_limits() == kdfcost.FAST
    bot = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "echo_bot.py"), e2echat_relay.url, stderr=asyncio.subprocess.PIPE
    )
    try:
        alice = await e2echat_client("alice")
        room = await alice.room("lobby", create=True)
        await wait_for_member(room, "echo-bot", timeout=30)  # the bot is in the room
        assert bot.stderr is not None
        async with asyncio.timeout(30):  # and its setup is done: it logs that it is ready
            while b"echo-bot is ready" not in await bot.stderr.readline():
                pass
        assert (await ask(room, "ping")).text == "ping"
        bot.send_signal(stop)
        _, stderr = await asyncio.wait_for(bot.communicate(), 30)
    finally:
        if bot.returncode is None:
            bot.kill()
            print((await bot.communicate())[1].decode())  # the bot's log, for the report
    log = stderr.decode()
    assert bot.returncode == 0, log
    assert "Traceback" not in log
    assert f"{stop.name} received: closing" in log


async def test_the_tour_runs(
    e2echat_relay: RelayHandle,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPS_PASSWORD", "s3cret")
    await tour.tour(e2echat_relay.url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 rooms; invite: ")
    assert lines[2] == "['tour']"
    assert lines[3] == "['deploy done']"
    assert "lobby" in lines[4]
    assert lines[5] == "0 messages still queued"
