"""Registration and room-creation policy, banned keys: each mode against a real relay."""

import base64
import re
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from e2echat_server import Relay, RelayConfig
from e2echat_server.access import KeyListError, parse_key, read_keys
from e2echat_server.cli import app
from e2echat_server.config import ConfigError

from e2echat.protocol import (
    Challenge,
    CloseCode,
    CreateRoom,
    Error,
    ErrorCode,
    ListRooms,
    OpenAccess,
    RoomList,
    RoomReply,
)
from tests.server.wire import Identity, closed_with, login, open_raw


async def refused(url: str, identity: Identity) -> Error:
    """Authenticate ``identity`` and return the error the relay refuses it with."""
    client = await open_raw(url)
    challenge = await client.expect(Challenge)
    await client.send(identity.hello(challenge))
    error = await client.expect(Error)
    await closed_with(client.conn, CloseCode.AUTH_FAILED)
    return error


def key_file(path: Path, *identities: Identity) -> Path:
    lines = [
        "# operators",
        *(" ".join(i.key.hex()[n : n + 4] for n in range(0, 64, 4)) for i in identities),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_keys_are_read_as_fingerprints_or_base64(tmp_path: Path) -> None:
    key = bytes(range(32))
    assert parse_key(" ".join(key.hex()[n : n + 4] for n in range(0, 64, 4))) == key
    assert parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    assert parse_key("00" * 31) is None
    bad = tmp_path / "keys"
    bad.write_text(f"{key.hex()}\nnot a key\n")
    with pytest.raises(KeyListError, match="keys:2"):
        read_keys(bad)


@pytest.mark.parametrize(
    "settings",
    [{"registration": "allowlist"}, {"room_creation": "allowlist"}, {"registration": "bogus"}],
)
def test_policies_are_checked(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        RelayConfig(**settings)  # type: ignore[arg-type]


async def test_open_registration_admits_any_key() -> None:
    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        client = await login(relay.url, Identity("anyone"))
        await client.close()


async def test_allowlist_registration_admits_listed_keys_only(tmp_path: Path) -> None:
    alice, eve = Identity("alice"), Identity("eve")
    config = RelayConfig(
        port=0,
        memory=True,
        registration="allowlist",
        allow_keys=key_file(tmp_path / "keys", alice),
    )
    async with Relay(config) as relay:
        client = await login(relay.url, alice)
        error = await refused(relay.url, eve)
        assert error.code == ErrorCode.FORBIDDEN
        assert "listed keys only" in error.message
        assert relay.metrics.refusals.counts == {"not_allowed": 1}
        assert eve.key not in relay.directory.users  # refused before it is registered
        await client.close()


async def test_closed_registration_keeps_known_keys_and_reload_adds_new_ones(
    tmp_path: Path,
) -> None:
    alice, bob = Identity("alice"), Identity("bob")
    keys = key_file(tmp_path / "keys")
    async with Relay(RelayConfig(port=0, memory=True, allow_keys=keys)) as relay:
        await (await login(relay.url, alice)).close()  # registered while open
        closed = RelayConfig(port=0, memory=True, registration="closed", allow_keys=keys)
        assert relay.reload(closed)[0] == ["registration"]
        await (await login(relay.url, alice)).close()  # known: still welcome
        assert "no new identities" in (await refused(relay.url, bob)).message
        key_file(keys, bob)
        relay.reload(closed)  # SIGHUP re-reads the key file
        await (await login(relay.url, bob)).close()


async def test_room_creation_by_allowlist(tmp_path: Path) -> None:
    alice, bob = Identity("alice"), Identity("bob")
    config = RelayConfig(
        port=0, memory=True, room_creation="allowlist", allow_keys=key_file(tmp_path / "k", alice)
    )
    async with Relay(config) as relay:
        a, b = await login(relay.url, alice), await login(relay.url, bob)
        await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        error = await b.error(CreateRoom(name="bobs", access=OpenAccess()))
        assert error.code == ErrorCode.FORBIDDEN
        assert [r.name for r in (await b.request(ListRooms(), RoomList)).rooms] == ["lobby"]
        await a.close()
        await b.close()


async def test_a_banned_key_is_disconnected_refused_and_stays_banned(tmp_path: Path) -> None:
    eve = Identity("eve")
    config = RelayConfig(port=0, data_dir=tmp_path, create_db=True)
    async with Relay(config) as relay:
        client = await login(relay.url, eve)
        assert await relay.ban(eve.key)
        await closed_with(client.conn, CloseCode.AUTH_FAILED)
        assert not await relay.ban(eve.key)  # already banned
    async with Relay(RelayConfig(port=0, data_dir=tmp_path)) as relay:
        assert "banned" in (await refused(relay.url, eve)).message
        assert await relay.ban(eve.key, banned=False)
        await (await login(relay.url, eve)).close()


UNREADABLE = [
    (None, "Cannot read the key file {path}: No such file or directory."),
    (b"\xf9\x00binary", "{path} is not a text file of keys (not UTF-8)."),
]


def put(path: Path, content: bytes | None) -> None:
    """``content`` at ``path``, or no file there for None."""
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(content)


@pytest.mark.parametrize(("content", "said"), UNREADABLE)
def test_a_key_file_that_cannot_be_read_stops_the_start_in_one_line(
    tmp_path: Path, content: bytes | None, said: str
) -> None:
    path = tmp_path / "keys"
    put(path, content)
    flags = ["--memory", "--port", "0", "--registration", "allowlist", "--allow-keys", str(path)]
    result = CliRunner().invoke(app, flags)
    assert result.exit_code == 2
    assert result.output == f"e2echat-server: {said.format(path=path)}\n"  # no traceback


@pytest.mark.parametrize(("content", "said"), UNREADABLE)
async def test_a_reload_with_a_key_file_that_cannot_be_read_changes_nothing(
    tmp_path: Path, content: bytes | None, said: str
) -> None:
    path, alice = tmp_path / "keys", Identity("alice")
    path.write_text(alice.key.hex() + "\n")
    config = RelayConfig(port=0, memory=True, registration="allowlist", allow_keys=path)
    async with Relay(config) as relay:
        put(path, content)
        with pytest.raises(KeyListError, match=re.escape(said.format(path=path))):
            relay.reload(msgspec.structs.replace(config, rate=99.0))  # what SIGHUP does
        assert relay.config == config
        await (await login(relay.url, alice)).close()  # still admitted
