"""The schedule of durable copies: the storage bucket every `interval_s`, the Hub every `hub_interval_s`.

Each target has its own thread, so a slow Hub never delays a bucket copy, and starts its copies
at a fixed rate (one every interval, from the first), so an acknowledged vote reaches the bucket
at most the interval plus one copy's time after it was committed. A target is copied only when
the store committed something since its last copy; `stop()` copies to each once more (a clean
shutdown loses nothing acknowledged).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fireact_core.redact import redact
from fireact_core.store.durable import BucketCopy, CopyInfo, DurableTargets, StartState, count_rows, fewer, take_copy

log = logging.getLogger("fireact.store")


class Durability:
    """Writes the durable copies of `store` from background threads (`start`, `stop`)."""

    def __init__(self, store: Any, targets: DurableTargets, state: StartState | None = None) -> None:
        self.store, self.targets, self.state = store, targets, state or StartState()
        self.bucket = BucketCopy(targets.bucket_dir) if targets.bucket_dir else None
        self.hub = targets.hub()
        self.hub_held: str | None = None  # the Hub holds rows this database lacks: no snapshot goes there
        self.bucket_held: str | None = None  # the bucket's copy holds rows this database lacks: another writer
        self._hub_checked = self.state.hub_checked
        self.last: dict[str, tuple[CopyInfo, float]] = {}  # per target: its last copy and the seconds it took
        self.errors: dict[str, str] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="fireact-copies-"))
        self._done = {"bucket": -1, "hub": -1}  # the store's commit count at each target's last copy
        restored = self.state.restored.source if self.state.restored else None
        if restored in ("bucket", "hub"):  # it holds what the database holds now: no copy until something changes
            self._done[restored] = store.commits
        self._locks = {"bucket": threading.Lock(), "hub": threading.Lock()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def targets_on(self) -> list[tuple[str, float]]:
        out = [("bucket", self.targets.interval_s)] if self.bucket else []
        return out + ([("hub", self.targets.hub_interval_s)] if self.hub else [])

    def start(self) -> Durability:
        if self.state.held:
            log.warning("no durable copies: %s", self.state.held)
            return self
        for name, every in self.targets_on():
            t = threading.Thread(target=self._loop, args=(name, every), name=f"fireact-copy-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, final: bool = True) -> None:
        """End the threads; with `final`, copy to each target once more (what was committed since its last copy)."""
        self._stop.set()
        for t in self._threads:
            t.join()
        if final:
            for name, _ in self.targets_on():
                self.copy(name)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _loop(self, name: str, every: float) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.copy(name)
            due = max(due + every, time.monotonic())  # fixed rate; after an overrun, the next at once

    def copy(self, name: str) -> CopyInfo | None:
        """One copy to `name` ("bucket" or "hub") when the store changed since the last one; None if none was made."""
        with self._locks[name]:
            commits = self.store.commits
            if self.state.held or commits == self._done[name] or self.store.closed:
                return None
            if name == "hub" and not self._hub_may_push():
                return None
            t0 = time.perf_counter()
            try:
                info = take_copy(self.store, self._dir / f"{name}.duckdb")
                if not info.empty:  # an empty copy is never written: it could only hide a fuller one
                    if name == "bucket":
                        if not self._bucket_may_put(info):
                            return None
                        self.bucket.put(Path(info.where))
                    else:
                        self.hub.push(Path(info.where), info)
            except Exception as e:  # the next round tries again; serving goes on
                self.errors[name] = redact(f"{type(e).__name__}: {e}".splitlines()[0])[:300]
                log.warning("could not write the %s copy: %s", name, self.errors[name])
                return None
            took = time.perf_counter() - t0
            self._done[name] = commits
            if info.empty:
                return None
            self.errors.pop(name, None)
            self.last[name] = (info, took)
            log.info("durable copy to the %s: %d runs, %d votes, taken at %s, in %.3f s", _where(name),
                     info.counts["runs"], info.counts["votes"], info.taken_at.isoformat(), took)
            return info

    def _bucket_may_put(self, info: CopyInfo) -> bool:
        """False once the bucket's copy holds rows this copy lacks: another container writes there.

        This process's own copies only grow, so a copy it would shrink came from another writer (two
        containers on one bucket): the first to see that stops writing, and the fuller copy stays."""
        if self.bucket_held is None:
            current = self.bucket.latest()
            if current is not None and fewer(info.counts, current.counts):
                self.bucket_held = (f"{current.describe()} holds rows this database lacks: another container writes "
                                    "there, so this one writes no copy to the bucket.")
                log.warning(self.bucket_held)
        return self.bucket_held is None

    def _hub_may_push(self) -> bool:
        """False while the Hub could not be read since start, or once it showed rows this database lacks."""
        if self.hub_held:
            return False
        if self._hub_checked:
            return True
        try:
            newest = self.hub.latest()
        except Exception:
            return False  # still unreadable: ask again next round
        self._hub_checked = True
        with self.store._read() as cur:
            local = count_rows(cur)
        if newest is not None and fewer(local, newest.counts):
            self.hub_held = (f"{newest.describe()} holds more rows than this database, which started without it, "
                             "so no snapshot is pushed there; restart on an empty disk to restore it.")
            log.warning(self.hub_held)
            return False
        return True


def _where(name: str) -> str:
    return "storage bucket" if name == "bucket" else "Hub dataset"
