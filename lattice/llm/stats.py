"""What a pool has served: tokens in and out, requests, refusals, time to first token (a histogram)."""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field

#: seconds; the histogram's upper bounds (``+Inf`` is implied)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class PoolStats:
    tokens_in: float = 0.0
    tokens_out: float = 0.0
    requests: int = 0
    rejected: int = 0
    failed: int = 0
    last_start_s: float | None = None
    ttft_counts: list[int] = field(default_factory=lambda: [0] * (len(TTFT_BUCKETS) + 1))
    ttft_sum: float = 0.0
    _recent: deque[tuple[float, float]] = field(default_factory=deque)  # (time, tokens out) over 60 s

    def observe_ttft(self, seconds: float) -> None:
        self.ttft_counts[bisect.bisect_left(TTFT_BUCKETS, seconds)] += 1
        self.ttft_sum += seconds

    def observe_tokens(self, tokens_in: float, tokens_out: float) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        now = time.monotonic()
        self._recent.append((now, tokens_out))
        self._trim(now)

    def tokens_per_s(self) -> float:
        now = time.monotonic()
        self._trim(now)
        return sum(n for _, n in self._recent) / 60.0

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - 60.0:
            self._recent.popleft()
