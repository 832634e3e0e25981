"""Benchmark of the crypto core against the bare PyNaCl calls it is made of.

Run:  uv run python bench/bench_crypto.py [--quick]

Pinned to one CPU. Reports, per call, the median over repeats of:
- encrypt+sign of a 256-byte payload (``CryptoSession.encrypt``, steady state: no share
  due) beside the bare calls: 2 BLAKE2b, randombytes(24), pad, XChaCha20-Poly1305, Ed25519;
- verify+decrypt (``CryptoSession.receive``) beside: Ed25519 verify, 2 BLAKE2b,
  XChaCha20-Poly1305 open, unpad;
- a rotation in a 1,000-member room (``member_left`` + ``encrypt``: new chain and 1,000
  or more shares) beside as many Ed25519 signs + sealed boxes of the same sizes.
Goals (issue 3): overhead <= 1.5x the bare calls; rotation <= 200 ms.
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable

import nacl.bindings as sodium

from e2echat.crypto import AnnouncedMember, CryptoSession, Identity, MemoryStore, Policy, Text
from e2echat.crypto.message import HEADER_SIZE, PAD_BLOCK
from e2echat.crypto.payload import encode_payload
from e2echat.crypto.prekeys import new_prekey

NOW = 1_800_000_000_000
ROOM = bytes(16)
STEADY = Policy(rotate_messages=10**9)


def paired(
    ours: Callable[[int], None], bare: Callable[[int], None], calls: int, repeats: int
) -> tuple[float, float]:
    """Median seconds per call of ``ours(calls)`` and ``bare(calls)``, timed alternately
    so that drift of the shared machine hits both sides alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, sink in ((ours, samples[0]), (bare, samples[1])):
            start = time.perf_counter()
            run(calls)
            sink.append((time.perf_counter() - start) / calls)
    return statistics.median(samples[0]), statistics.median(samples[1])


def payload_of_size(size: int) -> Text:
    """A text payload whose JSON encoding is exactly ``size`` bytes."""
    empty = len(encode_payload(Text("", (), NOW)))
    payload = Text("x" * (size - empty), (), NOW)
    assert len(encode_payload(payload)) == size
    return payload


def session(name: bytes, policy: Policy) -> tuple[CryptoSession, AnnouncedMember]:
    identity = Identity(name * 32)
    crypto = CryptoSession(identity, MemoryStore(), policy=policy)
    return crypto, AnnouncedMember(identity.public_key, name.hex(), crypto.current_prekey(NOW))


def bench_messages(calls: int, repeats: int) -> dict[str, float]:
    alice, alice_member = session(b"\x01", STEADY)
    bob, bob_member = session(b"\x02", STEADY)
    alice.enter_room(ROOM, [alice_member, bob_member], NOW)
    bob.enter_room(ROOM, [alice_member, bob_member], NOW)
    payload = payload_of_size(256)
    first = alice.encrypt(ROOM, payload, NOW)
    for direct in first.directs:
        bob.receive_direct(alice_member.key, direct.body, NOW)
    bob.receive(ROOM, alice_member.key, first.body, NOW)

    def encrypt(n: int) -> None:
        for _ in range(n):
            alice.encrypt(ROOM, payload, NOW)

    # made before the encrypt run advances alice's chain past what bob could follow
    bodies = [alice.encrypt(ROOM, payload, NOW).body for _ in range(calls * repeats)]
    decrypted: list[int] = []

    def receive(n: int) -> None:
        for body in bodies[:n]:
            decrypted.append(len(bob.receive(ROOM, alice_member.key, body, NOW).messages))
        del bodies[:n]

    secret_key = sodium.crypto_sign_seed_keypair(b"\x01" * 32)[1]
    public_key = alice_member.key
    plaintext = encode_payload(payload)
    ck = bytes(32)
    header = bytes(HEADER_SIZE)

    def bare_encrypt(n: int) -> None:
        for _ in range(n):
            mk = sodium.crypto_generichash_blake2b_salt_personal(
                b"\x01", digest_size=32, key=ck, person=b"e2echat-mk-v1"
            )
            sodium.crypto_generichash_blake2b_salt_personal(
                b"\x02", digest_size=32, key=ck, person=b"e2echat-ck-v1"
            )
            nonce = sodium.randombytes(24)
            padded = sodium.sodium_pad(plaintext, PAD_BLOCK)
            ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, header, nonce, mk)
            sodium.crypto_sign(header + ct, secret_key)

    mk = sodium.crypto_generichash_blake2b_salt_personal(
        b"\x01", digest_size=32, key=ck, person=b"e2echat-mk-v1"
    )
    nonce = bytes(24)
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        sodium.sodium_pad(plaintext, PAD_BLOCK), header, nonce, mk
    )
    signed = sodium.crypto_sign(header + ct, secret_key)

    def bare_decrypt(n: int) -> None:
        for _ in range(n):
            sodium.crypto_sign_open(signed, public_key)
            key = sodium.crypto_generichash_blake2b_salt_personal(
                b"\x01", digest_size=32, key=ck, person=b"e2echat-mk-v1"
            )
            sodium.crypto_generichash_blake2b_salt_personal(
                b"\x02", digest_size=32, key=ck, person=b"e2echat-ck-v1"
            )
            padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, header, nonce, key)
            sodium.sodium_unpad(padded, PAD_BLOCK)

    encrypted, bare_encrypted = paired(encrypt, bare_encrypt, calls, repeats)
    decrypt, bare_decrypted = paired(receive, bare_decrypt, calls, repeats)
    if sum(decrypted) != calls * repeats:
        raise SystemExit("benchmark bug: not every message decrypted")
    return {
        "encrypt": encrypted,
        "bare_encrypt": bare_encrypted,
        "decrypt": decrypt,
        "bare_decrypt": bare_decrypted,
    }


