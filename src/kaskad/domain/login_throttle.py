"""Login throttling: after `limit` failed logins for one email, or from one client address,
within `window_ms`, further attempts for that email or from that address are refused until the
oldest of those failures leaves the window (at most `window_ms`).

Kept in memory, per process: with several API processes an attacker gets `limit` tries per
process, which still turns a password search into a crawl; no table to clean up and nothing
to write on every failure. Restarting a process forgets its counts.
"""

from __future__ import annotations

from collections import deque

MAX_KEYS = 50_000  # more keys than this: the stalest are dropped (memory stays bounded)


class LoginThrottle:
    def __init__(self, limit: int = 5, window_ms: int = 10 * 60_000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._failures: dict[str, deque[int]] = {}

    @staticmethod
    def keys(email: str, client: str | None) -> list[str]:
        found = [f"email:{email.strip().lower()}"] if email.strip() else []
        return found + ([f"ip:{client}"] if client else [])

    def wait_ms(self, keys: list[str], now_ms: int) -> int:
        """How long these keys are still refused (0: let the attempt through)."""
        longest = 0
        for key in keys:
            times = self._recent(key, now_ms)
            if len(times) >= self.limit:
                longest = max(longest, times[-self.limit] + self.window_ms - now_ms)
        return longest

    def failed(self, keys: list[str], now_ms: int) -> None:
        for key in keys:
            times = self._recent(key, now_ms)
            times.append(now_ms)
            while len(times) > self.limit:  # older ones can no longer decide anything
                times.popleft()
            self._failures[key] = times
        if len(self._failures) > MAX_KEYS:
            self._prune(now_ms)

    def succeeded(self, email: str) -> None:
        """The right password for the email: its count starts over (the address's does not,
        or one known login would reset a guesser's counter)."""
        self._failures.pop(f"email:{email.strip().lower()}", None)

    def _recent(self, key: str, now_ms: int) -> deque[int]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def _prune(self, now_ms: int) -> None:
        for key in list(self._failures):
            self._recent(key, now_ms)
        if len(self._failures) > MAX_KEYS:
            by_last = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in by_last[:len(by_last) - MAX_KEYS]:
                del self._failures[key]
