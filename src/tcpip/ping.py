"""Ping results: what happened to each echo request (round-trip time and TTL, or why it failed).

`Stack.ping` returns a `PingResults`: still a `list[float | None]` of round-trip times (None = no reply), so
code that reads rtts keeps working, with the per-probe `PingResult`s in `.probes`."""

from __future__ import annotations

from dataclasses import dataclass

# ICMP errors that can answer an echo request, as ping(8) words them
_UNREACH = {0: "Destination Net Unreachable", 1: "Destination Host Unreachable",
            2: "Destination Protocol Unreachable", 3: "Destination Port Unreachable",
            4: "Frag needed and DF set", 5: "Source Route Failed", 6: "Destination Net Unknown",
            7: "Destination Host Unknown", 9: "Destination Net Prohibited", 10: "Destination Host Prohibited",
            13: "Packet filtered"}


def icmp_error_text(t: int, code: int) -> str:
    """ping(8)'s wording for an ICMP error answering a probe."""
    if t == 3:
        return _UNREACH.get(code, f"Dest Unreachable, Bad Code: {code}")
    if t == 11:
        return "Time to live exceeded" if code == 0 else "Frag reassembly time exceeded"
    if t == 12:
        return "Parameter problem"
    return f"ICMP type {t} code {code}"


@dataclass(frozen=True, slots=True)
class PingResult:
    """One probe: `rtt` (seconds) and `ttl` of the reply, or `error` (ping(8)'s text; None with rtt None
    means no answer in time) and `error_from` (who said so: a router, or our own address when ARP or
    routing failed here)."""

    seq: int
    rtt: float | None = None
    ttl: int | None = None
    error: str | None = None
    error_from: str | None = None

    @property
    def ok(self) -> bool:
        return self.rtt is not None


class PingResults(list[float | None]):
    """The round-trip times (None = no reply), with each probe's `PingResult` in `probes`."""

    def __init__(self, probes: list[PingResult]) -> None:
        super().__init__(p.rtt for p in probes)
        self.probes = probes
