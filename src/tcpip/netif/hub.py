"""Hub: an in-memory Ethernet segment (repeater, or MAC-learning switch) whose ports are network devices.

With `offload=True` (per hub or per port) ports behave like a TAP in offload mode: a stack may send TCP
super-frames (first part a `wire.virtio.VnetHeader`), which reach offload-capable receivers whole, with
the header's metadata, and are cut into MSS-sized frames (checksums finished from the partial sum, as the
kernel's software GSO does) for a port without offload or a consumer that did not `attach_offload`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from tcpip.netif.device import BaseDevice, Buffer
from tcpip.wire import virtio
from tcpip.wire.mac import MacAddress

_counter = itertools.count(1)


class HubPort(BaseDevice):
    """One port of a Hub: a device whose frames go to the other ports."""

    def __init__(self, hub: Hub, mac: MacAddress, mtu: int, offload: bool = False) -> None:
        super().__init__(mac, mtu)
        self.hub = hub
        self.offload = offload

    def _send(self, parts: Sequence[Buffer], size: int) -> None:
        st = self.stats
        st.tx_frames += 1
        p0 = parts[0]
        if type(p0) is virtio.VnetHeader:
            frame = b"".join(parts[1:])
            st.tx_bytes += len(frame)
            st.tx_gso_frames += 1
            flags, gso_type, _hl, gso_size, start, off = virtio.parse(p0)
            if gso_type:
                pay = len(frame) - start - ((frame[start + 12] >> 4) << 2)
                st.tx_gso_segments += -(-pay // gso_size)
            self.hub.forward(self, frame, (flags, gso_type, gso_size, start, off))
            return
        st.tx_bytes += size
        frame = p0 if len(parts) == 1 and isinstance(p0, bytes) else b"".join(parts)
        self.hub.forward(self, frame)

    def _received_meta(self, frame: memoryview, meta: tuple[int, int, int, int, int]) -> None:
        self._received_offloaded(frame, *meta)

    def _on_close(self) -> None:
        self.hub.unplug(self)


class Hub:
    """Frames written on one port reach every other listening port on a later loop iteration (never
    re-entrantly). With `switch=True` it learns source MACs and sends known unicast to one port only."""

    def __init__(self, *, switch: bool = False, mtu: int = 1500, offload: bool = False) -> None:
        self.switch = switch
        self.mtu = mtu
        self.offload = offload
        self.ports: list[HubPort] = []
        self._fdb: dict[bytes, HubPort] = {}
        self.frames = 0
        self._hub_id = next(_counter) & 0xFFFF
        self._macs = itertools.count(1)

    def port(self, mac: MacAddress | str | None = None, *, mtu: int | None = None,
             offload: bool | None = None) -> HubPort:
        """A new port; `offload` (default: the hub's) makes it accept and deliver TCP super-frames."""
        if mac is None:
            # Locally administered, unique per hub and port: 02:<hub id>:<port no>
            n = next(self._macs)
            m = MacAddress(b"\x02" + self._hub_id.to_bytes(2, "big") + n.to_bytes(3, "big"))
        else:
            m = MacAddress(mac)
        p = HubPort(self, m, mtu or self.mtu, self.offload if offload is None else offload)
        self.ports.append(p)
        return p

    def unplug(self, port: HubPort) -> None:
        if port in self.ports:
            self.ports.remove(port)
        for k in [k for k, v in self._fdb.items() if v is port]:
            del self._fdb[k]

    def forward(self, src: HubPort, frame: bytes,
                meta: tuple[int, int, int, int, int] | None = None) -> None:
        """Queue `frame` for the other ports; `meta` (flags, gso_type, gso_size, csum_start, csum_offset)
        comes with a super-frame or a partial checksum."""
        self.frames += 1
        call_soon = asyncio.get_running_loop().call_soon
        mv = memoryview(frame)
        if meta is not None:
            for p in self._targets(src, frame):
                call_soon(p._received_meta, mv, meta)
            return
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


    def _targets(self, src: HubPort, frame: bytes) -> list[HubPort]:
        if self.switch:
            s = frame[6:12]
            if not s[0] & 1:
                self._fdb[s] = src
            out = self._fdb.get(frame[0:6])
            if out is not None:
                return [] if out is src or out.closed else [out]
        return [p for p in self.ports if p is not src and not p.closed]


class Switch(Hub):
    """A MAC-learning switch: `Hub(switch=True)` under its own name."""

    def __init__(self, *, mtu: int = 1500) -> None:
        super().__init__(switch=True, mtu=mtu)
