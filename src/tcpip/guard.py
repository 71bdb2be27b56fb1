"""Containment of application callback exceptions: a callback that raises is counted and logged once per
burst, and never ends the receive loop (a peer that can make a callback raise must not take us down)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("tcpip")


class CallbackGuard:
    """Counts failures of one kind of callback; logs the first of a burst with its traceback, then one
    summary line once the burst ends (no failure for `quiet` seconds)."""

    __slots__ = ("_last", "_suppressed", "quiet", "what")

    def __init__(self, what: str, quiet: float = 1.0) -> None:
        self.what = what
        self.quiet = quiet
        self._last = float("-inf")
        self._suppressed = 0

    def failed(self) -> None:
        """Call from an `except Exception:` block: log (or not) the exception being handled."""
        now = time.monotonic()
        if now - self._last >= self.quiet:
            if self._suppressed:
                log.warning("%s raised %d more times (not logged)", self.what, self._suppressed)
                self._suppressed = 0
            log.exception("%s raised (contained; further errors within %g s are only counted)",
                          self.what, self.quiet)
        else:
            self._suppressed += 1
        self._last = now
