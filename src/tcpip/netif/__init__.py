"""Drivers: the only code that touches the OS or the event loop (devices, hub, clocks, middlewares)."""

from tcpip.netif.clock import Clock, LoopClock, VirtualClock
from tcpip.netif.device import BaseDevice, DeviceStats, NetworkDevice
from tcpip.netif.hub import Hub, HubPort

__all__ = ["BaseDevice", "Clock", "DeviceStats", "Hub", "HubPort", "LoopClock", "NetworkDevice",
           "VirtualClock"]


def __getattr__(name: str) -> object:
    # Optional drivers are imported lazily so the core stays importable without them.
    if name == "TapDevice":
        from tcpip.netif.tap import TapDevice  # noqa: PLC0415

        return TapDevice
    if name == "PcapWriter":
        from tcpip.netif.pcap import PcapWriter  # noqa: PLC0415

        return PcapWriter
    if name == "FaultInjector":
        from tcpip.netif.fault import FaultInjector  # noqa: PLC0415

        return FaultInjector
    raise AttributeError(name)
