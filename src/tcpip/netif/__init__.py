"""Drivers: the only code that touches the OS or the event loop (devices, hub, clocks, middlewares)."""

from tcpip.netif.clock import Clock, LoopClock, VirtualClock
from tcpip.netif.device import BaseDevice, DeviceStats, NetworkDevice
from tcpip.netif.fault import FaultInjector
from tcpip.netif.hub import Hub, HubPort, Switch
from tcpip.netif.pcap import PcapWriter, read_pcap
from tcpip.netif.tap import TapDevice, TapError

__all__ = ["BaseDevice", "Clock", "DeviceStats", "FaultInjector", "Hub", "HubPort", "LoopClock", "NetworkDevice",
           "PcapWriter", "Switch", "TapDevice", "TapError", "VirtualClock", "read_pcap"]
