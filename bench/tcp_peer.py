"""The bulk-TCP peer of bench/tcp.py, the same code on every stack: `bulk_handler` (asyncio streams;
tcpip runs it through `stack.start_server`), and, run inside a namespace,
`python bench/tcp_peer.py server HOST PORT` (the handler on the kernel's stack) or
`python bench/tcp_peer.py client HOST PORT get|put N` (a blocking kernel socket; prints JSON).

Protocol: the client sends `get N\\n` (the server sends N bytes then FIN) or `put N\\n` + N bytes + FIN
(the server reads to EOF, answers with the byte count, then FIN)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

BLOCK = memoryview(bytes(range(256)) * 1024)  # 256 KiB


async def bulk_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        cmd, n_text = (await reader.readline()).split()
        n = int(n_text)
        if cmd == b"get":
            sent = 0
            while sent < n:
                k = min(len(BLOCK), n - sent)
                writer.write(BLOCK[:k])
                sent += k
                await writer.drain()
        else:
            got = 0
            while chunk := await reader.read(1 << 18):
                got += len(chunk)
            writer.write(f"{got}\n".encode())
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def client(host: str, port: int, cmd: str, n: int) -> dict[str, object]:
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=60)
    s.sendall(f"{cmd} {n}\n".encode())
    if cmd == "get":
        buf = bytearray(1 << 18)
        got = 0
        while k := s.recv_into(buf):
            got += k
    else:
        left = n
        while left:
            left -= s.send(BLOCK[:min(left, len(BLOCK))])
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(64):
            reply += chunk
        got = int(reply or b"-1")
    dt = time.perf_counter() - t0
    s.close()
    return {"bytes": got, "seconds": dt, "ok": got == n, "mbit_s": n * 8 / dt / 1e6}


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(bulk_handler, host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if argv[0] == "server":
        asyncio.run(serve(argv[1], int(argv[2])))
    else:
        print(json.dumps(client(argv[1], int(argv[2]), argv[3], int(argv[4]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
