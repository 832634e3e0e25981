"""docs/crypto.md and tests/vectors/ stay in step: the spec's "Known-answer vectors"
section lists every vector file and every field in it, and nothing that is not there."""

import json
import re
from pathlib import Path
from typing import Any

from e2echat.crypto.message import (
    HEADER_SIZE,
    MAX_BODY,
    MAX_PAYLOAD,
    MIN_BODY,
    PAD_BLOCK,
)
from e2echat.crypto.primitives import SIGNATURE_SIZE, TAG_SIZE

ROOT = Path(__file__).parent.parent.parent
VECTORS = ROOT / "tests" / "vectors"
SPEC = ROOT / "docs" / "crypto.md"

_FILE_HEADING = re.compile(r"^### `([a-z_]+)\.json`", re.MULTILINE)
_FIELD_ROW = re.compile(r"^\| `([a-z0-9_\[\].]+)` \|", re.MULTILINE)


def spec_fields() -> dict[str, list[str]]:
    """Vector file name -> the fields its table in crypto.md names, in order."""
    text = SPEC.read_text()
    section = text[text.index("\n## Known-answer vectors") :]
    section = section[: section.index("\n## ", 1)]
    headings = list(_FILE_HEADING.finditer(section))
    tables: dict[str, list[str]] = {}
    for number, heading in enumerate(headings):
        end = headings[number + 1].start() if number + 1 < len(headings) else len(section)
        assert heading.group(1) not in tables, f"{heading.group(1)}.json is listed twice"
        tables[heading.group(1)] = _FIELD_ROW.findall(section[heading.end() : end])
    return tables


def vector_fields(value: Any, prefix: str = "") -> list[str]:
    """Every field path of a vector file: ``a``, and ``a[].b`` for objects in list ``a``."""
    paths: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.append(path)
            paths.extend(vector_fields(item, path))
    elif isinstance(value, list):
        for item in value:
            paths.extend(vector_fields(item, f"{prefix}[]"))
    return list(dict.fromkeys(paths))


def test_vector_paths_flatten_nested_lists() -> None:
    assert vector_fields({"a": 1, "b": [{"c": 2}, {"c": 3, "d": [4]}]}) == [
        "a",
        "b",
        "b[].c",
        "b[].d",
    ]


def test_the_spec_lists_every_vector_file_and_only_those() -> None:
    files = sorted(path.stem for path in VECTORS.glob("*.json"))
    assert sorted(spec_fields()) == files


def test_every_field_the_spec_names_is_in_its_file_and_every_field_is_named() -> None:
    for name, named in spec_fields().items():
        assert len(named) == len(set(named)), f"{name}.json: a field is listed twice"
        present = vector_fields(json.loads((VECTORS / f"{name}.json").read_text()))
        assert sorted(named) == sorted(present), (
            f"{name}.json: spec names {sorted(set(named) - set(present))} not in the file;"
            f" file has {sorted(set(present) - set(named))} the spec does not name"
        )


def test_the_body_sizes_the_spec_states_are_the_codes() -> None:
    """Section 8.1's range: the smallest body and the largest that fits the body limit."""
    largest = HEADER_SIZE + MAX_PAYLOAD + 1 + TAG_SIZE + SIGNATURE_SIZE
    assert largest <= MAX_BODY < largest + PAD_BLOCK
    stated = f"bodies are {MIN_BODY} to {largest:,} bytes"
    assert stated in " ".join(SPEC.read_text().split())
    assert f"| room body | {MIN_BODY} .. {largest:,} bytes" in SPEC.read_text()
