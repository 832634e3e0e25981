"""The `e2echat` command: help everywhere, init/fingerprint, readable failures."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nacl.bindings as sodium
import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_tui import cli, launch
from e2echat_tui.cli import app
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from e2echat import Client, Identity, Room, SuccessorAnnounced
from e2echat.client import kdfcost
from e2echat.crypto.identity import KdfLimits

CHEAP = KdfLimits(
    sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN, sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path))
    monkeypatch.delenv("E2ECHAT_PASSPHRASE", raising=False)
    monkeypatch.delenv("E2ECHAT_IDENTITY", raising=False)
    return CliRunner()


@pytest.fixture
def cheap_identity(tmp_path: Path) -> tuple[Path, Identity]:
    path = tmp_path / "cheap.key"
    identity = Identity.generate()
    identity.save(path, "pw", limits=CHEAP)
    return path, identity


@pytest.mark.parametrize(
    "command", [[], ["init"], ["connect"], ["fingerprint"], ["identity", "rotate"], ["demo"]]
)
def test_help_everywhere(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_init_with_the_real_kdf_then_fingerprint(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init"], input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0, result.output
    (line,) = [each for each in result.output.splitlines() if each.startswith("Fingerprint: ")]
    fingerprint = line.removeprefix("Fingerprint: ")
    assert (tmp_path / "identity.key").exists()
    again = runner.invoke(app, ["fingerprint"], input="correct horse\n")
    assert again.exit_code == 0
    assert again.output.strip().endswith(fingerprint)
    refused = runner.invoke(app, ["init"], input="x\nx\n")
    assert refused.exit_code == 1
    assert "already exists; use --force" in refused.output


def test_init_asks_twice(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "-i", str(tmp_path / "k")], input="a\nb\nc\nc\n")
    assert "do not match" in result.output


def test_wrong_passphrase_is_one_readable_line(
    runner: CliRunner, cheap_identity: tuple[Path, Identity]
) -> None:
    path, _ = cheap_identity
    result = runner.invoke(app, ["fingerprint", "-i", str(path)], input="nope\n")
    assert result.exit_code == 1
    assert "wrong passphrase" in result.output
    assert "Traceback" not in result.output


def test_fingerprint_from_the_environment(
    runner: CliRunner, cheap_identity: tuple[Path, Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, identity = cheap_identity
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    result = runner.invoke(app, ["fingerprint", "-i", str(path)])
    assert result.output.strip() == identity.fingerprint


def test_connect_failures_are_readable(
    runner: CliRunner, cheap_identity: tuple[Path, Identity], tmp_path: Path
) -> None:
    missing = runner.invoke(app, ["connect", "ws://127.0.0.1:1/", "--name", "a"])
    assert missing.exit_code == 1
    assert "run `e2echat init` first" in missing.output
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path, _ = cheap_identity
    args = ["connect", f"ws://127.0.0.1:{port}/", "-n", "a", "-i", str(path)]
    result = runner.invoke(app, [*args, "--store", str(tmp_path / "s.sqlite3")], input="pw\n")
    assert result.exit_code == 1
    assert result.output.count("error:") == 1
    assert "Traceback" not in result.output
    both = [*args[:2], f"ws://127.0.0.1:{port}/", *args[2:]]  # two relays, both down
    result = runner.invoke(app, [*both, "--store", str(tmp_path / "t.sqlite3")], input="pw\n")
    assert (result.exit_code, result.output.count("error:")) == (1, 1)
    bad_name = runner.invoke(app, [*args[:3], "bad\x1bname", *args[4:]], input="pw\n")
    assert bad_name.exit_code == 1
    assert "error:" in bad_name.output


CONFIG_KEYS = ("identity", "relay", "name", "notifications", "keymap")


def test_init_writes_a_config_that_connect_reads(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init keeps relay and name; connect with no arguments uses them, a flag wins over
    the environment, which wins over the file (seen in the error naming the source)."""
    args = ["init", "--relay", "ws://127.0.0.1:1/", "--name", 'Ann "A" Lee']
    result = runner.invoke(app, args, input="pw\npw\n")
    assert result.exit_code == 0, result.output
    written = tmp_path / "config.toml"
    assert f"Config file written to {written}" in result.output
    text = written.read_text()
    assert 'relay = ["ws://127.0.0.1:1/"]' in text
    assert 'name = "Ann \\"A\\" Lee"' in text
    again = runner.invoke(app, ["init", "--force"], input="pw\npw\n")
    assert "kept as it is" in again.output
    assert written.read_text() == text  # never replaced
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    from_file = runner.invoke(app, ["connect"])
    assert from_file.exit_code == 1
    assert from_file.output.count("error:") == 1
    assert "'127.0.0.1', 1" in from_file.output  # the file's relay was tried
    monkeypatch.setenv("E2ECHAT_NAME", "bad\x1bname")
    from_env = runner.invoke(app, ["connect"])
    assert "error: $E2ECHAT_NAME:" in from_env.output
    flag = runner.invoke(app, ["connect", "--name", "bad\x1bflag"])
    assert "error: --name:" in flag.output


