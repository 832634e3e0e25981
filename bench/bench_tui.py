"""Terminal client speed: launch to interactive with 10,000 stored messages,
appending 1,000 incoming messages, and typing latency. Run:
``uv run python bench/bench_tui.py``.

The app runs headless (Textual's ``run_test``). First over the test double of the
library (``tests/tui/fake.py``), so the figures are the TUI's own cost (layout,
rendering, bookkeeping); baselines from the same run: launching with an empty history,
and appending the same lines to Textual's stock ``Log`` widget. Then end to end over the
real library and a relay process on its SQLite store: connect + load 10,000 messages from
the encrypted store, and 1,000 messages sent by another client (a process of its own, as
on another machine), encrypted, relayed, decrypted and shown. Each figure ends with the
frame that draws it (``painted``).
Typing latency is measured on the real program in a pseudo-terminal: from writing one key
to the terminal to reading its echo back, one key every ``--interval`` seconds; first
``e2echat demo`` (a relay, a greeter and the library in one process), then ``e2echat
connect`` against a relay process with 10,000 messages in the room, as a user runs it;
the baseline is a bare Textual ``TextArea`` app measured the same way in the same run.
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pexpect
from e2echat_tui.app import ChatApp, ChatMessage
from relay_process import cpu_seconds, relay_command, start_server
from textual.app import App, ComposeResult
from textual.widgets import Log

from e2echat import Client, Identity
from e2echat.crypto.identity import KdfLimits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library double in tests/
from tests.tui.fake import FakeChat

SIZE = (120, 40)
SENTENCE = "the quick brown fox jumps over the lazy dog while @alice reads"
WORDS = SENTENCE.split()


def text_of(number: int) -> str:
    """Mostly short lines, every 50th one long enough to wrap several times."""
    length = 60 if number % 50 == 0 else 3 + number % 12
    return f"#{number} " + " ".join(WORDS[(number + i) % len(WORDS)] for i in range(length))


def chat_with(stored: int) -> FakeChat:
    backend = FakeChat("alice")
    bob, carol = backend.member("bob"), backend.member("carol")
    lobby = backend.add_room("lobby", members=[bob, carol])
    backend.add_room("team", password="pw", members=[bob])
    for number in range(stored):
        backend.record(lobby, bob if number % 2 else carol, text_of(number))
    return backend


class WatchingApp(ChatApp):
    """Sets ``seen`` when a message with the awaited text has been shown."""

    awaited = ""
    seen: asyncio.Event

    def on_chat_message(self, posted: ChatMessage) -> None:
        super().on_chat_message(posted)
        posted.prevent_default()  # else Textual calls ChatApp's handler too: each shown twice
        if posted.message.text == self.awaited:
            self.seen.set()


async def painted(app: App[Any]) -> None:
    """Return once the screen has painted what the app holds now.

    Textual runs ``call_after_refresh`` callbacks once the screen has no dirty widget
    left, that is after the frame that draws them. ``Pilot.pause()`` is not that: it
    also waits (up to a second) for the whole process to go idle, so a launch that goes
    on loading older history in the background would count that second as its first
    frame."""
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await done.wait()


async def launch(stored: int, *, backlog: bool = False) -> float:
    """Seconds from creating the app to its first frame (the newest page of each room);
    with ``backlog``, until all ``stored`` messages are loaded and drawn."""
    chat = chat_with(stored)
    start = time.perf_counter()
    app = ChatApp(chat, bell=False)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE):
        await app.ready.wait()
        if backlog:
            await app.backlog_loaded.wait()
        await painted(app)
        elapsed = time.perf_counter() - start
        assert app.timeline.scroll_offset.y == app.timeline.max_scroll_y
        assert len(app.tabs["lobby"].log.entries) == stored or not backlog
    return elapsed


async def append_chat(count: int) -> float:
    """Seconds to receive ``count`` messages into the shown room and draw the result."""
    chat = chat_with(1_000)
    app = WatchingApp(chat, bell=False, toast=False)  # type: ignore[arg-type]
    app.awaited, app.seen = text_of(count - 1), asyncio.Event()
    async with app.run_test(size=SIZE) as pilot:
        await app.ready.wait()
        await chat.listening.wait()
        await pilot.pause()
        start = time.perf_counter()
        for number in range(count):
            chat.deliver("lobby", "bob", text_of(number))
            await asyncio.sleep(0)  # one by one, as the pump delivers them; frames go on
        await app.seen.wait()
        await painted(app)
        elapsed = time.perf_counter() - start
        assert "#" + str(count - 1) in app.tabs["lobby"].log.entries[-1].body
    return elapsed


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Log(max_lines=10_000)


async def append_log(count: int) -> float:
    """Baseline: the same lines written to Textual's stock ``Log`` widget."""
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        log = app.query_one(Log)
        await pilot.pause()
        start = time.perf_counter()
        for number in range(count):
            log.write_line(f"09:30 bob {text_of(number)}")
            await asyncio.sleep(0)
        await painted(app)
        return time.perf_counter() - start


