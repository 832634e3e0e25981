"""The echo bot of docs/examples runs and echoes."""

import asyncio
import contextlib
import importlib.util
from pathlib import Path

import pytest
from e2echat_server import Relay

from e2echat.client import kdfcost
from tests.client.conftest import EVENT_TIMEOUT, MakeClient, collect

DOCS = Path(__file__).parents[2] / "docs"
EXAMPLE = DOCS / "examples" / "echo_bot.py"


def test_the_guide_shows_the_example_as_it_is() -> None:
    source = EXAMPLE.read_text()
    main = source[source.index("async def main") : source.index("\n\n\nif __name__")]
    assert f"```python\n{main}\n```" in (DOCS / "bots.md").read_text()


async def test_echo_bot(
    make_client: MakeClient,
    relay: Relay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path / "bot-home"))
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "a long passphrase")
    kdfcost.enable_fast_kdf_for_tests()
    request.addfinalizer(kdfcost.disable_fast_kdf)
    spec = importlib.util.spec_from_file_location("echo_bot", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ready = asyncio.Event()
    module.print = lambda *args: ready.set()  # type: ignore[attr-defined]  # printed once in its room
    bot = asyncio.create_task(module.main(relay.url, "lobby"))
    try:
        # a fresh relay: the bot finds no room "lobby" and creates it
        await asyncio.wait_for(ready.wait(), EVENT_TIMEOUT)
        alice = await make_client("alice")
        room = await alice.join("lobby")
        inbox = alice.messages()
        await room.send("hello bot")
        (reply,) = await collect(inbox, 1)
        assert reply.text == "alice said: hello bot"
        assert reply.sender.name == "echo-bot"
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
