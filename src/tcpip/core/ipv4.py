"""IPv4 input checks (RFC 791/1122: lengths, checksum, options, martians, destination), fragment hand-off
to reassembly, output header build, per-destination idents, and the general output path (fragmentation,
ARP queueing, loopback, the seed API's prebuilt frames)."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from typing import NamedTuple

from tcpip.core.arp import ArpCache
from tcpip.core.config import InterfaceConfig
from tcpip.core.ethernet import PAD, Buffer, Ethernet, Frame
from tcpip.core.fragment import fragment
from tcpip.core.reassembly import Reassembler
from tcpip.core.routing import Routing
from tcpip.core.stats import Ipv4Stats
from tcpip.errors import MessageTooLongError, WouldFragmentError
from tcpip.wire import checksum as ck

_HDR = struct.Struct("!BBHHHBBHII")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_LEN_ID = struct.Struct("!HH")
_from = int.from_bytes
SENT = 0
PENDING = 1  # queued behind ARP resolution


class Accepted(NamedTuple):
    """An IPv4 datagram that passed every input check and is addressed to us."""

    src: int
    dst: int
    proto: int
    payload: memoryview
    packet: memoryview
    broadcast: bool  # sent to a broadcast or multicast address (link or IP)


class IdentAllocator:
    """Per-destination IP ident counters with an unpredictable start (RFC 6864, RFC 7739); bounded, the
    oldest destination forgotten first."""

    __slots__ = ("_rng", "idents", "size")

    def __init__(self, rng: random.Random, size: int) -> None:
        self._rng = rng
        self.size = size
        self.idents: dict[int, int] = {}  # insertion order = age

    def __len__(self) -> int:
        return len(self.idents)

    def next(self, dst: int) -> int:
        ids = self.idents
        v = ids.get(dst)
        if v is None:
            v = self._rng.getrandbits(16)
            if len(ids) >= self.size:
                del ids[next(iter(ids))]
        v = (v + 1) & 0xFFFF
        ids[dst] = v
        return v

    def take(self, dst: int, k: int) -> int:
        """`next(dst)` k times in one call (k >= 1): returns the first; the others follow it mod 2**16."""
        v = self.next(dst)
        if k > 1:
            self.idents[dst] = (v + k - 1) & 0xFFFF
        return v


class Ipv4Input:
    """Every input check of a host (not a router); fragments go to the reassembler (None: dropped)."""

    def __init__(self, routing: Routing, stats: Ipv4Stats, groups: set[int], reassembler: Reassembler | None,
                 timers_changed: Callable[[], None], *, verify: bool) -> None:
        self.routing = routing
        self.stats = stats
        self.groups = groups
        self.reassembler = reassembler
        self.timers_changed = timers_changed  # a fragment may set a new reassembly deadline
        self.verify = verify
        # (datagram, pointer, now): ICMP Parameter Problem for a malformed option (the host sets it)
        self.param_problem: Callable[[Accepted, int, float], object] | None = None

    def accept(self, pkt: memoryview, now: float, l2_bcast: bool = False) -> Accepted | None:  # noqa: PLR0911, PLR0912 - RFC 791/1122 checks in order, one return per counted drop
        """The datagram if it passes every check and is whole; None when dropped (counted) or held."""
        st = self.stats
        st.rx_packets += 1
        n = len(pkt)
        if n < 20:
            st.rx_truncated += 1
            return None
        vihl, _tos, total, _ident, ff, _ttl, proto, _c, src, dst = _HDR.unpack_from(pkt, 0)
        hl = 20
        if vihl != 0x45:
            if vihl >> 4 != 4:
                st.rx_bad_version += 1
                return None
            hl = (vihl & 15) << 2
            if hl < 20:
                st.rx_bad_ihl += 1
                return None
        if total < hl:
            st.rx_bad_total_length += 1
            return None
        if total > n:
            st.rx_truncated += 1
            return None
        if self.verify and not ck.verify(pkt[:hl]):
            st.rx_bad_checksum += 1
            return None
        bad_option = -1
        if hl > 20:
            bad_option = self._options_check(pkt[20:hl])
            if bad_option == -2:
                return None
        r = self.routing
        addr, bcast = r.addr, r.bcast
        # Destination: ours, limited or subnet broadcast, or a joined group.
        to_bcast = False
        if dst != addr or not dst:
            # RFC 1122 3.2.1.3: the obsolete all-zeros subnet broadcast is accepted too.
            if (dst == 0xFFFFFFFF or dst == bcast or dst in self.groups or dst in r.bcasts
                    or (dst == r.net and bcast != -1)):
                to_bcast = True
            elif dst in r.locals and dst:  # a secondary address
                if l2_bcast:
                    st.rx_unicast_in_l2_broadcast += 1
                    return None
            else:
                st.rx_dst_not_ours += 1
                return None
        elif l2_bcast:
            st.rx_unicast_in_l2_broadcast += 1  # RFC 1122 3.3.6: SHOULD discard
            return None
        # Martian sources (RFC 1122 3.2.1.3, RFC 1812 5.3.7): never a reply target.
        top = src >> 24
        if top == 127 or top >= 224 or (src and src == addr) or src == bcast or (not src and dst != 0xFFFFFFFF):
            st.rx_martian_source += 1
            return None
        if bad_option >= 0:
            # RFC 1122 3.2.2.5: Parameter Problem pointing at the option (rate limited with other errors).
            st.rx_bad_options += 1
            if self.param_problem is not None:
                self.param_problem(Accepted(src, dst, proto, pkt[hl:total], pkt[:total], to_bcast),
                                   20 + bad_option, now)
            return None
        if ff & 0x3FFF:
            return self._fragment(pkt, hl, total, now, src, dst, proto, to_bcast)
        return Accepted(src, dst, proto, pkt[hl:total], pkt[:total], to_bcast)

    def _options_check(self, opts: memoryview) -> int:
        """Walk the options: -1 when well formed; the offset of a malformed option (for Parameter
        Problem, like Linux's ip_options_compile); -2 for a source route (hosts drop them, counted)."""
        i, n = 0, len(opts)
        while i < n:
            t = opts[i]
            if t == 0:
                break
            if t == 1:
                i += 1
                continue
            if i + 1 >= n or opts[i + 1] < 2 or i + opts[i + 1] > n:
                return i
            if t in (0x83, 0x89):  # LSRR, SSRR
                self.stats.rx_source_route += 1
                return -2
            i += opts[i + 1]
        return -1

    def _fragment(self, pkt: memoryview, hl: int, total: int, now: float, src: int, dst: int,
                  proto: int, bcast: bool) -> Accepted | None:
        st = self.stats
        st.rx_fragments += 1
        r = self.reassembler
        if r is None:
            st.rx_fragments_dropped += 1
            return None
        self.timers_changed()
        whole = r.process(pkt[:hl], pkt[hl:total], now)
        if whole is None:
            return None
        st.rx_reassembled += 1
        mv = memoryview(whole)
        whl = (whole[0] & 15) << 2
        return Accepted(src, dst, proto, mv[whl:], mv, bcast)


def header_into(buf: bytearray | memoryview, off: int, src: int, dst: int, proto: int, total: int, ident: int,
                ff: int, ttl: int) -> None:
    """A 20-byte IPv4 header at `off`, its checksum summed from the fields' words (no pass over the bytes)."""
    _HDR.pack_into(buf, off, 0x45, 0, total, ident, ff, ttl, proto,
                   ck.ipv4_header_checksum(total, ident, ff, ttl, proto, src, dst), src, dst)


class Ipv4Output:
    """The general IPv4 output path below the host's fast path: loopback, fragmentation above the path
    MTU, ARP resolution (queueing a copy while it runs), and finishing the seed API's prebuilt frames."""

    def __init__(self, config: InterfaceConfig, routing: Routing, idents: IdentAllocator, arp: ArpCache,
                 eth: Ethernet, stats: Ipv4Stats, loopback: list[bytes]) -> None:
        self.config = config
        self.routing = routing
        self.idents = idents
        self.arp = arp
        self.eth = eth
        self.stats = stats
        self.loopback = loopback

    def send_packet(self, dst: int, nh: int | bytes, hdr: bytearray | memoryview,
                    parts: Sequence[Buffer], total: int, now: float, *,
                    on_fail: Callable[[int], None] | None = None) -> int:
        """Send a datagram whose header `hdr` is complete (length, ident, checksum): fragments it when it
        exceeds the path MTU, then resolves the next hop `nh`. SENT, or PENDING behind ARP."""
        r = self.routing
        if dst in r.locals:
            self.loop_back((hdr, *parts))
            return SENT
        mtu = r.path_mtu(dst, now) if r.pmtu else self.config.mtu
        if total > mtu:
            if hdr[6] & 0x40:
                self.stats.tx_would_fragment += 1
                raise WouldFragmentError(f"{total}-byte datagram with DF set exceeds MTU {mtu}")
            frames: list[Frame] = fragment(hdr, parts, mtu)  # type: ignore[assignment]
            self.stats.tx_fragments += len(frames)
        else:
            frames = [(hdr, *parts)]
        self.stats.tx_packets += 1
        if isinstance(nh, bytes):
            mac = nh
        else:
            known = self.arp.lookup(nh, now)
            if known is None:
                self.stats.tx_arp_pending += 1
                for f in frames:
                    # Waiting frames are copied: the caller may reuse its buffers as soon as we return
                    # (asyncio's transports copy what they buffer too). Sent-now frames stay zero-copy.
                    self.arp.resolve(nh, tuple(p if type(p) is bytes else bytes(p) for p in f), now, on_fail)
                return PENDING
            mac = known
        eth = mac + self.eth.mac + b"\x08\x00"
        for f in frames:
            self.eth.emit((eth, *f))
        return SENT

    def send_prebuilt(self, frame: memoryview, parts: Sequence[Buffer], now: float) -> int:
        """Finish and send a frame from `allocate_frame`: Ethernet header with the next hop's MAC, an
        IPv4 header at 14 (no options), maybe a transport header, then `parts`. Fills total length,
        ident and checksum; fragments when it exceeds the path MTU."""
        n = len(frame)
        if n < 34:
            raise ValueError("frame is shorter than the Ethernet and IPv4 headers")
        size = n - 14
        for p in parts:
            size += len(p)
        if size > 0xFFFF:
            self.stats.tx_too_long += 1
            raise MessageTooLongError(f"IPv4 datagram of {size} bytes exceeds 65535")
        dst = _U32.unpack_from(frame, 30)[0]
        _LEN_ID.pack_into(frame, 16, size, self.idents.next(dst))
        frame[24] = frame[25] = 0
        _U16.pack_into(frame, 24, ck.checksum(frame[14:34]))
        r = self.routing
        if dst == r.addr and dst:
            self.loop_back((frame[14:], *parts))
            return SENT
        if size > self.config.mtu or (r.pmtu and size > r.path_mtu(dst, now)):
            return self.send_packet(dst, frame[0:6].tobytes(), frame[14:34], (frame[34:], *parts), size, now)
        self.stats.tx_packets += 1
        self.eth.stats.tx_frames += 1
        if size < 46:
            self.eth.tx.append((frame, *parts, PAD[: 46 - size]))
        else:
            self.eth.tx.append((frame, *parts))
        return SENT

    def loop_back(self, parts: Sequence[Buffer]) -> None:
        """A datagram to our own address never reaches the wire (Linux routes it via lo)."""
        self.stats.tx_packets += 1
        self.loopback.append(b"".join(parts))
