"""A TCP forwarder on 127.0.0.1 between a relay and its Redis, to play the network.

`blackhole` is the cut that no socket error reports: the flows open at that moment stay
open and carry nothing either way from then on (what is sent into them is dropped), as
when a route dies or a firewall forgets the flows, while new connections pass. With
`cut_on` set, a flow dies that way as it carries those bytes towards the target: the
route failing in the middle of an exchange (`unanswered` gets what it ate). A `gate`
holds every new connection until it is set, to catch a relay in its start.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class _Flow:
    writers: list[asyncio.StreamWriter]
    dead: bool = False


@dataclass
class Forwarder:
    """Every connection accepted is forwarded to ``127.0.0.1:target_port``."""

    target_port: int
    gate: asyncio.Event | None = None
    accepted: asyncio.Event = field(default_factory=asyncio.Event)  # a first connection came
    cut_on: bytes | None = None
    unanswered: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    _flows: list[_Flow] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on an ephemeral port and return it."""
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def blackhole(self) -> int:
        """Silence every flow open now; return how many there were."""
        live = [flow for flow in self._flows if not flow.dead]
        for flow in live:
            flow.dead = True
        return len(live)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for flow in self._flows:
            for writer in flow.writers:
                writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        if self.gate is not None:
            await self.gate.wait()
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        flow = _Flow([writer, upstream_writer])
        self._flows.append(flow)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if self.cut_on is not None and source is reader and self.cut_on in data:
                        flow.dead = True
                        self.unanswered.put_nowait(data)
                    if not flow.dead:  # a dead flow drops what it carries, silently
                        sink.write(data)
                        await sink.drain()
                if not flow.dead:
                    sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
