"""Echo (RFC 862) and discard (RFC 863) over TCP as asyncio stream handlers; both close their side only
after the peer's FIN, so a client that half-closes gets every byte back before the end of the stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

CHUNK = 1 << 16


async def finish(writer: asyncio.StreamWriter) -> None:
    """Send our FIN (after whatever is queued) and wait until the transport is gone; a peer that has
    already reset the connection is not an error for a server."""
    with contextlib.suppress(ConnectionError, OSError):
        if not writer.is_closing() and writer.can_write_eof():
            writer.write_eof()
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte received, including what arrives with or just before the peer's FIN; then
    FIN. `drain()` after each chunk keeps at most one chunk beyond the transport's high-water mark."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError as e:  # reset by the peer: nothing left to echo to
        log.debug("echo %s: %r", writer.get_extra_info("peername"), e)
    finally:
        await finish(writer)


async def tcp_discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and drop everything; never send data; FIN once the peer's FIN has arrived."""
    try:
        while await reader.read(4 * CHUNK):
            pass
    except ConnectionError as e:
        log.debug("discard %s: %r", writer.get_extra_info("peername"), e)
    finally:
        await finish(writer)
