"""The echo bot of docs/examples runs and echoes."""

import asyncio
import contextlib
import importlib.util
from pathlib import Path

import pytest
from e2echat_server import Relay

from tests.client.conftest import MakeClient, collect

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "echo_bot.py"


@pytest.mark.filterwarnings("ignore:identity key written WITHOUT encryption")
async def test_echo_bot(
    make_client: MakeClient, relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path / "bot-home"))
    monkeypatch.delenv("E2ECHAT_PASSPHRASE", raising=False)
    spec = importlib.util.spec_from_file_location("echo_bot", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alice = await make_client("alice")
    room = await alice.create("lobby")
    events, inbox = alice.events(), alice.messages()
    bot = asyncio.create_task(module.main(relay.url, "lobby"))
    try:
        await collect(events, 1, lambda e: type(e).__name__ == "MemberJoined")
        await room.send("hello bot")
        (reply,) = await collect(inbox, 1)
        assert reply.text == "alice said: hello bot"
        assert reply.sender.name == "echo-bot"
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
