"""The embedding API that `e2echat demo` and the client library's tests rely on."""

import socket
from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig, __version__
from e2echat_server.store import MemoryStore

from tests.server.wire import Identity, login


async def test_start_close_and_the_bound_url(tmp_path: Path) -> None:
    relay = Relay(RelayConfig(port=0, data_dir=tmp_path))
    with pytest.raises(RuntimeError, match="not started"):
        _ = relay.url
    await relay.start()
    try:
        assert relay.url == f"ws://127.0.0.1:{relay.port}/"
        assert (await login(relay.url, Identity("alice"))).welcome is not None
    finally:
        await relay.close()
    assert (tmp_path / "relay.sqlite3").is_file()
    assert __version__


async def test_a_given_store_is_used_and_state_survives_an_in_process_restart() -> None:
    store, identity = MemoryStore(), Identity("alice")
    async with Relay(RelayConfig(port=0), store=store) as relay:
        await login(relay.url, identity)
    async with Relay(RelayConfig(port=0), store=store) as relay:
        assert identity.key in relay.directory.users


async def test_a_taken_port_raises_and_releases_the_store(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        relay = Relay(RelayConfig(port=taken.getsockname()[1], data_dir=tmp_path))
        with pytest.raises(OSError, match="in use"):
            await relay.start()
    with pytest.raises(RuntimeError, match="closed"):
        await relay.store.load()
