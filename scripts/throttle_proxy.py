"""A TCP proxy that limits the bytes it passes towards the client: a wide-area link to an upstream
hub, for scripts/bench-mirror.sh. Requests pass unthrottled (they are small).

The rate is shared by all connections (a link of that capacity), or with `per-connection` each
connection gets it on its own: a distant server, where one TCP stream's rate is bounded by its
window over the round trip and clients open several streams to go faster.

    python3 scripts/throttle_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT MEGABYTES_PER_SECOND [per-connection]
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


async def pipe(reader, writer, link=None):
    try:
        while data := await reader.read(PIECE):
            if link:
                await link.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(port: int, target: str, megabytes_per_second: float, per_connection: bool) -> None:
    host, target_port = target.rsplit(":", 1)
    shared = Link(megabytes_per_second * 1e6)

    async def serve(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(target_port))
        except OSError:
            client_writer.close()
            return
        link = Link(megabytes_per_second * 1e6) if per_connection else shared
        await asyncio.gather(
            pipe(client_reader, upstream_writer),
            pipe(upstream_reader, client_writer, link),
        )

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # A shell starts background jobs with SIGINT ignored; the benchmark stops its servers with it.
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    per_connection = sys.argv[4:] == ["per-connection"]
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), per_connection))
