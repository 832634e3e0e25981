"""Count the code lines of the example bots and their discord.py and matrix-nio versions.

uv run python docs/examples/comparison/count_lines.py

A code line holds a token other than a comment or a docstring: blank lines, comment-only
lines and each module's or function's docstring are not counted.
"""

import ast
import io
import tokenize
from pathlib import Path

HERE = Path(__file__).parent
ROWS = {
    "echo": ("echo_bot.py", "discord_echo.py", "nio_echo.py"),
    "!roll over two rooms, with !help": ("roll_bot.py", "discord_roll.py", "nio_roll.py"),
    "password-room greeter + notifier": ("greeter.py", "discord_greeter.py", "nio_greeter.py"),
}


def code_lines(path: Path) -> int:
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def main() -> None:
    print("| bot | e2echat | discord.py | matrix-nio |")
    print("|---|---|---|---|")
    for bot, (ours, discord, nio) in ROWS.items():
        counts = [
            code_lines(HERE.parent / ours),
            code_lines(HERE / discord),
            code_lines(HERE / nio),
        ]
        print(f"| {bot} | " + " | ".join(map(str, counts)) + " |")
    print(f"| a test of the !roll bot | {code_lines(HERE.parent / 'test_roll_bot.py')} | | |")


if __name__ == "__main__":
    main()
