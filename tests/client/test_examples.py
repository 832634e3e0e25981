"""docs/bots.md shows only code that the suite runs: its examples are files under
docs/examples, tested there (docs/examples/test_*.py, collected with the suite)."""

import re
from pathlib import Path

DOCS = Path(__file__).parents[2] / "docs"
EXAMPLES = DOCS / "examples"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_every_python_example_in_the_guide_is_a_tested_file() -> None:
    blocks = BLOCK.findall((DOCS / "bots.md").read_text())
    assert len(blocks) >= 6
    sources = {path.name: path.read_text() for path in EXAMPLES.glob("*.py")}
    for block in blocks:
        assert any(block in source for source in sources.values()), block[:200]


def test_every_example_bot_is_exercised_by_a_test() -> None:
    tests = "".join(path.read_text() for path in EXAMPLES.glob("test_*.py"))
    for path in EXAMPLES.glob("*.py"):
        if path.name.startswith("test_") or path.name == "conftest.py":
            continue
        assert f"import {path.stem}\n" in tests, path.name
