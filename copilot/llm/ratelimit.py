"""Client-side request limit (LLM_RATE_LIMIT_PER_MIN), shared by every thread of a process.

A sliding window of the last minute's request times: a request waits until fewer than
`per_minute` requests started in the past 60 s. Limiters are shared per (provider, base URL)
so every Copilot built in one process (one per Streamlit session, say) draws on the same
budget the server enforces per key. Clock and sleep are injectable so tests never wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

WINDOW_S = 60.0


class RateLimiter:
    """At most `per_minute` acquisitions in any window of 60 seconds; thread-safe."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()

    def acquire(self) -> float:
        """Block until a request may start; returns the clock time its slot was taken at."""
        while True:
            started, delay = self._reserve()
            if not delay:
                return started
            log.info("LLM_RATE_LIMIT_PER_MIN=%d reached; waiting %.1fs", self.per_minute, delay)
            self._sleep(delay)

    def _reserve(self) -> tuple[float, float]:
        """(now, 0) with a start recorded, or (now, seconds until a slot frees up)."""
        with self._lock:
            now = self._clock()
            while self._starts and now - self._starts[0] >= WINDOW_S:
                self._starts.popleft()
            if len(self._starts) < self.per_minute:
                self._starts.append(now)
                return now, 0.0
            # Starts are appended under the lock from a monotonic clock, so the deque is
            # sorted; the slot that frees first belongs to this start.
            return now, self._starts[len(self._starts) - self.per_minute] + WINDOW_S - now


_SHARED: dict[tuple[str, str], RateLimiter] = {}
_SHARED_GUARD = threading.Lock()


def shared_limiter(provider: str, base_url: str, per_minute: int) -> RateLimiter:
    """The process-wide limiter for one endpoint; the latest configured rate wins."""
    with _SHARED_GUARD:
        limiter = _SHARED.get((provider, base_url))
        if limiter is None:
            limiter = _SHARED[(provider, base_url)] = RateLimiter(per_minute)
        limiter.per_minute = per_minute
        return limiter
