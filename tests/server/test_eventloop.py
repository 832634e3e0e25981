"""The relay's event loop: uvloop when installed (the `uvloop` extra), asyncio otherwise."""

import asyncio
import sys

import pytest
from click.testing import CliRunner
from e2echat_server.cli import app
from e2echat_server.config import ConfigError, RelayConfig
from e2echat_server.eventloop import LoopUnavailableError, loop_factory

from e2echat.protocol import CreateRoom, OpenAccess, RoomReply, Send, Sent
from tests.server.wire import Identity, login


def test_auto_takes_uvloop_when_installed_and_asyncio_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, factory = loop_factory("auto")
    assert name == "uvloop"
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
    assert loop_factory("asyncio") == ("asyncio", None)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert loop_factory("auto") == ("asyncio", None)
    with pytest.raises(LoopUnavailableError, match=r"e2echat-server\[uvloop\]"):
        loop_factory("uvloop")


def test_asking_for_uvloop_without_it_stops_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    result = CliRunner().invoke(app, ["--memory", "--port", "0", "--event-loop", "uvloop"])
    assert result.exit_code == 1
    assert "cannot start: event_loop 'uvloop' needs uvloop installed" in result.output


def test_an_unknown_loop_is_a_bad_setting() -> None:
    with pytest.raises(ConfigError, match="'event_loop' must be one of"):
        RelayConfig(event_loop="trio")


@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
async def test_the_relay_process_serves_on_the_loop_it_was_told(choice: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "e2echat_server",
        "--memory",
        "--port",
        "0",
        "--event-loop",
        choice,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip()
        listening = (await asyncio.wait_for(process.stderr.readline(), 15)).decode()
        assert "listening" in listening
        assert f"loop={choice}" in listening
        alice = await login(url, Identity("alice"))
        room = await alice.request(CreateRoom(name="loop", access=OpenAccess()), RoomReply)
        sent = await alice.request(Send(room=room.room.id, body=b"hi"), Sent)
        assert sent.seq == 1
        await alice.close()
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 15) == 0
