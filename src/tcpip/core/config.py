"""InterfaceConfig: addresses, MTU, TTL and every timer and limit of the core, with RFC/Linux defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tcpip.core.reassembly import ReassemblyConfig
from tcpip.wire.mac import MacAddress


@dataclass(slots=True)
class InterfaceConfig:
    mac: MacAddress | None = None  # None: the device's (Ethif.connect), or a random local one
    address: int = 0  # 0.0.0.0 until set (the seed's default)
    netmask: int = 0
    gateways: list[int] = field(default_factory=list)
    mtu: int = 0  # IP MTU; 0: the device's (Ethif.connect), or 1500
    ttl: int = 64
    verify_checksums: bool = True
    # ARP (RFC 826 / RFC 5227); defaults close to Linux's
    arp_tries: int = 3
    arp_interval: float = 1.0
    arp_reachable: float = 60.0
    arp_cache_size: int = 1024
    arp_queue_len: int = 4096  # frames per unresolved next hop (fragments count one each)
    arp_queue_bytes: int = 212992  # and bytes (Linux unres_qlen_bytes): any one datagram fits at any MTU
    arp_locktime: float = 1.0  # Linux locktime: a different MAC within this of an update is ignored
    arp_defend_interval: float = 10.0  # RFC 5227 DEFEND_INTERVAL: one defending announcement per conflict
    # ICMP
    icmp_echo_ignore_broadcasts: bool = True
    icmp_timestamps: bool = True  # answer timestamp requests (13 -> 14) as Linux does
    icmp_rate_per_dest: float = 1.0  # tokens per second per destination (Linux: 1 s peer limit)
    icmp_burst_per_dest: int = 6
    icmp_rate_global: float = 1000.0  # Linux icmp_msgs_per_sec
    icmp_burst_global: int = 50  # Linux icmp_msgs_burst
    # Tables that grow with peers: bounded
    ident_table_size: int = 4096
    pmtu_table_size: int = 4096
    icmp_rate_table_size: int = 4096
    pmtu_expiry: float = 600.0  # RFC 1191 suggests 10 minutes
    min_pmtu: int = 552  # Linux net.ipv4.route.min_pmtu: the lowest path MTU an ICMP message can set
    # Reassembly (RFC 791/815): limits documented in core/reassembly.py
    reassemble: bool = True
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)

    def copy(self) -> InterfaceConfig:
        """An independent copy: the interface keeps its own, so a caller's config is never mutated."""
        return replace(self, gateways=list(self.gateways), reassembly=replace(self.reassembly))