FAST = 1_000_000.0  # no rate limit between the bench's own clients and relay


def library_cases(
    stored: int, runs: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Launch times over a real store of ``stored`` messages, times to show 1,000 more
    sent by another client through a relay process on its SQLite store, and that
    client's own time to send them (until the relay confirmed all: the same-run floor)."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        relay, url = start_server(
            relay_command(
                *("--data-dir", str(tmp / "relay"), "--rate", str(FAST), "--burst", "1000000"),
                *("--history-count", "100000"),
            )
        )
        try:
            asyncio.run(fill_room(url, tmp, stored))
            return asyncio.run(library_runs(url, tmp, runs))
        finally:
            relay.kill()
            relay.wait()


async def library_runs(
    url: str, tmp: Path, runs: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Each run: ``alice`` connects in the app over her store; then ``bob``, in a process
    of his own as on another machine, sends 1,000 messages, timed until the last is shown."""
    me = Identity.load(tmp / "alice.key", "pw")
    launches: list[float] = []
    loaded: list[float] = []
    appends: list[float] = []
    sending: list[float] = []  # the sender's own time: all sent and confirmed by the relay
    for run in range(runs):
        label = f"run {run} message"
        sender = await asyncio.create_subprocess_exec(
            *(sys.executable, __file__, "sender", url, str(tmp), label),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert sender.stdin is not None
        assert sender.stdout is not None
        try:
            assert (await asyncio.wait_for(sender.stdout.readline(), 60)).strip() == b"ready"
            chat = Client(url, identity=me, name="alice", store=tmp / "alice.db")
            app = WatchingApp(chat, bell=False, toast=False)
            start = time.perf_counter()
            async with chat, app.run_test(size=SIZE):
                await app.ready.wait()
                await painted(app)
                launches.append(time.perf_counter() - start)
                assert app.timeline.scroll_offset.y == app.timeline.max_scroll_y
                await app.backlog_loaded.wait()
                await painted(app)
                loaded.append(time.perf_counter() - start)
                app.seen = asyncio.Event()
                app.awaited = f"{label} {SENT - 1}"
                start = time.perf_counter()
                sender.stdin.write(b"go\n")
                await sender.stdin.drain()
                await asyncio.wait_for(app.seen.wait(), 120)
                await painted(app)
                appends.append(time.perf_counter() - start)
            words = (await asyncio.wait_for(sender.stdout.readline(), 60)).split()
            assert words[:1] == [b"sent"]
            sending.append(float(words[1]))
            assert await asyncio.wait_for(sender.wait(), 60) == 0
        finally:
            if sender.returncode is None:
                sender.kill()
                await sender.wait()
    return launches, loaded, appends, sending


SENT = 1_000  # messages the other client sends in each library run


async def send_when_told(url: str, home: Path, label: str) -> None:
    """``bob`` (his identity and store under ``home``): connect, print ``ready``, then on
    a line on stdin send ``SENT`` messages ``label N`` and return once the relay has
    them all."""
    bob = Client(
        url,
        identity=Identity.load(home / "bob.key", "pw"),
        name="bob",
        store=home / "bob.db",
        send_rate=FAST,
        send_burst=10**6,
    )
    async with bob:
        room = bob.get_room(TYPED_ROOM) or await bob.join(TYPED_ROOM)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.perf_counter()
        for number in range(SENT):
            await room.send(f"{label} {number}")
        assert await bob.flush(timeout=60) == 0
        print(f"sent {time.perf_counter() - start}", flush=True)


BARE_TEXT_AREA = """
from textual.app import App
from textual.widgets import Footer, TextArea
class Bare(App):
    def compose(self):
        yield TextArea(id="t")
        yield Footer()
    def on_mount(self):
        self.query_one(TextArea).focus()
Bare().run()
"""
ECHOED = "x"  # a letter no escape sequence of Textual's output contains
CLEAR_LINE = "\x15"  # ctrl+u, between batches of keys (not timed)
QUIT = "\x11"  # ctrl+q
IDLE_WINDOW, IDLE_CPU = 0.5, 0.05  # typing starts once the program idles: < 5 % CPU for 0.5 s


def end(child: pexpect.spawn) -> None:
    """Quit the program with ctrl+q and wait; then end its whole process group.

    ``close(force=True)`` gives a process 0.1 s per signal: a loaded machine, or a demo
    with its relay and bots to shut down, outlasts that and it raises instead."""
    try:
        child.send(QUIT)
        child.expect(pexpect.EOF, timeout=10)
    except (pexpect.TIMEOUT, OSError):
        for signal_number in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal_number)  # the pty made the child a group leader
            with contextlib.suppress(pexpect.TIMEOUT, OSError):
                child.expect(pexpect.EOF, timeout=5)
                break
    child.wait()
    child.close()


def type_in_a_terminal(
    command: list[str], ready: str, keys: int, interval: float, env: dict[str, str] | None = None
) -> tuple[list[float], float, float]:
    """Seconds from writing each key to the pty until its echo is read back, the
    program's CPU seconds per key over the run (its own work, whatever the load), and
    this bench's own CPU seconds per key (the load generator's).

    Typing starts once the program idles (its start, a greeter's welcome, the history
    loaded into the timeline are not typed over). Keys go at a typist's steady pace, one
    every ``interval`` seconds (or as soon as the previous echo is back, if that took
    longer): sent back to back, 20 ms after the last output, they came 23 to 31 ms after
    the previous frame, where Textual's frame timer sleeps one to two frame periods after
    a late frame, so up to 11 ms of the figure was a typing speed of 35 keys a second that
    no one types. What the program draws in between is read and dropped, so only this
    key's echo can match."""
    env = {**os.environ, "TERM": "xterm-256color", "E2ECHAT_IMAGES": "off", **(env or {})}
    child = pexpect.spawn(command[0], command[1:], env=env, dimensions=(40, 120))
    child.delaybeforesend = None  # pexpect waits 50 ms before each send by default

    def drain_until(moment: float) -> None:
        while (left := moment - time.perf_counter()) > 0:
            with contextlib.suppress(pexpect.TIMEOUT):
                child.read_nonblocking(65536, timeout=left)
        child.buffer = b""  # and what the last match left unread

    try:
        child.expect(ready, timeout=60)
        settled = time.perf_counter() + 60
        while time.perf_counter() < settled:  # the first frames, welcomes, history loaded
            before = cpu_seconds(child.pid)
            drain_until(time.perf_counter() + IDLE_WINDOW)
            if cpu_seconds(child.pid) - before < IDLE_CPU * IDLE_WINDOW:
                break
        samples: list[float] = []
        cpu_before, own_before = cpu_seconds(child.pid), time.process_time()
        due = time.perf_counter()
        for number in range(keys):
            if number % 50 == 0:
                child.send(CLEAR_LINE)  # untimed; its frame is drained below
                due = time.perf_counter() + interval
            drain_until(due)
            start = time.perf_counter()
            child.send(ECHOED)
            # the line is redrawn whole: only this key's frame holds one more x than before
            child.expect_exact(ECHOED.encode() * (number % 50 + 1), timeout=5)
            samples.append(time.perf_counter() - start)
            due = start + interval
        cpu, own = cpu_seconds(child.pid) - cpu_before, time.process_time() - own_before
        return samples, cpu / keys, own / keys
    finally:
        end(child)


