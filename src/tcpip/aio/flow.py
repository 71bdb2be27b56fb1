"""WriteFlowControl: asyncio's write-buffer limits and pause_writing/resume_writing for TcpTransport."""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Any


class WriteFlowControl(asyncio.Transport):
    """High/low water marks over the bytes a transport holds beyond the connection's send buffer, with
    asyncio's defaults (64 KiB / 16 KiB) and its validation (ValueError unless high >= low >= 0)."""

    _loop: asyncio.AbstractEventLoop
    _protocol: Any
    _buffer: Sized  # the bytes held (TcpTransport: a WriteQueue)

    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._protocol_paused = False

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or len(self._buffer) <= self._high or self._protocol is None:
            return
        self._protocol_paused = True
        self._flow_call("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or len(self._buffer) > self._low:
            return
        self._protocol_paused = False
        self._flow_call("resume_writing")

    def _flow_call(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({"message": f"protocol.{name}() failed", "exception": exc,
                                               "transport": self, "protocol": self._protocol})
