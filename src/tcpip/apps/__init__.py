"""Small TCP services written against asyncio's stream API (`async def handler(reader, writer)`), so the
same code runs on asyncio's kernel sockets and on tcpip: echo, discard and an HTTP/1.1 server (h11).

    await stack.start_server(tcp_echo, None, 7)
    await stack.start_server(http_handler(lambda: status_page(stack)), None, 80)
"""

from __future__ import annotations

from tcpip.apps.http import MAX_BYTES, body_chunks, http_handler, status_page
from tcpip.apps.stream import Handler, tcp_discard, tcp_echo

__all__ = ["MAX_BYTES", "Handler", "body_chunks", "http_handler", "status_page", "tcp_discard", "tcp_echo"]
