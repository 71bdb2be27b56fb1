"""TAP offload mode's kernel side and I/O: IFF_VNET_HDR / TUNSETVNETHDRSZ / TUNSETOFFLOAD, the read loop of a
TapDevice (both framings) and the write loop of one whose frames carry a virtio_net_hdr (mixed into
`tcpip.netif.tap.TapDevice`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import logging
import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.wire import virtio

if TYPE_CHECKING:
    from tcpip.core.echo import AnswerFn
    from tcpip.core.host import Answerer
    from tcpip.netif.device import AnswerDeliver, Buffer, DeviceStats, OffloadAnswerDeliver, OffloadDeliver

log = logging.getLogger("tcpip.netif.tap")

# <linux/if_tun.h>
TUNGETIFF = 0x800454D2
TUNGETFEATURES = 0x800454CF
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
OFFLOAD_FLAGS = TUN_F_CSUM | TUN_F_TSO4
IFNAMSIZ = 16
TX_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.ENOMEM})
# The read loop's globals (one load each per frame instead of an attribute chain)
_write = os.write
_writev = os.writev
_ZERO = virtio.ZERO
_VNET_HEADER = virtio.VnetHeader
_VNET_LEN = virtio.VNET_HDR_LEN
_GSO_LIMIT = virtio.VNET_HDR_LEN + virtio.MAX_GSO_FRAME  # a super-frame with its virtio header
_unpack = virtio.HDR.unpack_from  # virtio.parse without the call
_TRUSTED = virtio.NEEDS_CSUM | virtio.DATA_VALID
_PAST_HDR = slice(virtio.VNET_HDR_LEN, None)  # [10:] without building the slice per frame


def _no_clock() -> float:
    """The clock of a fast answer that reads none (a plain function given to `attach_fast`)."""
    return 0.0


class TapError(OSError):
    """The TAP device could not be opened or configured (missing /dev/net/tun, no permission...)."""


def set_offloads(fd: int, ifname: str, vnet: bool, offload: bool | None) -> bool:
    """Offload mode: header size 10 and TUN_F_CSUM | TUN_F_TSO4; plain: offloads 0, every time (the flags
    outlive us on a persistent device, and a plain reader must not inherit them). False: the kernel
    refused offload mode and `offload` is None (retry plain)."""
    if vnet:
        try:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", virtio.VNET_HDR_LEN))
            fcntl.ioctl(fd, TUNSETOFFLOAD, OFFLOAD_FLAGS)
        except OSError as e:
            if offload:
                raise TapError(e.errno, f"TAP {ifname!r}: offloads refused: {os.strerror(e.errno or 0)}") from None
            log.info("TAP %s: offloads refused (%s); plain mode", ifname, e)
            return False
        return True
    try:
        fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
    except OSError as e:
        raise TapError(e.errno, f"cannot clear offloads on {ifname!r}: {os.strerror(e.errno or 0)}") from None
    return True


def clear_offloads(fd: int) -> None:
    """TUNSETOFFLOAD 0 on closing an offload-mode fd, best effort (an interface already gone refuses it)."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, TUNSETOFFLOAD, 0)


def vnet_supported(fd: int, required: bool | None) -> bool:
    """The tun driver offers IFF_VNET_HDR (TUNGETFEATURES); `required` turns a no into TapError."""
    try:
        feats: int = struct.unpack("I", fcntl.ioctl(fd, TUNGETFEATURES, b"\0" * 4))[0]
    except OSError:
        feats = 0
    if feats & IFF_VNET_HDR:
        return True
    if required:
        raise TapError(errno.EOPNOTSUPP, "this kernel's TAP has no IFF_VNET_HDR: offload mode unavailable")
    return False


def fd_has_vnet(fd: int) -> bool:
    """The fd was attached with IFF_VNET_HDR (TUNGETIFF; False for a non-TUN fd, e.g. in tests)."""
    try:
        res = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
    except OSError:
        return False
    flags: int = struct.unpack_from("H", res, IFNAMSIZ)[0]
    return bool(flags & IFF_VNET_HDR)


