"""The shell's small pure parts: backoff, pacing, fan-out, request ids, paths, identity."""

import asyncio
import random
from pathlib import Path

import pytest

import e2echat
from e2echat.client.backoff import Backoff
from e2echat.client.pacing import TokenBucket
from e2echat.client.pubsub import Hub
from e2echat.client.requests import Requests
from e2echat.crypto.identity import KdfLimits
from e2echat.protocol import Error, ErrorCode, Ok

CHEAP = KdfLimits(1, 8192)


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    bounds = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(b / 2 <= d <= b for d, b in zip(delays, bounds, strict=True))
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_full_jitter_backoff_draws_anywhere_below_the_bound() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, fixed=0.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert min(delays) < 0.1  # equal jitter never goes below half the bound


def test_token_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.delay(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.delay(100.0) == pytest.approx(0.1)
    assert bucket.delay(100.0) == pytest.approx(0.2)
    assert bucket.delay(101.0) == 0.0


def test_token_bucket_says_how_long_until_a_token_without_taking_it() -> None:
    bucket = TokenBucket(rate=10, burst=1)
    assert bucket.wait(100.0) == bucket.wait(100.0) == 0.0
    assert bucket.delay(100.0) == 0.0
    assert bucket.wait(100.0) == pytest.approx(0.1)
    assert bucket.wait(100.05) == pytest.approx(0.05)
    assert bucket.wait(100.2) == 0.0


async def test_subscriptions_see_what_is_published_after_they_are_made() -> None:
    hub: Hub[int] = Hub()
    hub.publish(0)
    early, late = hub.subscribe(), None
    hub.publish(1)
    late = hub.subscribe()
    hub.publish(2)
    hub.close()
    assert [i async for i in early] == [1, 2]
    assert [i async for i in late] == [2]
    assert [i async for i in hub.subscribe()] == []


async def test_requests_route_replies_by_id_and_fail_on_disconnect() -> None:
    requests = Requests()
    first, first_reply = requests.new()
    second, second_reply = requests.new()
    assert first != second
    assert requests.resolve(Ok(id=first))
    assert not requests.resolve(Ok(id=first))
    assert not requests.resolve(Ok(id="o1"))
    assert await first_reply == Ok(id=first)
    requests.fail_all(e2echat.ConnectError("gone"))
    with pytest.raises(e2echat.ConnectError):
        await asyncio.wait_for(second_reply, 1)
    assert not requests.resolve(Error(code=ErrorCode.INTERNAL, message="x", id=second))


def test_paths_follow_e2echat_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path))
    identity = e2echat.Identity.generate()
    assert e2echat.default_identity_path() == tmp_path / "identity.key"
    store = e2echat.default_store_path(identity)
    assert store.parent == tmp_path / "stores"
    assert identity.public_key.hex() in store.name


def test_identity_round_trip_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    identity = e2echat.Identity.generate()
    path = tmp_path / "id.key"
    identity.save(path, "correct horse", limits=CHEAP)
    loaded = e2echat.Identity.load(path, "correct horse")
    assert isinstance(loaded, e2echat.Identity)
    assert loaded.public_key == identity.public_key
    assert len(loaded.fingerprint.split()) == 16
    with pytest.raises(e2echat.WrongPassphrase):
        e2echat.Identity.load(path, "wrong")
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "correct horse")
    assert e2echat.Identity.load(path).public_key == identity.public_key
    with pytest.raises(e2echat.IdentityFileError):
        e2echat.Identity.load(tmp_path / "missing.key")
    with pytest.raises(e2echat.E2EChatError, match="allow_unencrypted"):
        identity.save(tmp_path / "plain.key", None)
    with pytest.warns(UserWarning, match="WITHOUT encryption"):
        identity.save(tmp_path / "plain.key", None, allow_unencrypted=True)
    assert e2echat.Identity.load(tmp_path / "plain.key", None).public_key == identity.public_key
    assert (tmp_path / "plain.key").stat().st_mode & 0o777 == 0o600


async def test_first_connect_failure_raises_connect_error(tmp_path: Path) -> None:
    client = e2echat.Client(
        "ws://127.0.0.1:9/",
        identity=e2echat.Identity.generate(),
        name="nobody",
        store=tmp_path / "s.sqlite3",
        connect_timeout=0,
    )
    with pytest.raises(e2echat.ConnectError, match="cannot reach"):
        async with client:
            pass
    assert client.state == e2echat.ConnectionState.CLOSED


def test_invalid_names_are_refused_before_any_io() -> None:
    with pytest.raises(e2echat.E2EChatError):
        e2echat.Client("ws://x/", identity=e2echat.Identity.generate(), name="bad\u202ename")
