"""Chart bot: `!chart` posts an SVG bar chart of who said how much in the room.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/chart_bot.py ws://127.0.0.1:8765/
"""

import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import e2echat

log = logging.getLogger("chart-bot")


def bar_chart(counts: Counter[str]) -> str:
    rows = counts.most_common(10)
    bars = "".join(
        f'<rect x="120" y="{30 * i + 10}" width="{20 * n}" height="20" fill="teal"/>'
        f'<text x="110" y="{30 * i + 25}" text-anchor="end">{escape(name)}</text>'
        for i, (name, n) in enumerate(rows)
    )
    height = 30 * len(rows) + 20
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="{height}">{bars}</svg>'


async def setup(chat: e2echat.Client) -> None:
    @chat.on(e2echat.Message)
    async def chart(msg: e2echat.Message) -> None:
        if msg.text != "!chart":
            return
        history = await msg.room.history(limit=1000)
        counts = Counter(m.sender.name for m in history if not m.file)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "activity.svg"
            path.write_text(bar_chart(counts))
            sending = msg.room.send_file(path, caption=f"Who spoke in #{msg.room.name}")
            async for step in sending:  # the newest step when the loop is slower
                log.info("chart: %.0f%%, %.0f s left", 100 * step.fraction, step.eta or 0)
            await sending  # the file message, once sent (or the TransferError)

    await chat.room("stats", create=True)


if __name__ == "__main__":
    e2echat.run(setup, sys.argv[1], name="chart-bot")