CHEAP = KdfLimits(  # the bench's identity file: no need for a slow passphrase hash
    sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN, sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
)
TYPED_ROOM = "lobby"
LAST_STORED = "the last stored message"


async def fill_room(url: str, tmp: Path, stored: int) -> None:
    """Make ``alice`` (identity file, config file), and a room she is in where ``bob``
    has sent ``stored`` messages, the last one ``LAST_STORED``."""
    alice = Identity.generate()
    alice.save(tmp / "alice.key", "pw", limits=CHEAP)
    (tmp / "config.toml").write_text(
        f'relay = "{url}"\nname = "alice"\nidentity = "alice.key"\nstore = "alice.db"\n'
    )
    bob_identity = Identity.generate()
    bob_identity.save(tmp / "bob.key", "pw", limits=CHEAP)  # for the library runs' sender
    bob = Client(
        url,
        identity=bob_identity,
        name="bob",
        store=tmp / "bob.db",
        send_rate=FAST,
        send_burst=10**6,
    )
    async with bob, Client(url, identity=alice, name="alice", store=tmp / "alice.db") as her:
        room = await bob.create(TYPED_ROOM)
        await her.join(TYPED_ROOM)
        received = her.messages()
        for number in range(stored - 1):
            await room.send(text_of(number))
        await room.send(LAST_STORED)
        async for message in received:  # in her store, as after a day of chatting
            if message.text == LAST_STORED:
                break


