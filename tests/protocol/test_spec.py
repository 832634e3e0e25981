"""docs/protocol.md covers every frame the code defines, and nothing it does not."""

import json
import re
from pathlib import Path
from typing import get_args

from e2echat.protocol import BlobClientFrame, BlobRelayFrame, ClientFrame, RelayFrame

SPEC = Path(__file__).parents[2] / "docs" / "protocol.md"


def _code_tags() -> set[str]:
    unions = (ClientFrame, RelayFrame, BlobClientFrame, BlobRelayFrame)
    return {cls.__struct_config__.tag for union in unions for cls in get_args(union)}


def _spec_example_tags() -> set[str]:
    return set(re.findall(r'\{"type": "([a-z_]+)"', SPEC.read_text()))


def test_spec_has_an_example_of_every_frame() -> None:
    assert _spec_example_tags() == _code_tags()


def test_spec_examples_without_placeholders_decode() -> None:
    """Examples that are complete JSON lines are real frames (placeholders are skipped)."""
    from e2echat.protocol import (
        decode_blob_client_frame,
        decode_blob_relay_frame,
        decode_client_frame,
        decode_relay_frame,
    )

    decoded = 0
    for line in SPEC.read_text().splitlines():
        if not line.startswith('{"type"') or "<" in line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # an example continued on the next line
        decoders = (
            decode_client_frame,
            decode_relay_frame,
            decode_blob_client_frame,
            decode_blob_relay_frame,
        )
        for decode in decoders:
            try:
                decode(json.dumps(obj))
                decoded += 1
                break
            except ValueError:
                pass
        else:
            raise AssertionError(f"spec example does not decode: {line}")
    assert decoded >= 8
