"""Flood limits for the HTTP/2 server protocol.

Theory of operation
-------------------
Cheap frames that cost the server work or memory (a RST_STREAM that cancels
a request whose app was already started, a SETTINGS or PING that must be
acknowledged, an empty DATA frame) are each paid for from a ``Budget``: a
token bucket with a burst ``capacity`` that refills at ``rate`` tokens per
second of loop time. A peer that spends a budget dry is flooding, and the
connection is closed with ENHANCE_YOUR_CALM (RFC 9113 section 10.5). Time is
an argument, so the same bytes fed at the same ``now`` always give the same
outcome.
"""

from __future__ import annotations

from dataclasses import dataclass


class Budget:
    """A token bucket: ``spend(now)`` is False once the peer has overdrawn it.

    Args:
        capacity: the burst allowed at once.
        rate: the tokens regained per second.
        now: the loop time at creation (the bucket starts full).
    """

    __slots__ = ("_capacity", "_rate", "_stamp", "_tokens")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self._capacity = capacity
        self._rate = rate
        self._tokens = capacity
        self._stamp = now

    def spend(self, now: float) -> bool:
        """Take one token; False if none is left."""
        tokens = self._tokens + (now - self._stamp) * self._rate
        if tokens > self._capacity:
            tokens = self._capacity
        self._stamp = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """The budgets of one connection: (burst, refill per second) for each kind."""

    resets: tuple[float, float] = (200.0, 10.0)
    settings: tuple[float, float] = (100.0, 10.0)
    pings: tuple[float, float] = (100.0, 10.0)
    empty_data: tuple[float, float] = (100.0, 10.0)
