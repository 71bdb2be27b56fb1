"""Per-layer counters: one field per decision or drop reason, so tests and users can see which rule fired."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypeVar


@dataclass(slots=True)
class FastPaths:
    """Frames that took a per-path fast path, counted once each instead of once in every layer counter they
    stand for (FAST_ADDS): a fast echo is one increment, not eight. The readers (`as_dict`, `unbalanced`,
    so `Stack.stats()` and the CLI) add them in; a layer object's raw fields do not include them."""

    icmp_echoes: int = 0  # an echo request answered by icmp.fast_echo
    delivered: int = 0  # a datagram Host.receive's fast path handed to its protocol's handler
    udp_rx: int = 0  # a datagram UdpLayer.input delivered to a binding
    udp_tx: int = 0  # a datagram sent on a flow's cached headers (udp.send)
    udp_echoes: int = 0  # a datagram the echo service answered from Host.receive (udp.fast_echo)


@dataclass(slots=True)
class EthernetStats:
    rx_frames: int = 0
    rx_runt: int = 0
    rx_oversize: int = 0
    rx_not_for_us: int = 0
    rx_unknown_ethertype: int = 0
    rx_bad_src_mac: int = 0  # multicast/broadcast or our own source MAC (a loop or a reflection)
    rx_vlan: int = 0  # 802.1Q tagged for a VLAN id other than 0
    rx_priority_tagged: int = 0  # 802.1Q with VLAN id 0: processed as untagged (not an outcome)
    rx_ipv6: int = 0  # handed to an IPv6 handler
    rx_ipv6_no_handler: int = 0
    rx_callback_errors: int = 0  # Ethif.input's ipv4/ipv6 callback raised: contained (not an outcome)
    tx_frames: int = 0


@dataclass(slots=True)
class ArpStats:
    rx_packets: int = 0
    rx_truncated: int = 0
    rx_bad_type: int = 0  # htype != 1 or ptype != 0x0800
    rx_bad_length: int = 0  # hlen != 6 or plen != 4
    rx_bad_op: int = 0
    rx_from_self: int = 0
    rx_bad_sender_mac: int = 0  # broadcast/multicast sender hardware address
    rx_bad_sender_ip: int = 0  # broadcast/multicast/loopback/subnet network or broadcast sender address
    rx_bad_target_ip: int = 0  # broadcast or multicast target address (Linux drops these)
    rx_not_for_us: int = 0  # request for another address: at most refreshes an existing entry
    requests_received: int = 0
    replies_received: int = 0
    replies_sent: int = 0
    probes_answered: int = 0  # RFC 5227 probes (sender IP 0.0.0.0) for our address
    requests_sent: int = 0
    announcements_sent: int = 0
    unsolicited_ignored: int = 0  # replies nobody asked for, for an address not in the cache
    conflicts: int = 0  # another MAC claims our address
    conflicts_defended: int = 0  # announcements sent to defend it (RFC 5227 2.4 (b), once per 10 s)
    locktime_ignored: int = 0  # a different MAC within locktime of the last update: the first one kept
    entries_created: int = 0
    entries_refreshed: int = 0
    evictions: int = 0
    expired: int = 0
    queue_dropped: int = 0
    resolve_failures: int = 0


@dataclass(slots=True)
class Ipv4Stats:
    rx_packets: int = 0
    rx_truncated: int = 0
    rx_bad_version: int = 0
    rx_bad_ihl: int = 0
    rx_bad_total_length: int = 0
    rx_bad_checksum: int = 0
    rx_bad_options: int = 0
    rx_source_route: int = 0
    rx_martian_source: int = 0
    rx_dst_not_ours: int = 0
    rx_unicast_in_l2_broadcast: int = 0
    rx_fragments: int = 0
    rx_fragments_dropped: int = 0
    rx_reassembled: int = 0
    rx_unknown_protocol: int = 0
    rx_delivered: int = 0
    rx_loopback: int = 0
    rx_callback_errors: int = 0  # an Ipv4.input tcp/udp/default callback raised: contained
    rx_offload_dropped: int = 0  # an offloaded (trusted/super) frame off the fast path (core/offload.py)
    tx_packets: int = 0
    tx_gso_packets: int = 0  # TCP super-frames sent (in tx_packets too)
    tx_gso_split: int = 0  # super-segments cut in software (next hop unresolved, smaller path MTU)
    tx_fragments: int = 0
    tx_no_route: int = 0
    tx_would_fragment: int = 0
    tx_too_long: int = 0
    tx_arp_pending: int = 0
    reassembly_timeouts: int = 0


@dataclass(slots=True)
class IcmpStats:
    rx_messages: int = 0
    rx_truncated: int = 0
    rx_bad_checksum: int = 0
    rx_echo_requests: int = 0
    rx_echo_replies: int = 0
    rx_echo_broadcast_ignored: int = 0
    rx_dest_unreachable: int = 0
    rx_frag_needed: int = 0
    rx_time_exceeded: int = 0
    rx_param_problem: int = 0
    rx_error_bad_quote: int = 0
    rx_error_to_broadcast: int = 0
    rx_reassembly_timeout_ignored: int = 0  # Time Exceeded code 1: never an endpoint error (Linux)
    rx_timestamp_requests: int = 0
    rx_timestamp_ignored: int = 0  # icmp_timestamps off, or sent to a broadcast address
    rx_other: int = 0
    tx_echo_replies: int = 0
    tx_echo_requests: int = 0
    tx_timestamp_replies: int = 0
    tx_reply_bad_options: int = 0  # a request whose RR/TS option cannot be echoed: no reply (Linux)
    tx_dest_unreachable: int = 0
    tx_time_exceeded: int = 0
    tx_param_problem: int = 0
    tx_rate_limited: int = 0
    tx_suppressed: int = 0  # an error RFC 1122 forbids (about an ICMP error, a fragment, a broadcast...)


