"""Who rates: a Hugging Face login or an anonymous per-session id, and the per-rater rate limit."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

from fireact_core.errors import InputError


class RaterLimit:
    """At most `per_minute` actions per rater in any 60 s window."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def check(self, rater: str) -> None:
        """Record one action; raise `InputError` when the rater is over the limit."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            hits = self._hits[rater]
            while hits and now - hits[0] > 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = 60 - (now - hits[0])
                raise InputError(f"Too many actions in a minute (limit {self.per_minute}); try again in {wait:.0f} s.")
            hits.append(now)


@dataclass
class Rater:
    id: str
    kind: str  # hf | anon
    name: str | None = None


def rater_of(profile: Any, session_hash: str | None) -> Rater:
    """A Hugging Face login gives the rater id; otherwise an anonymous per-session id."""
    if profile is not None and getattr(profile, "username", None):
        return Rater(f"hf:{profile.username}", "hf", getattr(profile, "name", None) or profile.username)
    import hashlib

    h = hashlib.sha256((session_hash or "no-session").encode()).hexdigest()[:12]
    return Rater(f"anon:{h}", "anon")
