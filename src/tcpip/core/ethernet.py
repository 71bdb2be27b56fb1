"""Ethernet II: our MAC, the receive filter (own, broadcast, joined multicast groups), demux, padded output."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from tcpip.core.stats import EthernetStats

Buffer = bytes | bytearray | memoryview
Frame = Sequence[Buffer]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
PAD = bytes(60)


class Ethernet:
    """One Ethernet port's receive filter and output queue. `tx` is the host's queue (a list that is
    never replaced); ARP packets go to `arp_input(payload, now)`."""

    def __init__(self, mac: bytes, max_frame: int, stats: EthernetStats, tx: list[Frame],
                 arp_input: Callable[[memoryview, float], None]) -> None:
        self.stats = stats
        self.tx = tx
        self.max_frame = max_frame
        self.arp_input = arp_input
        self.mac = mac
        self.macs = {mac, BROADCAST}
        self.group_macs: set[bytes] = set()

    def set_mac(self, mac: bytes) -> None:
        self.mac = mac
        self.macs = {mac, BROADCAST}

    def set_groups(self, groups: Iterable[int]) -> None:
        """Accept the MACs of these IPv4 multicast groups (RFC 1112: 01:00:5e + low 23 bits)."""
        self.group_macs = {b"\x01\x00\x5e" + (g & 0x7FFFFF).to_bytes(3, "big") for g in groups}

    def demux(self, frame: memoryview, now: float) -> tuple[int, memoryview, bool] | None:  # noqa: PLR0911 - one return per counted drop
        """ARP is handled here; IPv4 and IPv6 come back as (ethertype, payload, link-broadcast-or-
        multicast). Anything else is counted and dropped (None)."""
        st = self.stats
        st.rx_frames += 1
        n = len(frame)
        if n < 14:
            st.rx_runt += 1
            return None
        if n > self.max_frame + 4:  # + an 802.1Q tag
            st.rx_oversize += 1
            return None
        dst = frame[0:6].tobytes()
        if dst not in self.macs:
            if not (dst[0] & 1 and dst in self.group_macs):
                st.rx_not_for_us += 1
                return None
        # A multicast/broadcast source is impossible, our own is a loop or a reflection (lwIP, smoltcp).
        if frame[6] & 1 or frame[6:12] == self.mac:
            st.rx_bad_src_mac += 1
            return None
        t = frame[12:14].tobytes()
        if t == b"\x81\x00":
            # 802.1Q: priority-tagged (VLAN id 0) frames are processed as untagged, like Linux; others
            # belong to a VLAN we are not on.
            if n < 18 or frame[14] & 0x0F or frame[15]:
                st.rx_vlan += 1
                return None
            st.rx_priority_tagged += 1
            t = frame[16:18].tobytes()
            frame = frame[4:]  # the payload starts 4 bytes later; only frame[14:] is used below
        elif n > self.max_frame:
            st.rx_oversize += 1
            return None
        if t == b"\x08\x00":
            return ETHERTYPE_IPV4, frame[14:], dst[0] & 1 == 1
        if t == b"\x08\x06":
            self.arp_input(frame[14:], now)
            return None
        if t == b"\x86\xdd":
            return ETHERTYPE_IPV6, frame[14:], dst[0] & 1 == 1
        st.rx_unknown_ethertype += 1
        return None

    def emit(self, frame: Frame) -> None:
        """Queue one Ethernet frame, padded to the 60-byte minimum."""
        n = 0
        for p in frame:
            n += len(p)
        if n < 60:
            frame = (*frame, PAD[: 60 - n])
        self.stats.tx_frames += 1
        self.tx.append(frame)