@dataclass(slots=True)
class UdpStats:
    rx_datagrams: int = 0
    rx_truncated: int = 0
    rx_bad_length: int = 0
    rx_bad_checksum: int = 0
    rx_no_port: int = 0
    rx_delivered: int = 0
    rx_broadcast_no_port: int = 0
    rx_echo_refused: int = 0  # to the echo service from a port that may answer it back (udp.ECHO_REFUSED)
    rx_icmp_errors: int = 0
    rx_callback_errors: int = 0  # a protocol's datagram_received/error_received raised: contained
    tx_datagrams: int = 0
    tx_arp_failed: int = 0


# Layer counters -> the fast-path counts each one includes
FAST_ADDS: dict[str, dict[str, tuple[str, ...]]] = {
    "EthernetStats": {"rx_frames": ("icmp_echoes", "delivered", "udp_echoes"),
                      "tx_frames": ("icmp_echoes", "udp_tx", "udp_echoes")},
    "Ipv4Stats": {"rx_packets": ("icmp_echoes", "delivered", "udp_echoes"),
                  "rx_delivered": ("icmp_echoes", "delivered", "udp_echoes"),
                  "tx_packets": ("icmp_echoes", "udp_tx", "udp_echoes")},
    "IcmpStats": {"rx_messages": ("icmp_echoes",), "rx_echo_requests": ("icmp_echoes",),
                  "tx_echo_replies": ("icmp_echoes",)},
    "UdpStats": {"rx_datagrams": ("udp_rx", "udp_echoes"), "rx_delivered": ("udp_rx", "udp_echoes"),
                 "tx_datagrams": ("udp_tx", "udp_echoes")},
}
T = TypeVar("T")
_LINKED: dict[type, type] = {}


def linked(cls: type[T], fast: FastPaths) -> T:
    """A fresh `cls()` (a layer's counters) that also holds the host's FastPaths for `as_dict` to add in: an
    instance of a subclass with one more slot, so the dataclass fields (and `dataclasses.asdict`) are
    unchanged."""
    sub = _LINKED.get(cls)
    if sub is None:
        sub = _LINKED[cls] = type(cls.__name__, (cls,), {"__slots__": ("fast",), "__module__": cls.__module__,
                                                         "__qualname__": cls.__qualname__})
    obj: T = sub()
    obj.fast = fast  # type: ignore[attr-defined]
    return obj


def fast_of(obj: object) -> FastPaths | None:
    """The FastPaths a layer's counters are linked to (`linked`), or None."""
    f = getattr(obj, "fast", None)
    return f if isinstance(f, FastPaths) else None


def as_dict(obj: object) -> dict[str, int]:
    """A counters object as {name: value}, the fast-path counts it stands for added in (FastPaths): the
    one way to read a layer's counters (Stack.stats(), the CLI and `unbalanced` read through it)."""
    out: dict[str, int] = {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]
    fast = fast_of(obj)
    if fast is not None:
        for name, adds in FAST_ADDS[type(obj).__name__].items():
            for a in adds:
                out[name] += getattr(fast, a)
    return out


def unbalanced(eth: EthernetStats, arp: ArpStats, ip: Ipv4Stats) -> list[str]:
    """The accounting identities every received frame must satisfy (each frame ends in exactly one
    outcome counter per layer). Returns the violated ones; [] when the books balance.

    Holds for frames fed through `Interface.receive`, not for datagrams fed to the layered seed API."""
    e, a, i = as_dict(eth), as_dict(arp), as_dict(ip)  # fast-path counts added in, as every reader sees them
    bad = []
    eth_out = (e["rx_runt"] + e["rx_oversize"] + e["rx_not_for_us"] + e["rx_unknown_ethertype"] + e["rx_ipv6"]
               + e["rx_bad_src_mac"] + e["rx_vlan"] + e["rx_ipv6_no_handler"] + a["rx_packets"] + i["rx_packets"])
    if e["rx_frames"] != eth_out:
        bad.append(f"ethernet: {e['rx_frames']} frames != {eth_out} outcomes")
    arp_out = (a["rx_truncated"] + a["rx_bad_type"] + a["rx_bad_length"] + a["rx_bad_op"] + a["rx_from_self"]
               + a["rx_bad_sender_mac"] + a["rx_bad_sender_ip"] + a["rx_bad_target_ip"] + a["requests_received"]
               + a["replies_received"])
    if a["rx_packets"] != arp_out:
        bad.append(f"arp: {a['rx_packets']} packets != {arp_out} outcomes")
    ip_out = (i["rx_truncated"] + i["rx_bad_version"] + i["rx_bad_ihl"] + i["rx_bad_total_length"]
              + i["rx_bad_checksum"] + i["rx_bad_options"] + i["rx_source_route"] + i["rx_martian_source"]
              + i["rx_dst_not_ours"] + i["rx_unicast_in_l2_broadcast"] + i["rx_fragments"] + i["rx_delivered"]
              - i["rx_reassembled"])
    if i["rx_packets"] != ip_out:
        bad.append(f"ipv4: {i['rx_packets']} packets != {ip_out} outcomes")
    return bad
