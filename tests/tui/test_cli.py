"""The `e2echat` command: help everywhere, init/fingerprint, readable failures."""

import socket
from pathlib import Path

import nacl.bindings as sodium
import pytest
from e2echat_tui.cli import app
from typer.testing import CliRunner

from e2echat import Identity
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


@pytest.mark.parametrize("command", [[], ["init"], ["connect"], ["fingerprint"], ["demo"]])
def test_help_everywhere(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_init_with_the_real_kdf_then_fingerprint(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init"], input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0, result.output
    fingerprint = result.output.strip().splitlines()[-1].removeprefix("Fingerprint: ")
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
