"""The relay as a real process: the URL line, SIGKILL durability, SIGTERM shutdown, the CLI."""

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner
from e2echat_server import Relay
from e2echat_server.cli import app
from websockets.exceptions import ConnectionClosed

from e2echat.protocol import (
    Ack,
    CloseCode,
    CreateRoom,
    DirectDelivery,
    DirectSend,
    ErrorCode,
    JoinRoom,
    Message,
    Ok,
    OpenAccess,
    RoomReply,
    SecretAccess,
    Send,
    Sent,
    Sync,
    Synced,
)
from tests.server.test_config import KUBERNETES_LINKS
from tests.server.test_reload import START_TIMEOUT, line_saying
from tests.server.wire import Identity, closed_with, login, verifier_for


@asynccontextmanager
async def relay_process(
    *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m e2echat_server ...``; yields the process and the URL it printed."""
    if env is None:
        args = ("--port", "0", "--log-level", "warning", *args)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "e2echat_server", *args, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip()
        assert url.startswith("ws://127.0.0.1:")
        yield process, url
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    alice_id, bob_id, carol_id = Identity("alice"), Identity("bob"), Identity("carol")
    token = b"t" * 32
    limits = ("--rate", "1000", "--burst", "1000")
    async with relay_process("--data-dir", str(tmp_path), *limits) as (process, url):
        alice, bob = await login(url, alice_id), await login(url, bob_id)
        access = SecretAccess(verifier=verifier_for(token), salt=b"s" * 16)
        room = (await alice.request(CreateRoom(name="vault", access=access), RoomReply)).room.id
        await bob.request(JoinRoom(name="vault", token=token), RoomReply)
        await (await login(url, carol_id)).close()
        for i in range(20):
            await alice.request(Send(room=room, body=b"m%d" % i), Sent)
        for i in range(20, 60):  # pipelined: committed in shared batches, multi-row inserts
            await alice.send(Send(room=room, body=b"m%d" % i))
        assert [(await alice.next_of(Sent)).seq for _ in range(40)] == list(range(21, 61))
        await alice.request(DirectSend(to=carol_id.key, body=b"for carol"), Sent)
        process.kill()  # SIGKILL: no shutdown code runs
        await process.wait()
    async with relay_process("--data-dir", str(tmp_path)) as (_, url):
        bob = await login(url, bob_id)
        assert bob.welcome is not None
        (info,) = bob.welcome.rooms
        assert (info.id, info.name, info.seq, info.access_kind) == (room, "vault", 60, "secret")
        assert {m.name for m in info.members} == {"alice", "bob"}
        await bob.send(Sync(room=room, after=0))
        assert [(await bob.expect(Message)).body for _ in range(60)] == [
            b"m%d" % i for i in range(60)
        ]
        assert (await bob.expect(Synced)).seq == 60
        carol = await login(url, carol_id)
        assert carol.welcome is not None
        assert carol.welcome.mailbox == 1
        delivered = await carol.expect(DirectDelivery)
        assert delivered.body == b"for carol"
        await carol.request(Ack(mailbox=delivered.seq), Ok)
        eve = await login(url, Identity("eve"))  # the secret still guards the room
        assert (
            await eve.error(JoinRoom(name="vault", token=b"w" * 32))
        ).code is ErrorCode.FORBIDDEN


async def test_sigterm_closes_sessions_with_1001_and_exits_cleanly(tmp_path: Path) -> None:
    async with relay_process("--data-dir", str(tmp_path)) as (process, url):
        alice = await login(url, Identity("alice"))
        process.send_signal(signal.SIGTERM)
        await closed_with(alice.conn, CloseCode.GOING_AWAY)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    wal = tmp_path / "relay.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed on the way out


async def test_sigterm_mid_stream_keeps_every_acknowledged_message_and_last_seen(
    tmp_path: Path,
) -> None:
    """SIGTERM while a client has 100 sends in flight: each ``sent`` that reached it
    names a stored message, nothing stored is numbered twice, and the user's last_seen
    is written on the way out (read from the database once the relay has exited)."""
    alice_id = Identity("alice")
    limits = ("--rate", "1000", "--burst", "1000")
    async with relay_process("--data-dir", str(tmp_path), *limits) as (process, url):
        alice = await login(url, alice_id)
        room = (await alice.request(CreateRoom(name="log", access=OpenAccess()), RoomReply)).room
        for i in range(100):
            await alice.send(Send(room=room.id, body=b"m%d" % i))
        process.send_signal(signal.SIGTERM)
        acked: list[int] = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await alice.recv()
                if isinstance(frame, Sent):
                    acked.append(frame.seq)
        assert alice.conn.close_code == CloseCode.GOING_AWAY
        assert await asyncio.wait_for(process.wait(), 10) == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "relay.sqlite3")) as db:
        query = "SELECT last_seen FROM users WHERE key = ?"
        (last_seen,) = db.execute(query, (alice_id.key,)).fetchone()
        query = "SELECT seq, body FROM messages WHERE room = ? ORDER BY seq"
        stored = db.execute(query, (room.id,)).fetchall()
    assert last_seen is not None  # alice went offline on the way out
    seqs = [seq for seq, _ in stored]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, none twice
    assert set(acked) <= set(seqs)
    assert [body for _, body in stored] == [b"m%d" % i for i in range(len(stored))]


async def test_no_flags_just_works_with_sqlite_under_the_user_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "E2ECHAT_SERVER_PORT": "0"}
    async with relay_process(env=env) as (process, url):
        alice = await login(url, Identity("alice"))
        await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert (tmp_path / "e2echat-server" / "relay.sqlite3").is_file()


def test_cli_reports_bad_settings_with_exit_code_2() -> None:
    result = CliRunner().invoke(app, ["--port", "99999"])
    assert result.exit_code == 2
    assert "'port' must be 0..65535" in result.output


def test_cli_help_lists_the_flags() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--data-dir",
        "--memory",
        "--redis",
        "--tls-cert",
        "--origins",
        "--max-body",
        "--config",
    ):
        assert flag in result.output


def test_cli_reads_the_config_file_and_reports_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("colour = 'blue'\n")
    result = CliRunner().invoke(app, ["--config", str(path)])
    assert result.exit_code == 2
    assert "Unknown setting 'colour'" in result.output


def test_cli_refuses_an_unknown_server_variable_with_exit_code_2() -> None:
    env = {"E2ECHAT_SERVER_MAX_MEMBER": "5000"}
    for command in (["admin", "stats"], []):  # the relay last: before, it just ran
        result = CliRunner().invoke(app, ["--memory", *command], env=env)
        assert result.exit_code == 2, result.output
        assert "Unknown setting 'E2ECHAT_SERVER_MAX_MEMBER' in the environment" in result.output


def test_cli_reports_a_taken_port_with_exit_code_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["--memory", "--port", str(port)])
    assert result.exit_code == 1
    assert "cannot start" in result.output


def test_cli_never_says_cannot_start_without_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    async def times_out(relay: Relay) -> None:
        raise TimeoutError  # no text of its own: its type is the reason

    monkeypatch.setattr(Relay, "start", times_out)
    result = CliRunner().invoke(app, ["--memory", "--port", "0"])
    assert result.exit_code == 1
    assert result.output == "e2echat-server: cannot start: TimeoutError\n"


def test_cli_says_which_tls_file_does_not_load_and_why(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    cert, key, not_pem = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "notes.txt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    other.private_key_pem.write_to_path(str(key))
    not_pem.write_text("not a certificate\n")
    for pair, why in [
        ((not_pem, key), f"{not_pem} holds no PEM certificate"),
        ((cert, not_pem), f"{not_pem} holds no PEM private key"),
        ((cert, key), "the key is not the certificate's"),
    ]:
        flags = ["--tls-cert", str(pair[0]), "--tls-key", str(pair[1])]
        result = CliRunner().invoke(app, ["--memory", "--port", "0", *flags])
        assert result.exit_code == 1
        assert result.output == (
            f"e2echat-server: cannot start: TLS certificate {pair[0]} with key {pair[1]}: {why}\n"
        )


def test_cli_names_the_tls_file_it_cannot_read(tmp_path: Path) -> None:
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    result = CliRunner().invoke(
        app, ["--memory", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)]
    )
    assert result.exit_code == 1
    assert f"cannot start: TLS certificate {cert} with key {key}" in result.output


async def test_a_relay_in_a_pod_of_a_service_named_e2echat_server_starts_and_says_so() -> None:
    """Kubernetes gives the pod E2ECHAT_SERVER_* service links: the relay listens as
    asked, and logs which variables it took for links."""
    env = {**os.environ, **KUBERNETES_LINKS}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "e2echat_server", "--memory", "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = await line_saying(process.stderr, b"service_links_ignored")
        assert b"E2ECHAT_SERVER_PORT,E2ECHAT_SERVER_PORT_8765_TCP," in line
        url = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
        await (await login(url.strip(), Identity("alice"))).close()
    finally:
        process.kill()
        await process.wait()
