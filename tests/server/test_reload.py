"""SIGHUP: a new TLS certificate, log settings and live limits without a restart."""

import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import trustme
from e2echat_server import Relay, RelayConfig, cli
from e2echat_server.config import ConfigError

from e2echat.protocol import CloseCode, ListRooms, RoomList
from tests.client.test_bot_ops import watching
from tests.server.wire import TIMEOUT, Identity, closed_with, login, open_raw
from tests.tcp_forwarder import Forwarder

# A new Python process imports the relay before it listens: seconds on a loaded machine.
START_TIMEOUT = 30.0


async def line_saying(stream: asyncio.StreamReader, text: bytes) -> bytes:
    """The next line of a process's ``stream`` that holds ``text``."""
    async with asyncio.timeout(START_TIMEOUT):
        while text not in (line := await stream.readline()):
            assert line, "the process exited"
    return line


def issue(directory: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A fresh CA's certificate for 127.0.0.1 at fixed paths, and a client trusting that CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key = directory / "chain.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return chain, key, client


async def test_a_reload_serves_the_new_certificate_to_new_connections(tmp_path: Path) -> None:
    chain, key, old_client = issue(tmp_path)
    config = RelayConfig(port=0, memory=True, tls_cert=chain, tls_key=key)
    async with Relay(config) as relay:
        before = await login(relay.url, Identity("alice"), old_client)
        _, _, new_client = issue(tmp_path)  # renewed in place, as certbot does
        applied, restart = relay.reload(config)
        assert (applied, restart) == ([], [])  # same settings: the files were re-read
        after = await login(relay.url, Identity("bob"), new_client)
        assert (await after.request(ListRooms(), RoomList)).rooms == []
        with pytest.raises(ssl.SSLError):
            await login(relay.url, Identity("eve"), old_client)  # the old chain is gone
        assert (await before.request(ListRooms(), RoomList)).rooms == []  # still connected


async def test_a_bad_certificate_file_changes_nothing(tmp_path: Path) -> None:
    chain, key, client = issue(tmp_path)
    config = RelayConfig(port=0, memory=True, tls_cert=chain, tls_key=key)
    async with Relay(config) as relay:
        chain.write_text("not a certificate\n")
        with pytest.raises(ssl.SSLError):
            relay.reload(msgspec.structs.replace(config, rate=99.0))
        assert relay.config.rate == config.rate
        assert (await login(relay.url, Identity("alice"), client)).welcome is not None


async def test_live_limits_apply_and_the_rest_waits_for_a_restart() -> None:
    config = RelayConfig(port=0, memory=True, max_conn_per_ip=1)
    async with Relay(config) as relay:
        await login(relay.url, Identity("alice"))
        refused = await open_raw(relay.url)
        await closed_with(refused.conn, CloseCode.POLICY)
        new = msgspec.structs.replace(config, max_conn_per_ip=2, port=1234, history_count=5)
        applied, restart = relay.reload(new)
        assert (applied, sorted(restart)) == (["max_conn_per_ip"], ["history_count", "port"])
        assert (relay.config.max_conn_per_ip, relay.config.history_count) == (2, 10_000)
        assert (await login(relay.url, Identity("bob"))).welcome is not None


async def test_a_reload_that_breaks_a_rule_is_refused() -> None:
    config = RelayConfig(port=0, memory=True, max_frame=8192, max_body=4096)
    async with Relay(config) as relay:
        # send_buffer is live, max_frame is not: together they must still hold.
        new = msgspec.structs.replace(config, send_buffer=4096, max_frame=4096, max_body=1024)
        with pytest.raises(ConfigError, match="send_buffer"):
            relay.reload(new)
        assert relay.config == config


async def test_sighup_reloads_the_config_file_and_the_relay_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("memory = true\nport = 0\nmax-conn-per-ip = 5\n")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "e2echat_server", "--config", str(path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip()
        path.write_text("memory = true\nport = 0\nmax-conn-per-ip = 1\nlog-json = true\n")
        process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(TIMEOUT):
            while b"reloaded" not in (line := await process.stderr.readline()):
                assert line, "the relay exited"
        logged = msgspec.json.decode(line)  # log_json applied
        assert logged["applied"] == "log_json,max_conn_per_ip"
        assert (await login(url, Identity("alice"))).welcome is not None
        refused = await open_raw(url)
        await closed_with(refused.conn, CloseCode.POLICY)  # the new limit holds
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_sighup_while_the_relay_starts_is_applied_once_it_listens(
    tmp_path: Path, redis_url: str
) -> None:
    """The relay is held in its start (its Redis connections wait at a gate) when SIGHUP
    comes: the relay must neither die of it (rc 129) nor drop it."""
    gate = asyncio.Event()
    held = Forwarder(int(redis_url.rsplit(":", 1)[1].split("/")[0]), gate)
    port = await held.start()
    path = tmp_path / "relay.toml"
    settings = f'port = 0\nredis = "redis://127.0.0.1:{port}/0"\n'
    path.write_text(settings + "max-conn-per-ip = 5\n")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "e2echat_server", "--config", str(path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            await held.accepted.wait()  # the relay is starting: it waits for Redis
        path.write_text(settings + "max-conn-per-ip = 1\n")
        process.send_signal(signal.SIGHUP)
        gate.set()
        url = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode().strip()
        line = await line_saying(process.stderr, b"reloaded")
        assert b"applied=max_conn_per_ip" in line
        client = await login(url, Identity("alice"))
        refused = await open_raw(url)
        await closed_with(refused.conn, CloseCode.POLICY)  # the new limit holds
        await client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await held.close()


# The command as its console script runs it (the installed entry point), with the import
# of the relay's modules held until the test says go: a SIGHUP lands while they load.
HELD_COMMAND = """
import importlib.abc, importlib.metadata, sys

class Hold(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "e2echat_server.relay":
            sys.stderr.write("loading\\n")
            sys.stderr.flush()
            sys.stdin.readline()
        return None

sys.meta_path.insert(0, Hold())
(command,) = importlib.metadata.entry_points(group="console_scripts", name="e2echat-server")
sys.argv = ["e2echat-server", "--memory", "--port", "0"]
command.load()()
"""


async def test_a_sighup_while_the_command_loads_its_modules_is_applied_once_it_listens() -> None:
    """Loading the relay's modules takes a second or more on a busy host: a SIGHUP then
    (a reload just after a start) must neither kill the relay (rc 129) nor be dropped."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", HELD_COMMAND),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        await line_saying(process.stderr, b"loading")
        process.send_signal(signal.SIGHUP)
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        url = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
        assert url.startswith("ws://127.0.0.1:"), await process.wait()
        await line_saying(process.stderr, b"reloaded")
        assert process.returncode is None  # serving
    finally:
        process.kill()
        await process.wait()


async def test_a_reload_that_fails_on_a_bug_is_logged_and_the_next_one_applies() -> None:
    config = RelayConfig(port=0, memory=True)
    rereads = 0

    def reread() -> RelayConfig:
        nonlocal rereads
        rereads += 1
        if rereads == 1:
            raise RuntimeError("a bug while reading the settings")
        return msgspec.structs.replace(config, rate=99.0)

    def named(name: str) -> Callable[[logging.LogRecord], bool]:
        return lambda record: record.getMessage() == name

    async with watching("e2echat_server") as log:
        serving = asyncio.create_task(cli.run(config, reread))
        await log.wait(named("listening"))
        os.kill(os.getpid(), signal.SIGHUP)
        failed = await log.wait(named("reload_failed"))
        os.kill(os.getpid(), signal.SIGHUP)
        reloaded = await log.wait(named("reloaded"))
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, TIMEOUT)
    assert failed.__dict__["fields"]["error"] == "RuntimeError"  # the type, not the message
    assert not [r for r in log.records if "a bug" in str(r.__dict__.get("fields"))]
    assert reloaded.__dict__["fields"]["applied"] == "rate"
