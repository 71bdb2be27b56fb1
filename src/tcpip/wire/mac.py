"""MacAddress: a 48-bit Ethernet address, hashable, parsed from and printed as colon hex."""

from __future__ import annotations

import random
from typing import ClassVar


class MacAddress:
    """An Ethernet MAC address. `MacAddress("02:00:00:00:00:01")`, `bytes(mac)`, `str(mac)`."""

    __slots__ = ("_b",)
    BROADCAST: ClassVar[MacAddress]

    def __init__(self, value: str | bytes | bytearray | memoryview | MacAddress) -> None:
        if isinstance(value, MacAddress):
            self._b: bytes = value._b
            return
        if isinstance(value, str):
            parts = value.replace("-", ":").split(":")
            if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
                raise ValueError(f"invalid MAC address: {value!r}")
            try:
                self._b = bytes(int(p, 16) for p in parts)
            except ValueError:
                raise ValueError(f"invalid MAC address: {value!r}") from None
            return
        b = bytes(value)
        if len(b) != 6:
            raise ValueError(f"a MAC address is 6 bytes, got {len(b)}")
        self._b = b

    @classmethod
    def random_local(cls, rng: random.Random | None = None) -> MacAddress:
        """A random locally administered unicast address (02:xx:...)."""
        r = rng if rng is not None else random.SystemRandom()
        tail = bytes(r.getrandbits(8) for _ in range(5))
        return cls(b"\x02" + tail)

    @classmethod
    def multicast_ipv4(cls, group: int) -> MacAddress:
        """The RFC 1112 MAC of an IPv4 group: 01:00:5e plus the low 23 bits."""
        return cls(b"\x01\x00\x5e" + (group & 0x7FFFFF).to_bytes(3, "big"))

    @property
    def is_multicast(self) -> bool:
        return bool(self._b[0] & 1)

    @property
    def is_broadcast(self) -> bool:
        return self._b == b"\xff" * 6

    @property
    def packed(self) -> bytes:
        return self._b

    def __bytes__(self) -> bytes:
        return self._b

    def __str__(self) -> str:
        return ":".join(f"{x:02x}" for x in self._b)

    def __repr__(self) -> str:
        return f"MacAddress('{self}')"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MacAddress):
            return self._b == other._b
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._b)


MacAddress.BROADCAST = MacAddress(b"\xff" * 6)
