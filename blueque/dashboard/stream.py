"""The server-sent events of one page: a snapshot, then what changed, with keepalives.

One EventSource per page (browsers allow six HTTP/1.1 connections per host). The page's
`Listener` is registered before the generator starts, so the snapshot that opens the stream
and the messages after it leave no gap (see `blueque.dashboard.hub`). Frames are the hub's
pre-serialized bytes; a comment line every `keepalive_s` keeps proxies from closing an idle
stream, and `X-Accel-Buffering: no` keeps nginx from holding it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from blueque.aio.waiting import wait_event
from blueque.dashboard.hub import Hub, Listener

HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
RETRY_MS = 2000
KEEPALIVE = b": keepalive\n\n"


async def frames(hub: Hub, listener: Listener, keepalive_s: float) -> AsyncGenerator[bytes, None]:
    """The page's stream until it goes away; unregisters it at the end."""
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        yield (await hub.snapshot(listener)).frame
        while True:
            if not listener.buffer and not listener.behind:
                listener.wake.clear()
                # Not asyncio.wait_for: on 3.11 it drops a cancellation that comes with a
                # message, and the stream of a page that left, or of a server that stops, goes
                # on (blueque.aio.waiting).
                if not await wait_event(listener.wake, keepalive_s):
                    yield KEEPALIVE
                    continue
            if listener.behind:  # too far behind: a fresh snapshot replaces the backlog
                yield (await hub.snapshot(listener)).frame
                continue
            taken = listener.take()
            if taken:  # one write for a burst
                yield b"".join(message.frame for message in taken)
    finally:
        hub.unregister(listener)
