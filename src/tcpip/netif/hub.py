"""Hub: an in-memory Ethernet segment (repeater, or MAC-learning switch) whose ports are network devices."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from tcpip.netif.device import BaseDevice, Buffer
from tcpip.wire.mac import MacAddress

_counter = itertools.count(1)


class HubPort(BaseDevice):
    """One port of a Hub: a device whose frames go to the other ports."""

    def __init__(self, hub: Hub, mac: MacAddress, mtu: int) -> None:
        super().__init__(mac, mtu)
        self.hub = hub

    def _send(self, parts: Sequence[Buffer], size: int) -> None:
        self.stats.tx_frames += 1
        self.stats.tx_bytes += size
        frame = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        self.hub.forward(self, frame)

    def _on_close(self) -> None:
        self.hub.unplug(self)


class Hub:
    """Frames written on one port reach every other listening port on a later loop iteration (never
    re-entrantly). With `switch=True` it learns source MACs and sends known unicast to one port only."""

    def __init__(self, *, switch: bool = False, mtu: int = 1500) -> None:
        self.switch = switch
        self.mtu = mtu
        self.ports: list[HubPort] = []
        self._fdb: dict[bytes, HubPort] = {}
        self.frames = 0
        self._hub_id = next(_counter) & 0xFFFF
        self._macs = itertools.count(1)

    def port(self, mac: MacAddress | str | None = None, *, mtu: int | None = None) -> HubPort:
        if mac is None:
            # Locally administered, unique per hub and port: 02:<hub id>:<port no>
            n = next(self._macs)
            m = MacAddress(b"\x02" + self._hub_id.to_bytes(2, "big") + n.to_bytes(3, "big"))
        else:
            m = MacAddress(mac)
        p = HubPort(self, m, mtu or self.mtu)
        self.ports.append(p)
        return p

    def unplug(self, port: HubPort) -> None:
        if port in self.ports:
            self.ports.remove(port)
        for k in [k for k, v in self._fdb.items() if v is port]:
            del self._fdb[k]

    def forward(self, src: HubPort, frame: bytes) -> None:
        self.frames += 1
        call_soon = asyncio.get_running_loop().call_soon
        mv = memoryview(frame)
        if self.switch and len(frame) >= 12:
            s = frame[6:12]
            if not s[0] & 1:
                self._fdb[s] = src
            out = self._fdb.get(frame[0:6])
            if out is not None:
                if out is not src and not out.closed:
                    call_soon(out._received, mv)
                return
        for p in self.ports:
            if p is not src and not p.closed:
                call_soon(p._received, mv)


class Switch(Hub):
    """A MAC-learning switch: `Hub(switch=True)` under its own name."""

    def __init__(self, *, mtu: int = 1500) -> None:
        super().__init__(switch=True, mtu=mtu)
