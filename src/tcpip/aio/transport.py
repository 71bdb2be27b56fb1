"""TcpTransport: one tcpip TCP connection as a real asyncio.Transport (streams, protocols, start_tls)."""

from __future__ import annotations

import asyncio
import errno
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tcpip.aio.driver import DETACHED, Early, TcpDriver
from tcpip.aio.flow import WriteFlowControl
from tcpip.aio.sockinfo import StackSocket
from tcpip.aio.writeq import WriteQueue
from tcpip.core.tcp.state import EV_CLOSED, EV_CONNECTED, EV_DATA, EV_EOF, EV_SENT
from tcpip.netif.device import Buffer
from tcpip.wire.ipv4 import ip_str

if TYPE_CHECKING:
    from tcpip.aio.server import TcpServer
    from tcpip.core.tcp.conn import Connection

log = logging.getLogger("tcpip.tcp")
_LOG_WRITES_AFTER_LOST = 5  # asyncio's constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES
# data_received() gets at most this much at a time (asyncio's selector transport: up to 256 KiB per
# sock.recv). Below malloc's mmap threshold (128 KiB) each piece reuses warm heap memory; one piece per
# burst (MBs with offload) costs fresh pages, copied into again by the StreamReader: ~2x the CPU per MB.
_READ_MAX = 64 * 1024


