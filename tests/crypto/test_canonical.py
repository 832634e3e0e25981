"""Payloads and direct envelopes must be canonical JSON (crypto.md section 8.4): a body
whose payload is any other spelling of a valid value is rejected and changes nothing."""

from typing import Any

import pytest

from e2echat.crypto import Decrypted, MessageRejected, Text, decode_payload, encode_payload
from e2echat.crypto import message as message_module
from e2echat.crypto import session as session_module
from e2echat.crypto.errors import PayloadError
from tests.crypto.harness import NOW, Party, Relay

SPELLINGS = [
    lambda c: c.replace(b",", b", "),
    lambda c: c.replace(b'"ts":', b'"ts":0,"ts":'),
    lambda c: c.replace(b"hi", b"\\u0068i"),
    lambda c: c[:-1] + b',"reply_to":null}',
    lambda c: c.replace(b'{"t":"text","body":"hi",', b'{"body":"hi","t":"text",'),
]


@pytest.mark.parametrize("respell", SPELLINGS)
def test_a_noncanonical_payload_is_rejected_and_its_index_stays_unused(
    respell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    sealed: list[tuple[Any, ...]] = []

    def recording(*args: Any, **kwargs: Any) -> bytes:
        sealed.append((args, kwargs))
        return message_module.seal_body(*args, **kwargs)

    monkeypatch.setattr(session_module, "seal_body", recording)
    canonical_body = relay.send(alice, "hi")
    ((args, kwargs),) = sealed
    canonical = args[6]
    assert canonical == encode_payload(Text("hi", (), NOW))
    respelt = respell(canonical)
    assert respelt != canonical
    with pytest.raises(PayloadError):
        decode_payload(respelt)
    forged = message_module.seal_body(*args[:6], respelt, *args[7:], **kwargs)

    outcome = relay.deliver(alice, forged, bob)
    assert not outcome.messages
    assert any(isinstance(event, MessageRejected) for event in outcome.events)
    # nothing was committed: the same index still opens once, with the canonical bytes
    outcome = relay.deliver(alice, canonical_body, bob)
    assert [type(item) for item in outcome.messages] == [Decrypted]
    assert outcome.messages[0].payload == Text("hi", (), NOW)
