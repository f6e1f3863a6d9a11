"""A TCP proxy that limits the bytes it passes towards the client: a wide-area link to an upstream
hub, for scripts/bench-mirror.sh. Requests pass unthrottled (they are small).

The rate is shared by all connections (a link of that capacity), or with `per-connection` each
connection gets it on its own: a distant server, where one TCP stream's rate is bounded by its
window over the round trip and clients open several streams to go faster. A rate of 0 is no
limit. `rtt=MS` holds every byte MS/2 milliseconds in each direction: the link's round trip.

    python3 scripts/throttle_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT MEGABYTES_PER_SECOND [per-connection] [rtt=MS]
"""

import asyncio
import signal
import sys
import time

PIECE = 256 * 1024


class Link:
    """A token bucket of `rate` bytes per second, shared by every connection."""

    def __init__(self, rate: float):
        self.rate = rate
        self.allowed_at = time.monotonic()

    async def take(self, n: int) -> None:
        now = time.monotonic()
        self.allowed_at = max(self.allowed_at, now) + n / self.rate
        delay = self.allowed_at - n / self.rate - now
        if delay > 0:
            await asyncio.sleep(delay)


async def pipe(reader, writer, link=None, delay=0.0):
    """Passes what `reader` reads on to `writer`, at the link's rate, each read `delay` seconds
    after it arrived (a queue keeps the order while later reads arrive)."""
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver():
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()

    delivering = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(PIECE):
            if link:
                await link.take(len(data))
            await queue.put((time.monotonic() + delay, data))
        await queue.put(None)
        await delivering
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        delivering.cancel()
        writer.close()


async def main(port: int, target: str, megabytes_per_second: float, per_connection: bool, rtt: float) -> None:
    host, target_port = target.rsplit(":", 1)
    limited = megabytes_per_second > 0
    shared = Link(megabytes_per_second * 1e6) if limited else None

    async def serve(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(target_port))
        except OSError:
            client_writer.close()
            return
        link = Link(megabytes_per_second * 1e6) if per_connection and limited else shared
        await asyncio.gather(
            pipe(client_reader, upstream_writer, delay=rtt / 2),
            pipe(upstream_reader, client_writer, link, delay=rtt / 2),
        )

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # A shell starts background jobs with SIGINT ignored; the benchmark stops its servers with it.
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    flags = sys.argv[4:]
    per_connection = "per-connection" in flags
    rtt_ms = next((float(f[4:]) for f in flags if f.startswith("rtt=")), 0.0)
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), per_connection, rtt_ms / 1000))