def type_into_connect(program: str, keys: int, interval: float, stored: int = 10_000) -> Any:
    """``type_in_a_terminal`` on ``e2echat connect`` (config file, identity file) against
    a relay process on its SQLite store, the room holding ``stored`` messages."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        relay, url = start_server(
            relay_command(
                "--data-dir", str(tmp / "relay"), "--rate", str(FAST), "--burst", "1000000"
            )
        )
        try:
            asyncio.run(fill_room(url, tmp, stored))
            env = {
                "E2ECHAT_CONFIG": str(tmp / "config.toml"),
                "E2ECHAT_HOME": str(tmp),
                "E2ECHAT_PASSPHRASE": "pw",
            }
            command = [program, "connect", "--room", TYPED_ROOM, "--no-bell"]
            return type_in_a_terminal(command, LAST_STORED, keys, interval, env)
        finally:
            relay.kill()
            relay.wait()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def report_latency(name: str, run: tuple[list[float], float, float]) -> tuple[float, float]:
    """Print a typing case; its p99 and CPU per key (seconds)."""
    samples, cpu, own = run
    p99 = percentile(samples, 0.99)
    print(
        f"{name:<44} median {statistics.median(samples) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms"
        f"  max {max(samples) * 1000:6.2f} ms  CPU {cpu * 1000:.2f} ms/key"
        f" (bench {own * 1000:.2f} ms/key; n={len(samples)},"
        f" load {os.getloadavg()[0]:.1f})"
    )
    return p99, cpu


def report(name: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(
        f"{name:<58} median {median * 1000:8.1f} ms  (min {min(samples) * 1000:.1f}, "
        f"n={len(samples)})"
    )
    return median


def measure(name: str, runs: int, case: Callable[[], Coroutine[Any, Any, float]]) -> float:
    return report(name, [asyncio.run(case()) for _ in range(runs)])


def main() -> None:
    if sys.argv[1:2] == ["sender"]:
        url, home, label = sys.argv[2:]
        asyncio.run(send_when_told(url, Path(home), label))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keys", type=int, default=500, help="keys typed per latency case")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds from one typed key to the next"
    )
    parser.add_argument("--typing", action="store_true", help="only the typing latency cases")
    arguments = parser.parse_args()
    runs, keys, interval = arguments.runs, arguments.keys, arguments.interval
    program = shutil.which("e2echat", path=str(Path(sys.executable).parent)) or "e2echat"
    bare, bare_cpu = report_latency(
        "typing: bare Textual TextArea (baseline)",
        type_in_a_terminal([sys.executable, "-c", BARE_TEXT_AREA], "\\^p", keys, interval),
    )
    for name, run in (
        (
            "e2echat demo",
            lambda: type_in_a_terminal([program, "demo", "--no-bell"], "greeter", keys, interval),
        ),
        ("e2echat connect, relay process", lambda: type_into_connect(program, keys, interval)),
    ):
        typing, typing_cpu = report_latency(f"typing: {name}", run())
        print(f"  p99 / bare TextArea: {typing / bare:.2f}x", end="   ")
        print(f"CPU per key: {typing_cpu / bare_cpu:.2f}x", end="   ")
        print(f"p99 goal < 16 ms: {'met' if typing < 0.016 else 'MISSED'}")
    if arguments.typing:
        return
    empty = measure("launch, empty history (baseline)", runs, lambda: launch(0))
    full = measure("launch, 10,000 stored messages", runs, lambda: launch(10_000))
    measure(
        "launch, 10,000 stored, until all are loaded", runs, lambda: launch(10_000, backlog=True)
    )
    log = measure("append 1,000 lines to textual Log (baseline)", runs, lambda: append_log(1_000))
    chat = measure("append 1,000 incoming messages", runs, lambda: append_chat(1_000))
    launches, loaded, appends, sending = library_cases(10_000, runs)
    real_launch = report("library+relay: connect, first frame (10,000 stored)", launches)
    report("library+relay: connect, all 10,000 loaded from the store", loaded)
    report("library+relay: the other client alone, 1,000 sent and confirmed", sending)
    real_append = report("library+relay: 1,000 sent by another client, shown", appends)

    def goal(seconds: float, limit: float) -> str:
        return f"goal < {limit:g} s: {'met' if seconds < limit else 'MISSED'}"

    print(f"launch 10k / empty: {full / empty:.2f}x   {goal(full, 1)}")
    print(f"append / Log: {chat / log:.2f}x   {goal(chat, 2)}")
    print(f"library+relay: launch {goal(real_launch, 1)}; append {goal(real_append, 2)}")


if __name__ == "__main__":
    main()