class VnetIO:
    """`_drain` / `_transmit_vnet`: a TapDevice's receive (plain and offload mode) and offload transmit."""

    if TYPE_CHECKING:
        fd: int
        name: str
        mtu: int
        max_burst: int
        _wakeups: int
        _rfile: io.FileIO
        offload: bool
        stats: DeviceStats
        _readsize: int
        _hl: int
        _maxframe: int
        _closed: bool
        _deliver: AnswerDeliver | None
        _deliver_offload: OffloadAnswerDeliver | None
        _fast_answer: AnswerFn | None
        _fast_table: dict[int, Answerer] | None
        _fast_clock: Callable[[], float]
        _raw: bool
        _raw_offload: bool
        on_burst_end: Callable[[], None] | None

        def _received(self, frame: memoryview) -> None: ...
        def _received_offloaded(self, frame: memoryview, flags: int, gso_type: int, gso_size: int,
                                csum_start: int, csum_offset: int) -> None: ...
        def close(self) -> None: ...
        def attach_offload(self, deliver: OffloadDeliver | None) -> None: ...
        def _read_failed(self, e: OSError) -> None: ...
        def _write_failed(self, e: OSError) -> None: ...

    def _drain(self) -> None:  # noqa: PLR0911, PLR0912, PLR0915 - both framings and the fast answer, flat: per frame
        """The reader callback, both framings: frames until EAGAIN (at most `max_burst`). In offload mode
        each read starts with a virtio_net_hdr: an all-zero one is stripped and the frame takes the plain
        path; any other goes to `_received_offloaded` (super-frames, checksums the kernel vouches for),
        except its common case, done here without the call: a UDP datagram that is not a super-frame
        goes straight to the offload consumer with `csum_ok` = NEEDS_CSUM or DATA_VALID, as it would (as
        bytes, and its answer written, for an `attach_offload_answering` consumer)."""
        # Every wake-up reads on to EAGAIN, also when it found one frame. Skipping that read after a run of
        # one-frame wake-ups (what this device did until issue 10's stop 30) saved a syscall per echo but
        # cost rate on a VM: back in epoll_wait sooner after each write, the vCPU halts sooner and the echo's
        # round trip grew by more than the read saved. Unpinned, tcpip/responder rate medians over 18 and 24
        # alternated repeats (`python -m bench.e2e_ab --no-pin`, both loops): 0.875-0.900 with the skip,
        # 0.915-0.950 without; the responder made to skip it (`bench/e2e_variants.py`'s `one`): 0.95 of its
        # rate. The EAGAIN read is FileIO.read's None, not a raised BlockingIOError (a third of its cost).
        # A wake-up's first frame is tried on the fast answer before the loop's set-up (its locals, its
        # bookkeeping): an echo alone in its wake-up, what an unpinned peer sends, costs ~3,000 instructions
        # less (`bench/callgrind_burst.py KIND vnet one`, issue 10). The loop takes the rest.
        self._wakeups += 1
        ft = self._fast_table
        hl = self._hl
        budget = self.max_burst
        f0: bytes | None = None
        tried = False  # f0 declined by the fast answer
        read = self._rfile.read
        if ft is not None and not self._closed:
            try:
                if (f0 := read(self._readsize)) is None:  # None: EAGAIN
                    return
            except OSError as e:
                self._read_failed(e)
                return
            n = len(f0)
            if n <= hl:
                return
            ans = None
            if not (hl and f0[1]) and n > hl + 23 and (a := ft.get(f0[hl + 23])) is not None:  # as in the loop
                try:
                    ans = a(f0, hl, self._fast_clock(), f0[0] & _TRUSTED if hl else 0)
                except Exception:  # a bug: the usual path takes the frame (and counts its errors)
                    log.exception("TAP %s: fast answer failed", self.name)
            if ans is None:
                tried = True
            else:
                st = self.stats
                st.rx_frames += 1
                st.rx_bytes += n - hl
                try:
                    w = _write(self.fd, ans)
                except OSError as e:
                    self._answer_failed(e)
                else:
                    st.tx_frames += 1
                    st.tx_bytes += w - hl
                if self._closed or budget < 2:
                    return
                try:  # the read that ends the wake-up, or the next frame of a burst (the loop's)
                    if (f0 := read(self._readsize)) is None:
                        return
                except OSError as e:
                    self._read_failed(e)
                    return
                if len(f0) <= hl:
                    return
                budget -= 1
        fd = self.fd
        size = self._readsize
        deliver = self._deliver
        doff = self._deliver_offload
        raw = self._raw
        raw_off = self._raw_offload
        # others: frames that count themselves (not delivered here); fast: frames the fast answer took
        got = others = nbytes = sent = sbytes = fast = 0
        try:
            for _ in range(budget):
                if self._closed:
                    return
                if f0 is None:
                    fa = ft
                    try:
                        # None: EAGAIN (FileIO retries EINTR itself); else a fresh bytes object: views stay valid
                        if (f := read(size)) is None:
                            return
                    except OSError as e:
                        self._read_failed(e)  # the interface went away: stop reading, don't spin
                        return
                    n = len(f)
                    if n <= hl:
                        return
                else:  # the frame read above (longer than hl), declined by the fast answer or not tried yet
                    f, f0 = f0, None
                    n = len(f)
                    fa = None if tried else ft
                got += 1
                nbytes += n
                # The core's fast answer first (`attach_fast`: an echo request answered in one call, the reply
                # written here; core.echo says why), alone in its wake-up or in a burst (a pinned peer runs at
                # each of our writes, so its echoes all come in bursts); declined, the frame's usual delivery
                # below. Never a super-frame (gso_type set) nor a protocol with no answer in the table (IPv4's
                # protocol byte: a TCP segment costs no call, in a bulk transfer its ACKs included either).
                if fa is not None and not (hl and f[1]) and n > hl + 23 and (a := fa.get(f[hl + 23])) is not None:
                    try:
                        ans = a(f, hl, self._fast_clock(), f[0] & _TRUSTED if hl else 0)
                    except Exception:  # a bug: the usual path below takes the frame (and counts its errors)
                        log.exception("TAP %s: fast answer failed", self.name)
                        ans = None
                    if ans is not None:
                        fast += 1
                        try:
                            w = _write(fd, ans)
                        except OSError as e:
                            self._answer_failed(e)
                        else:
                            sent += 1
                            sbytes += w
                        continue
                if hl and not f.startswith(_ZERO):
                    # f[0], f[1]: the header's flags and gso_type (the rest only off this path)
                    if (not f[1] and doff is not None and n >= 52 and f[33] == 17 and f[22] == 8
                            and f[23] == 0):  # UDP in IPv4 (offsets past the 10-byte header)
                        if raw_off:  # attach_offload_answering: bytes in, maybe a reply out
                            if (reply := doff(f[_PAST_HDR], f[0] & _TRUSTED != 0, 0)) is None:
                                pass
                            elif type(reply[0]) is _VNET_HEADER:
                                self._answer_parts(reply)  # a TCP super-frame
                            else:  # _answer_parts inlined, as for the plain answers below
                                try:
                                    w = _writev(fd, (_ZERO, *reply))
                                except OSError as e:
                                    self._answer_failed(e)
                                else:
                                    sent += 1
                                    sbytes += w
                        else:
                            doff(memoryview(f)[_PAST_HDR], f[0] & _TRUSTED != 0, 0)
                    else:
                        others += 1
                        nbytes -= n
                        flags, gso_type, _hl, gso_size, start, off = _unpack(f)
                        self._received_offloaded(memoryview(f)[hl:], flags, gso_type, gso_size, start, off)
                elif deliver is None:
                    others += 1
                    nbytes -= n
                    self._received(memoryview(f)[hl:] if hl else memoryview(f))
                # Below: plain framing, or an all-zero header (nothing offloaded), pushed to the stack. With
                # attach_bytes, the bytes read (a copy past a virtio header: cheaper than a view)
                elif raw:
                    if (out := deliver(f[hl:] if hl else f)) is not None:
                        # attach_answering: the reply, written now (_answer inlined). Only the core's fast
                        # echo answers; it runs no callback, so the device is still open here.
                        try:
                            w = _writev(fd, (_ZERO, out)) if hl else _write(fd, out)
                        except OSError as e:
                            self._answer_failed(e)
                        else:
                            sent += 1
                            sbytes += w
                else:
                    deliver(memoryview(f)[hl:] if hl else memoryview(f))
        finally:
            if got:
                if (direct := got - others) > 0:
                    st = self.stats  # frames delivered here (the others count themselves)
                    st.rx_frames += direct
                    st.rx_bytes += nbytes - direct * hl
                    if sent:
                        st.tx_frames += sent
                        st.tx_bytes += sbytes - sent * hl
                # The driver's burst end only when a frame reached it: a fast answer queues nothing and
                # moves no timer (core.echo), so a wake-up of echoes alone has nothing to flush.
                if got != fast and (end := self.on_burst_end) is not None:
                    end()

    def attach_fast(self, answer: AnswerFn | None) -> None:
        """Try `answer(buf, off, csum_ok)` (`tcpip.core.echo`) first for every frame read that is not a
        super-frame or a TCP segment, alone in its wake-up or in a burst: `buf` is what was read, the frame at
        `off` (past the virtio header in offload mode), `csum_ok` the header's NEEDS_CSUM or DATA_VALID
        flags. A buffer it returns is written as it is, its virtio header included (the answer's: all zero,
        or a UDP echo's NEEDS_CSUM header kept from the kernel's request, `core.echo`), and the frame is not
        delivered; None hands the frame to the attached consumer as usual. None as `answer` detaches it.
        A `core.echo.FastAnswer` is called through its parts: its protocol table and clock (no call between)."""
        self._fast_answer = answer
        if answer is None:
            self._fast_table = None
        elif isinstance(table := getattr(answer, "table", None), dict):
            self._fast_table = table
            self._fast_clock = answer.clock  # type: ignore[attr-defined]
        else:  # any function: offered every protocol's frames but TCP's
            def call(buf: memoryview | bytes, off: int, now: float, csum_ok: int) -> bytearray | None:
                return answer(cast("bytes", buf), off, csum_ok)

            self._fast_table = dict.fromkeys((p for p in range(256) if p != 6), call)
            self._fast_clock = _no_clock

    def attach_answering(self, deliver: AnswerDeliver | None) -> None:
        """As `attach_bytes`, for a consumer that may answer: when `deliver(frame)` returns a buffer, that is
        one whole frame (its reply to this one, the consumer's only output for it) and it is written at once,
        before the next read, without a `transmit` call (the Stack's echo fast path: issue 10)."""
        self._deliver = deliver
        self._raw = deliver is not None

    def attach_offload_answering(self, deliver: OffloadAnswerDeliver | None) -> None:
        """As `attach_offload`, for a consumer that also takes `bytes` and may answer. A UDP datagram's frame
        comes as a copy past its virtio header instead of a view (issue 10: ~3,300 instructions per UDP
        echo less; TCP and super-frames stay views). When `deliver` returns a frame (a sequence of buffers,
        its only output for that input), it is written at once, as `attach_answering`'s answers are."""
        self.attach_offload(cast("OffloadDeliver", deliver))
        self._raw_offload = deliver is not None

    def _answer_parts(self, parts: Sequence[Buffer]) -> None:
        """Write an offload consumer's answer: a frame in parts, built by the core (no size check), or a TCP
        super-frame (its own virtio header first: `transmit`'s path, checked)."""
        if type(parts[0]) is _VNET_HEADER:
            try:
                self._transmit_gso(parts)
            except (DeviceClosedError, MessageTooLongError, OSError):
                self.stats.tx_dropped += 1
            return
        try:
            n = _writev(self.fd, (_ZERO, *parts))
        except OSError as e:
            self._answer_failed(e)
            return
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += n - 10

    def _answer(self, out: Buffer) -> None:
        """Write a consumer's answer: one buffer, built by the core from a frame that fitted (no size check)."""
        hl = self._hl
        try:
            n = _writev(self.fd, (_ZERO, out)) if hl else _write(self.fd, out)
        except OSError as e:
            self._answer_failed(e)
            return
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += n - hl

    def _answer_failed(self, e: OSError) -> None:
        """An answer not written is a dropped frame (as `transmit` would count it); a lost link is handled."""
        self.stats.tx_dropped += 1
        if e.errno not in TX_DROP_ERRNOS:
            try:
                self._write_failed(e)
            except DeviceClosedError:
                pass  # the reader stops on its next read; nobody to raise to inside the drain

    def _transmit_vnet(self, parts: Sequence[Buffer]) -> None:
        """`transmit` for offload mode: a super-frame brings its own header (first part, `_transmit_gso`),
        any other frame gets the all-zero one (this path: no flag kept, one test per frame)."""
        p0 = parts[0]
        if type(p0) is _VNET_HEADER:
            self._transmit_gso(parts)
            return
        if self._closed:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        # One or two parts (an echo reply; headers + payload) spelled out: the size without sum(map()) and
        # the write's vector without unpacking, about a third of their cost per frame.
        k = len(parts)
        if k == 1:
            size = len(p0)
            iov: tuple[Buffer, ...] = (_ZERO, p0)
        elif k == 2:
            p1 = parts[1]
            size = len(p0) + len(p1)
            iov = (_ZERO, p0, p1)
        else:
            size = sum(map(len, parts))
            iov = (_ZERO, *parts)
        if size > self._maxframe:
            self.stats.tx_oversize += 1
            raise MessageTooLongError(f"frame exceeds MTU {self.mtu} + 14")
        try:
            n = os.writev(self.fd, iov)
        except OSError as e:
            if e.errno in TX_DROP_ERRNOS:
                self.stats.tx_dropped += 1
                return
            self._write_failed(e)
            raise
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += n - 10  # the virtio header is not the frame's (VNET_HDR_LEN)

    def _transmit_gso(self, parts: Sequence[Buffer]) -> None:
        """A TCP super-frame (first part its VnetHeader) for the kernel to segment."""
        if self._closed:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        st = self.stats
        if sum(map(len, parts)) > _GSO_LIMIT:
            st.tx_oversize += 1
            raise MessageTooLongError("super-frame exceeds 64 KiB")
        try:
            n = os.writev(self.fd, parts)
        except OSError as e:
            if e.errno in TX_DROP_ERRNOS:
                st.tx_dropped += 1
                return
            self._write_failed(e)
            raise
        st.tx_frames += 1
        st.tx_bytes += n - _VNET_LEN
        st.tx_gso_frames += 1
        _f, _t, hl, mss, _s, _o = _unpack(parts[0])  # virtio.parse without the call
        st.tx_gso_segments += -(-(n - _VNET_LEN - hl) // mss) if mss else 1