def bench_rotation(shares: int, repeats: int) -> dict[str, float]:
    """Each rotation removes one member, so the room starts with enough members that the
    last timed rotation still shares to ``shares`` members (earlier ones share to more)."""
    owner, owner_member = session(b"\x01", STEADY)
    roster = [owner_member]
    for number in range(shares + repeats + 1):
        identity = Identity(number.to_bytes(4, "big") * 8)
        prekey = new_prekey(identity, NOW, set()).signed
        roster.append(AnnouncedMember(identity.public_key, f"m{number}", prekey))
    owner.enter_room(ROOM, roster, NOW)
    payload = payload_of_size(256)
    owner.encrypt(ROOM, payload, NOW)
    leaving = iter(roster[1:])
    sizes: list[int] = []

    def rotate(_: int) -> None:
        owner.member_left(ROOM, next(leaving).key, NOW)
        outgoing = owner.encrypt(ROOM, payload, NOW)
        sizes[:] = [len(outgoing.directs), len(outgoing.directs[0].body)]

    rotate(1)
    # the same JSON size as our shares: body = 6-byte prefix + sealed box + inner + signature
    inner = b"x" * (sizes[1] - 6 - sodium.crypto_box_SEALBYTES - 64)
    secret_key = sodium.crypto_sign_seed_keypair(b"\x01" * 32)[1]
    recipient = sodium.crypto_box_keypair()[0]

    def bare(_: int) -> None:
        for _ in range(sizes[0]):
            sodium.crypto_box_seal(inner + sodium.crypto_sign(inner, secret_key)[:64], recipient)

    rotation, bare_rotation = paired(rotate, bare, 1, repeats)
    return {"rotation": rotation, "bare_rotation": bare_rotation, "shares": float(sizes[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    calls, repeats = (200, 3) if args.quick else (2000, 9)
    m = bench_messages(calls, repeats)
    r = bench_rotation(1000, 3 if args.quick else 7)  # a room of 1,000 others or more
    us = 1e6
    print("| operation | ours | bare PyNaCl calls | ratio |")
    print("|---|---|---|---|")
    print(
        f"| encrypt+sign, 256-byte payload | {m['encrypt'] * us:.1f} µs "
        f"| {m['bare_encrypt'] * us:.1f} µs | {m['encrypt'] / m['bare_encrypt']:.2f}x |"
    )
    print(
        f"| verify+decrypt, 256-byte payload | {m['decrypt'] * us:.1f} µs "
        f"| {m['bare_decrypt'] * us:.1f} µs | {m['decrypt'] / m['bare_decrypt']:.2f}x |"
    )
    print(
        f"| rotation, 1,000-member room (>= {int(r['shares'])} shares + 1 message) "
        f"| {r['rotation'] * 1e3:.1f} ms | {r['bare_rotation'] * 1e3:.1f} ms "
        f"| {r['rotation'] / r['bare_rotation']:.2f}x |"
    )


if __name__ == "__main__":
    main()
