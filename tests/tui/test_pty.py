"""The real program in a pseudo-terminal: ``e2echat connect`` (no arguments: the config
file says where and who) against a relay process, driven by keystrokes: a command, a
bracketed multi-line paste, Tab completion of a name, and quit. What alice typed is
checked where it lands: in bob's client, decrypted."""

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nacl.bindings as sodium
import pexpect
import pytest

import e2echat
from e2echat.crypto.identity import KdfLimits

CHEAP = KdfLimits(
    sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN, sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
)
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
CTRL_Q = "\x11"


@asynccontextmanager
async def relay(data: Path) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "e2echat_server", "--port", "0", "--log-level", "warning"),
        *("--data-dir", str(data)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        yield (await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip()
    finally:
        process.kill()
        await process.wait()


def watch(
    child: pexpect.spawn, loop: asyncio.AbstractEventLoop, marks: list[tuple[str, asyncio.Event]]
) -> None:
    """Read everything the program writes until it exits, setting each mark's event once
    its text was shown (in order). A TUI whose terminal is not read blocks on its next
    write, so its output is drained all along, not only while a test expects something."""
    for text, event in marks:
        child.expect_exact(text, timeout=60)
        loop.call_soon_threadsafe(event.set)
    child.expect(pexpect.EOF, timeout=80)


async def wait_for_mark(mark: asyncio.Event, watcher: "asyncio.Task[None]") -> None:
    """Wait until ``mark`` is set, or fail with the watcher's error if it gave up."""
    waiting = asyncio.create_task(mark.wait())
    await asyncio.wait({waiting, watcher}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if not mark.is_set():
        waiting.cancel()
        if watcher.done():
            watcher.result()  # raises the watcher's timeout or EOF
        raise AssertionError("the program never showed what the test waits for")


async def next_message(inbox: AsyncIterator[e2echat.Message[e2echat.Room]]) -> str:
    message = await asyncio.wait_for(anext(inbox), 20)
    return message.text


async def joined(events: AsyncIterator[e2echat.Event], name: str) -> None:
    async with asyncio.timeout(20):
        async for event in events:
            if isinstance(event, e2echat.MemberJoined) and event.member.name == name:
                return


@pytest.mark.timeout(90)
async def test_connect_in_a_terminal_pastes_completes_and_quits(tmp_path: Path) -> None:
    program = shutil.which("e2echat", path=str(Path(sys.executable).parent))
    assert program is not None
    identity = tmp_path / "alice.key"
    e2echat.Identity.generate().save(identity, "pw", limits=CHEAP)
    async with relay(tmp_path / "relay") as url:
        config = tmp_path / "config.toml"
        config.write_text(
            f'relay = "{url}"\nname = "alice"\nidentity = "alice.key"\nstore = "alice.db"\n'
        )
        bob = e2echat.Client(
            url, identity=e2echat.Identity.generate(), name="bob", store=tmp_path / "bob.db"
        )
        async with bob:
            await bob.create("lobby")
            events, inbox = bob.events(), bob.messages()
            env = {
                **os.environ,
                "E2ECHAT_CONFIG": str(config),
                "E2ECHAT_HOME": str(tmp_path),
                "E2ECHAT_PASSPHRASE": "pw",
                "E2ECHAT_IMAGES": "off",
                "TERM": "xterm-256color",
            }
            child = pexpect.spawn(
                program, ["connect"], env=env, dimensions=(30, 110), encoding="utf-8"
            )
            connected, entered = asyncio.Event(), asyncio.Event()
            marks = [("connected", connected), ("You joined lobby", entered)]
            watcher = asyncio.create_task(
                asyncio.to_thread(watch, child, asyncio.get_running_loop(), marks)
            )
            try:
                await wait_for_mark(connected, watcher)
                child.send("/join lobby\r")
                await joined(events, "alice")
                # entered on alice's side too, not only on the relay's: what she types
                # next goes to lobby, not to the room-less start screen
                await wait_for_mark(entered, watcher)
                child.send(f"{PASTE_START}first line\r\nsecond line\x1b[31m{PASTE_END}")
                child.send("\r")  # the paste's line breaks stay; the escape shows as text
                assert await next_message(inbox) == "first line\nsecond line\\x1b[31m"
                child.send("hello bo\t")
                child.send("\r")
                assert (await next_message(inbox)).startswith("hello @bob")
                child.send(CTRL_Q)
                await asyncio.wait_for(watcher, 20)  # it ends when the program has exited
            finally:
                child.close(force=True)
                await asyncio.gather(watcher, return_exceptions=True)
            assert child.exitstatus == 0
