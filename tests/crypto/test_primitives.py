"""The direct libsodium call behind ``blake2b`` gives what PyNaCl's checked wrapper gives."""

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2echat.crypto.errors import MalformedError
from e2echat.crypto.primitives import blake2b


@given(
    st.binary(max_size=200),
    st.binary(max_size=64),
    st.binary(max_size=16),
    st.integers(min_value=16, max_value=64),
)
def test_blake2b_is_libsodiums_keyed_personalized_hash(
    data: bytes, key: bytes, person: bytes, size: int
) -> None:
    expected = sodium.crypto_generichash_blake2b_salt_personal(
        data, digest_size=size, key=key, person=person
    )
    assert blake2b(data, key=key, person=person, size=size) == expected


@pytest.mark.parametrize(
    ("key", "person", "size"), [(bytes(65), b"", 32), (b"", bytes(17), 32), (b"", b"", 15)]
)
def test_blake2b_refuses_what_libsodium_would(key: bytes, person: bytes, size: int) -> None:
    with pytest.raises(MalformedError):
        blake2b(b"data", key=key, person=person, size=size)
