"""The relay is killed mid-conversation and restarted: nothing is lost or doubled, and
neither its data directory and logs nor the clients' stores contain a message."""

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import e2echat
from tests.client.conftest import MakeClient, collect

START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def relay_process(
    data_dir: Path, port: int, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m e2echat_server`` on ``port``; yields once it printed its URL."""
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "e2echat_server",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "debug",
            "--rate",
            "1000",
            "--burst",
            "1000",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            line = await process.stdout.readline()
        assert line.decode().strip() == f"ws://127.0.0.1:{port}/"
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


def _contents(directory: Path, pattern: str) -> bytes:
    """Every byte of every file under ``directory`` matching ``pattern``."""
    return b"".join(p.read_bytes() for p in directory.glob(pattern) if p.is_file())


async def _wait_state(events: AsyncIterator[e2echat.Event], state: e2echat.ConnectionState) -> None:
    await collect(
        events,  # type: ignore[arg-type]
        1,
        lambda e: isinstance(e, e2echat.ConnectionChanged) and e.state == state,
        seconds=START_TIMEOUT,
    )


async def test_relay_killed_and_restarted_mid_conversation(
    make_client: MakeClient, tmp_path: Path
) -> None:
    port, data, log = _free_port(), tmp_path / "relay-data", tmp_path / "relay.log"
    url = f"ws://127.0.0.1:{port}/"
    texts: dict[str, list[str]] = {"alice": [], "bob": []}
    async with relay_process(data, port, log) as first:
        alice = await make_client("alice", url)
        bob = await make_client("bob", url)
        room = await alice.create("ops", password="restart-me")
        alice_events = alice.events()
        await bob.join("ops", password="restart-me")
        await collect(alice_events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
        bob_room = bob.get_room("ops")
        assert bob_room is not None
        inbox = {"alice": alice.messages(), "bob": bob.messages()}
        rooms = {"alice": room, "bob": bob_room}
        events = {"alice": alice.events(), "bob": bob.events()}

        async def say(who: str, text: str) -> None:
            texts[who].append(text)
            await rooms[who].send(text)

        for i in range(3):
            await say("alice", f"alpha before {i}")
            await say("bob", f"bravo before {i}")
        first.kill()
        await first.wait()
        for who in ("alice", "bob"):
            await _wait_state(events[who], e2echat.ConnectionState.RECONNECTING)
        for i in range(3):
            await say("alice", f"alpha during {i}")
            await say("bob", f"bravo during {i}")

    async with relay_process(data, port, log):
        for who in ("alice", "bob"):
            await _wait_state(events[who], e2echat.ConnectionState.CONNECTED)
        for i in range(2):
            await say("alice", f"alpha after {i}")
            await say("bob", f"bravo after {i}")
        got_bob = await collect(inbox["bob"], len(texts["alice"]))
        got_alice = await collect(inbox["alice"], len(texts["bob"]))
        assert sorted(m.text for m in got_bob) == sorted(texts["alice"])
        assert sorted(m.text for m in got_alice) == sorted(texts["bob"])
        assert [m.text for m in got_bob if "during" in m.text] == [
            t for t in texts["alice"] if "during" in t
        ]
        await alice.close()
        await bob.close()

    stored, logged = _contents(data, "**/*"), log.read_bytes()
    clients = _contents(tmp_path, "*.sqlite3*")
    assert len(stored) > 0
    assert len(clients) > 0
    assert b"restart-me" not in stored + logged + clients
    for text in texts["alice"] + texts["bob"]:
        assert text.encode() not in stored
        assert text.encode() not in logged
        assert text.encode() not in clients
