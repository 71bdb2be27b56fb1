"""Token buckets with explicit time: the global and per-destination ICMP error limits (like Linux's)."""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def peek(self, now: float) -> bool:
        """Whether a token is available, without taking it."""
        dt = now - self.stamp
        if dt > 0:
            self.tokens = min(self.burst, self.tokens + dt * self.rate)
            self.stamp = now
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        if self.peek(now):
            self.tokens -= 1.0
            return True
        return False


class PeerLimiter:
    """A global bucket and one bucket per peer, the peer table bounded (least recently used evicted)."""

    def __init__(self, rate_peer: float, burst_peer: int, rate_global: float, burst_global: int,
                 max_peers: int, now: float) -> None:
        self._rate, self._burst, self._max = rate_peer, burst_peer, max_peers
        self.global_bucket = TokenBucket(rate_global, burst_global, now)
        self._peers: OrderedDict[int, TokenBucket] = OrderedDict()

    def allow(self, peer: int, now: float) -> bool:
        b = self._peers.get(peer)
        if b is None:
            b = self._peers[peer] = TokenBucket(self._rate, self._burst, now)
            if len(self._peers) > self._max:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
        # Like Linux: the global budget is checked first without spending it, then the peer's is
        # spent, then the global one: a refused error costs neither bucket anything it didn't use.
        g = self.global_bucket
        if not g.peek(now) or not b.take(now):
            return False
        return g.take(now)

    def __len__(self) -> int:
        return len(self._peers)
