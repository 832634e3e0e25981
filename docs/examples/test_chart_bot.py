"""The chart bot of docs/bots.md answers !chart with an SVG file others can fetch."""

from pathlib import Path

import chart_bot

from e2echat.testing import ClientFactory, wait_for


async def test_chart_bot_posts_a_chart(e2echat_client: ClientFactory, tmp_path: Path) -> None:
    await e2echat_client("chart-bot", setup=chart_bot.setup)
    alice = await e2echat_client("alice")
    room = await alice.room("stats")
    inbox = alice.messages()
    await room.send("<b>hello</b>")
    await room.send("!chart")
    chart = await wait_for(inbox, lambda msg: msg.file is not None)
    assert chart.file is not None
    assert (chart.file.name, chart.file.media_type) == ("activity.svg", "image/svg+xml")
    saved = await chart.download(tmp_path)
    svg = saved.read_text()
    assert svg.startswith("<svg")
    assert ">alice</text>" in svg