@pytest.mark.parametrize(("line", "sent"), [("", False), ("read_receipts = true", True)])
def test_read_receipts_are_sent_only_when_the_config_says_so(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, sent: bool
) -> None:
    made: dict[str, object] = {}

    def recording(*_: object, **options: object) -> object:
        made.update(options)
        return object()

    async def run_nothing(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr(cli, "Client", recording)
    monkeypatch.setattr(launch, "run_chat", run_nothing)
    result = runner.invoke(
        app, ["init", "--relay", "ws://relay.example/", "--name", "ann"], input="pw\npw\n"
    )
    assert result.exit_code == 0, result.output
    config = tmp_path / "config.toml"
    config.write_text(f"{line}\n{config.read_text()}")  # at the top, before any [table]
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    result = runner.invoke(app, ["connect"])
    assert result.exit_code == 0, result.output
    assert made["read_receipts"] is sent


def test_connect_without_a_relay_says_where_to_give_one(runner: CliRunner) -> None:
    result = runner.invoke(app, ["connect"])
    assert result.exit_code == 1
    assert "no relay URL" in result.output
    assert "$E2ECHAT_RELAY" in result.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("relay = 3", "relay: expected str | array | null, got int"),
        ('relay = "http://x/"', 'relay: "http://x/" is not a ws:// or wss:// URL'),
        ("nmae = 'a'", "nmae: no such setting"),
        ("[notifications]\nbell = 'yes'", "notifications.bell: expected bool, got str"),
        ("[notifications]\non = 'always'", "notifications.on: invalid enum value 'always'"),
        ("[notifications]\nmuted = [1]", "notifications.muted[0]: expected str, got int"),
        ("[keymap]\nfly = 'f9'", "keymap.fly: no such action"),
        ("[keymap]\nquit = 'ctrl+qq'", 'keymap.quit: "ctrl+qq" is not a key name'),
        ("theme = 'neon'", 'theme: no theme "neon"'),
        ("read_receipts = 'yes'", "read_receipts: expected bool, got str"),
        ("relay = [", "not valid TOML"),
    ],
)
def test_a_bad_config_is_one_error_naming_file_and_key(
    runner: CliRunner, tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    for command in (["connect"], ["demo"], ["init"]):
        result = runner.invoke(app, command, input="pw\npw\n")
        assert result.exit_code == 1
        assert result.output.count("error:") == 1
        assert f"error: {path}: {problem}" in result.output
        assert "Traceback" not in result.output
    assert path.read_text() == text  # nothing changed
    assert not (tmp_path / "identity.key").exists()


BAD_CONFIGS = {
    "toml-syntax": 'relay = ["ws://relay.example/"\nname = "alice"\n',
    "wrong-type": 'relay = "ws://relay.example/"\n[notifications]\nbell = "yes"\n',
    "unknown-key": 'relay = "ws://relay.example/"\nnmae = "alice"\n',
    "keymap-action": '[keymap]\nfly = "f9"\n',
    "keymap-key": '[keymap]\nquit = "ctrl+qq"\n',
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_what_a_bad_config_prints(
    runner: CliRunner, tmp_path: Path, case: str, snapshot: SnapshotAssertion
) -> None:
    """The exact text `e2echat connect` prints before anything starts (golden: a change
    of wording shows in the diff of tests/tui/__snapshots__/test_cli.ambr)."""
    (tmp_path / "config.toml").write_text(BAD_CONFIGS[case])
    result = runner.invoke(app, ["connect"])
    assert result.exit_code == 1
    assert result.output.replace(str(tmp_path), "$E2ECHAT_HOME") == snapshot


def test_keys_of_the_config(tmp_path: Path) -> None:
    from e2echat_tui.config import valid_key

    assert all(map(valid_key, ["ctrl+k", "alt+1", "f5", "a", "ctrl+shift+end", "question_mark"]))
    assert not any(map(valid_key, ["", "ctrl+", "ctrl+ctrl+a", "hyperdrive+a", "nokey", "a b"]))


def test_connect_help_names_the_environment(runner: CliRunner) -> None:
    result = runner.invoke(app, ["connect", "--help"], env={"COLUMNS": "200"})
    assert all(f"${name}" in result.output for name in ("E2ECHAT_RELAY", "E2ECHAT_NAME"))


@asynccontextmanager
async def verifying(
    url: str, tmp_path: Path, old: Identity, store: Path
) -> AsyncIterator[tuple[Client, Room]]:
    """alice, connected, who verified bob's ``old`` key in the room lobby he made."""
    alice = Client(url, identity=Identity.generate(), name="alice", store=tmp_path / "a")
    async with alice:
        async with Client(url, identity=old, name="bob", store=store) as bob:
            await bob.create("lobby")
            room = await alice.join("lobby")
        (listed,) = [m for m in await room.members() if m.key == old.public_key]
        await alice.mark_verified(listed)
        yield alice, room


async def test_identity_rotate_moves_verification_to_the_new_key(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    monkeypatch.setattr(kdfcost, "_fast", True)  # the new key file at the test cost
    path, store = tmp_path / "bob.key", tmp_path / "bob.sqlite3"
    old = Identity.generate()
    old.save(path, "pw", limits=CHEAP)
    async with (
        Relay(RelayConfig(port=0, memory=True)) as relay,
        verifying(relay.url, tmp_path, old, store) as (alice, room),
    ):
        events = alice.events()
        argv = ["identity", "rotate", relay.url, "-i", str(path), "--store", str(store)]
        result = await asyncio.to_thread(runner.invoke, app, argv)
        assert result.exit_code == 0, result.output
        assert "Successor statement sent to 1 room" in result.output
        assert "Entered with the new key: room lobby (as its admin)\n" in result.output
        assert "1 of 1 rooms entered with the new key" in result.output
        new = Identity.load(path, "pw")
        assert new.public_key in {m.key for m in await room.members()}
        assert f"New fingerprint: {new.fingerprint}" in result.output
        assert Identity.load(tmp_path / "bob.key.old", "pw").public_key == old.public_key
        async with asyncio.timeout(10):
            async for event in events:
                if isinstance(event, SuccessorAnnounced):
                    break
        assert (event.successor, event.carried) == (new.public_key, True)
        again = await asyncio.to_thread(runner.invoke, app, argv)
        assert again.exit_code == 1
        assert "bob.key.old exists" in again.output


async def test_identity_rotate_stands_when_the_new_key_cannot_enter(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay that admits new keys with a token only keeps the new key out: the
    statement is out, so the rotation still completes and says why no room followed."""
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    monkeypatch.setattr(kdfcost, "_fast", True)
    path, store = tmp_path / "bob.key", tmp_path / "bob.sqlite3"
    old = Identity.generate()
    old.save(path, "pw", limits=CHEAP)
    async with Relay(RelayConfig(port=0, memory=True, registration="token")) as relay:
        token = await relay.operator.issue_token(1, None, 0)
        bob = Client(relay.url, identity=old, name="bob", store=store, registration_token=token)
        async with bob:
            await bob.create("lobby")
        argv = ["identity", "rotate", relay.url, "-i", str(path), "--store", str(store)]
        result = await asyncio.to_thread(runner.invoke, app, argv)
    assert result.exit_code == 0, result.output
    assert "No room entered with the new key (" in result.output
    assert "registration token only" in result.output
    assert Identity.load(path, "pw").public_key != old.public_key
    assert Identity.load(tmp_path / "bob.key.old", "pw").public_key == old.public_key


async def test_identity_rotate_tried_again_names_the_same_new_key(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation that failed after some rooms got its statement (the relay did not
    confirm them all) is tried again: an old key names one successor only, so the next
    try names the same new key, kept in FILE.new-<old key>, and verification still carries over."""
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    monkeypatch.setattr(kdfcost, "_fast", True)
    path, store = tmp_path / "bob.key", tmp_path / "bob.sqlite3"
    old = Identity.generate()
    old.save(path, "pw", limits=CHEAP)
    flush = Client.flush
    unconfirmed = [1]

    async def flush_once_unconfirmed(self: Client, *within: float | None) -> int:
        left = await flush(self, *within)
        return left + (unconfirmed.pop() if unconfirmed else 0)

    monkeypatch.setattr(Client, "flush", flush_once_unconfirmed)
    stray = Identity.generate()  # an unfinished rotation of another key: never reused
    stray.save(tmp_path / f"bob.key.new-{stray.public_key.hex()[:16]}", "pw", limits=CHEAP)
    async with (
        Relay(RelayConfig(port=0, memory=True)) as relay,
        verifying(relay.url, tmp_path, old, store) as (alice, room),
    ):
        events = alice.events()
        argv = ["identity", "rotate", relay.url, "-i", str(path), "--store", str(store)]
        failed = await asyncio.to_thread(runner.invoke, app, argv)
        assert failed.exit_code == 1
        assert "run it again to name the same new key" in failed.output
        fresh = tmp_path / f"bob.key.new-{old.public_key.hex()[:16]}"
        pending = Identity.load(fresh, "pw")
        assert Identity.load(path, "pw").public_key == old.public_key
        result = await asyncio.to_thread(runner.invoke, app, argv)
        assert result.exit_code == 0, result.output
        assert Identity.load(path, "pw").public_key == pending.public_key != stray.public_key
        assert not fresh.exists()
        async with asyncio.timeout(10):
            async for event in events:
                if isinstance(event, SuccessorAnnounced):
                    break
        assert (event.successor, event.carried) == (pending.public_key, True)
        (moved,) = [m for m in await room.members() if m.key == pending.public_key]
        assert moved.verified


def test_identity_rotate_refuses_an_unfinished_new_key_it_cannot_open(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new key of an unfinished rotation under another passphrase: one clear line,
    and nothing changes (no connection, the identity file and the new key kept)."""
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    path = tmp_path / "bob.key"
    old = Identity.generate()
    old.save(path, "pw", limits=CHEAP)
    fresh = tmp_path / f"bob.key.new-{old.public_key.hex()[:16]}"
    pending = Identity.generate()
    pending.save(fresh, "another passphrase", limits=CHEAP)
    result = runner.invoke(app, ["identity", "rotate", "ws://127.0.0.1:9", "-i", str(path)])
    assert result.exit_code == 1
    assert "holds the new key of a rotation that did not finish" in result.output
    assert "Traceback" not in result.output
    assert Identity.load(path, "pw").public_key == old.public_key
    assert Identity.load(fresh, "another passphrase").public_key == pending.public_key
    assert not (tmp_path / "bob.key.old").exists()