class TcpTransport(WriteFlowControl):
    """One TCP connection. Data beyond the connection's send buffer waits here; only those bytes count
    for pause_writing/resume_writing. Protocol callbacks come from the driver's event delivery (a loop
    callback), never from inside a transport method; pause_writing is synchronous, as in asyncio.

    What the protocol observes follows asyncio's selector transport over a Linux socket: an error the
    core reports while the transport is not reading (paused, or after an EOF that eof_received() kept
    open) and holds no unsent bytes waits for the next write(), as a kernel socket's pending error
    waits for the next send(); an orderly end waits for close() when eof_received() kept it open."""

    _start_tls_compatible = True
    _buffer: WriteQueue

    def __init__(self, driver: TcpDriver, conn: Connection, server: TcpServer | None = None) -> None:
        peername, sockname = (ip_str(conn.remote_addr), conn.remote_port), (ip_str(conn.local_addr), conn.local_port)
        super().__init__({"peername": peername, "sockname": sockname,
                          "socket": StackSocket(sockname, peername), "sslcontext": None})
        self._driver = driver
        self._loop = driver.loop
        self._conn = conn
        self._server = server
        self.remote_addr = conn.remote_addr
        self._protocol = None
        self._buffered = False
        self._started = False  # connection_made called
        self._closing = False  # close() or abort() called, or the connection is gone
        self._lost = False  # connection_lost called or scheduled
        self._lost_exc: BaseException | None = None
        self._eof_requested = False  # write_eof() called
        self._shutdown_called = False
        self._close_called = False
        self._paused = False
        self._fin = False  # the peer's FIN arrived (EV_EOF)
        self._eof_delivered = False
        self._core_closed = False  # EV_CLOSED arrived
        self._core_exc: BaseException | None = None
        self._buffer = WriteQueue()  # bytes beyond the connection's send buffer (immutable ones uncopied)
        # asyncio's _conn_lost: non-zero once close() found nothing buffered or the connection is lost;
        # write() then drops its data (it counts them, and warns from the fifth on, as asyncio does).
        self._conn_lost = 0
        self._flush_due = False  # write() queued bytes without output: _flush_writes is scheduled
        self.connected: asyncio.Future[None] | None = None  # active open: set by EV_CONNECTED
        early = conn.user
        if type(early) is Early:  # events that happened in the accept queue
            self._fin = early.fin
            self._core_closed, self._core_exc = early.closed, self._as_seen(early.exc)
        conn.user = self
        driver.transports.add(self)
        if server is not None:
            server.attach(self)

    def __repr__(self) -> str:
        state = "closed" if getattr(self, "_lost", True) else "closing" if self._closing else "open"
        name = self._extra.get("sockname") if hasattr(self, "_extra") else None
        peer = self._extra.get("peername") if hasattr(self, "_extra") else None
        return f"<TcpTransport {state} {name} -> {peer}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # Never touch the loop or the core here: the loop may be closed, the core mid-call.
        if not getattr(self, "_lost", True) and not getattr(self, "_closing", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, protocol: asyncio.BaseProtocol, waiter: asyncio.Future[None] | None) -> None:
        """Give the connection its protocol: connection_made on the next loop turn, then any data."""
        if self._lost:
            raise self._lost_exc or ConnectionAbortedError(errno.ECONNABORTED, "Connection aborted")
        self.set_protocol(protocol)
        self._loop.call_soon(self._connection_made, waiter)

    def _connection_made(self, waiter: asyncio.Future[None] | None) -> None:
        self._started = True
        try:
            self._protocol.connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            self._fatal_error(exc, "Fatal error: protocol.connection_made() call failed.")
            return
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._read()
        self._driver.kick()

    def core_event(self, kind: int, detail: Any) -> None:
        """One event of the core, from the driver's delivery."""
        if kind == EV_DATA:
            self._read()
        elif kind == EV_SENT:
            self._push()
        elif kind == EV_EOF:
            self._fin = True
            self._read()
        elif kind == EV_CONNECTED:
            self._driver.connecting.discard(self)
            if self.connected is not None and not self.connected.done():
                self.connected.set_result(None)
        elif kind == EV_CLOSED:
            self._core_closed, self._core_exc = True, self._as_seen(detail)
            fut = self.connected
            if fut is not None and not fut.done():  # the connect failed
                fut.set_exception(detail if detail is not None else ConnectionAbortedError(
                    errno.ECONNABORTED, "Connection aborted"))
                self._detach()
                return
            self._read()
            self._maybe_lost()

    def connect_failed(self, exc: BaseException) -> None:
        """Fail a pending active open (ARP gave up, or the stack went down) and drop the connection."""
        fut = self.connected
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        self.abandon()

    def abandon(self) -> None:
        """Drop a connection that never got a protocol (cancelled or failed connect)."""
        if not self._core_closed:
            self._conn.abort(self._driver.now())
        self._lost = self._closing = True
        self._detach()
        self._driver.kick()

    def _detach(self) -> None:
        self._conn.user = DETACHED
        d = self._driver
        d.transports.discard(self)
        d.connecting.discard(self)
        server, self._server = self._server, None
        if server is not None:
            server.detach(self)

    def _as_seen(self, exc: BaseException | None) -> BaseException | None:
        """The core's error as a Linux socket reports it: a reset in CLOSE_WAIT is EPIPE (tcp_reset())."""
        if isinstance(exc, ConnectionResetError) and self._fin and not (
                self._shutdown_called or self._close_called):
            return BrokenPipeError(errno.EPIPE, "Broken pipe")
        return exc

    def _watching(self) -> bool:
        """Would asyncio's transport notice a socket error now: is it reading, or waiting to send?"""
        return (not self._paused and not self._eof_delivered) or bool(self._buffer)

    def _maybe_lost(self) -> None:
        """connection_lost once the core is done, when asyncio's transport would report it: after
        close() (with the error only if bytes were still waiting here: asyncio reports None once its
        buffer is handed to the kernel), after an error it notices (see _watching), never for an orderly
        end that eof_received() kept open or whose data and EOF are still undelivered (paused)."""
        if not self._core_closed or self._lost or not self._started:
            return
        exc = self._core_exc
        if self._closing:
            if not self._buffer:
                exc = None
        elif exc is None or not self._watching():
            return
        self._lost = self._closing = True
        self._conn_lost += 1
        self._lost_exc = exc
        self._buffer.clear()
        self._call_connection_lost(exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._started:
                self._protocol.connection_lost(exc)
        finally:
            self._detach()

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError):
            log.debug("%r: %s", self, message, exc_info=exc)
        else:
            self._loop.call_exception_handler({"message": message, "exception": exc, "transport": self,
                                               "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        """Abort (RST if synchronized) and report `exc` to connection_lost on the next loop turn."""
        if self._lost:
            return
        self._lost = self._closing = True
        self._conn_lost += 1
        self._lost_exc = exc
        self._buffer.clear()
        if not self._core_closed:
            self._core_closed = True
            self._conn.abort(self._driver.now())
            self._driver.kick()
        self._loop.call_soon(self._call_connection_lost, exc)

    # -- asyncio.BaseTransport ----------------------------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """FIN after everything written; connection_lost(None) once the peer has acknowledged it."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._conn_lost += 1  # later writes are dropped (with bytes still buffered they are sent)
            self._send_fin()
        if self._core_closed:  # already over (an orderly end kept open, or an unnoticed error)
            self._loop.call_soon(self._maybe_lost)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    # -- reading ------------------------------------------------------------------------------------
    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        """Stop delivering; the receive buffer fills and the advertised window closes."""
        if not self.is_reading():
            return
        self._paused = True

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        self._read()
        self._driver.kick()  # the window update that recv() may have queued

    def _read(self) -> None:
        """Deliver readable bytes (then EOF) while reading is on."""
        if not self._started or self._lost:
            return
        conn = self._conn
        rb = conn.rcvbuf  # its `readable`: conn.readable without the extra call, twice per read
        now = self._driver.now
        took = False  # pieces read without their window update: one for all of them, after the loop
        try:
            while not self._paused and not self._closing:
                n = rb.readable
                if not n:
                    break
                took = True
                if self._buffered:
                    buf = memoryview(self._protocol.get_buffer(n)).cast("B")
                    size = buf.nbytes
                    if not size:
                        raise RuntimeError("get_buffer() returned an empty buffer")
                    data = conn.recv(now(), min(n, size), False)
                    buf[:len(data)] = data
                    self._protocol.buffer_updated(len(data))
                else:
                    self._protocol.data_received(conn.recv_piece(_READ_MAX))
            if took:
                took = False
                conn.window_update(now())
            if (self._fin and not self._eof_delivered and not self._paused and not self._closing
                    and not rb.readable):
                self._eof_delivered = True
                if not self._protocol.eof_received():
                    self.close()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if took:
                conn.window_update(now())  # what was read before the failure
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return
        self._maybe_lost()

    # -- writing ------------------------------------------------------------------------------------
    def write(self, data: Buffer) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof_requested:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= _LOG_WRITES_AFTER_LOST:
                log.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if self._core_closed:  # an error nobody looked at yet: send() reports it, as on a socket
            exc = self._core_exc or BrokenPipeError(errno.EPIPE, "Broken pipe")
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        if not self._buffer.size:
            # Queued only: the output runs once for every write of this loop turn (_flush_writes), not per
            # write (a writer's write + drain loop makes several writes per turn while not paused)
            n = self._conn.send(data, self._driver.now(), False)
            if n and not self._flush_due:
                self._flush_due = True
                self._loop.call_soon(self._flush_writes)  # before kick(): it runs before that drain
            if n == len(data):
                self._driver.kick()
                return
            data = memoryview(data)[n:]
        self._buffer.add(data)  # copied unless immutable: the caller may reuse its buffer at once
        self._maybe_pause_protocol()
        self._driver.kick()

    def _flush_writes(self) -> None:
        """The output of this turn's writes (Connection.flush), then a drain for its frames."""
        self._flush_due = False
        if not self._lost:
            self._conn.flush(self._driver.now())
            self._driver.kick()

    def writelines(self, list_of_data: Iterable[Buffer]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._closing or self._eof_requested:
            return
        self._eof_requested = True
        if not self._buffer:
            if self._core_closed:  # shutdown(2) of a socket already reset (an unnoticed error)
                raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
            self._send_fin()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """RST now (like close() with SO_LINGER 0); connection_lost(None) on the next loop turn."""
        self._force_close(None)

    def _send_fin(self) -> None:
        """FIN after the queued data: shutdown() for write_eof(), close() (which also orphans the
        connection in the core: later data is answered by RST, like Linux) for close()."""
        if self._core_closed:
            return
        if self._closing:
            if self._close_called:
                return
            self._close_called = True
            self._conn.close(self._driver.now())
        else:
            if self._shutdown_called:
                return
            self._shutdown_called = True
            self._conn.shutdown(self._driver.now())
        self._driver.kick()

    def _push(self) -> None:
        """Send-buffer space was freed: move waiting bytes into the connection."""
        if self._lost:
            return
        buf = self._buffer
        if buf.size:
            conn, now = self._conn, self._driver.now()
            # Every piece that fits first, then one output for them all (not one per 64 KiB piece: each
            # would find the windows the ACK's own output just filled)
            if buf.push(lambda piece: conn.send(piece, now, False)):
                conn.flush(now)
            self._maybe_resume_protocol()
        if not buf and (self._closing or self._eof_requested):
            self._send_fin()
