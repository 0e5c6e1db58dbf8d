"""The store's connection and its writer: one DuckDB connection per file per process.

Reads take a cursor each. Writes go through one writer thread (`Database._tx`), which commits
queued writes together (group commit) and returns each result once its transaction is durable
(DuckDB's WAL). DuckDB allows a single writer process: opening a file another process holds
raises `StoreLockedError` naming that process, instead of DuckDB's raw IO error.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import contextlib
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fireact_core.errors import FireActError, InputError
from fireact_core.store.schema import MIGRATIONS

T = TypeVar("T")
_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


class StoreLockedError(FireActError):
    """Another process holds the database file (DuckDB allows one writer process)."""

    def __init__(self, path: str, pid: int | None, program: str | None) -> None:
        self.path, self.pid, self.program = path, pid, program
        who = f"process {pid} ({program})" if pid else "another process"
        super().__init__(
            f"The database {path} is in use by {who}. DuckDB allows one writer process at a time: "
            f"stop that process, or point FIREACT_DB at another file.")


# Trajectory saves per write transaction (see Database._write_loop). A vote waits behind at most one
# such transaction: 8 gave vote p95 444 ms with bench/app.py's independent raters, 2 gives 220 ms.
HEAVY_BATCH = 2


def _light(op: Callable[[Any], Any]) -> bool:
    """Votes and ratings: a few rows each, confirmed ahead of queued trajectory saves."""
    return isinstance(op, _Vote) or getattr(op, "light", False)


@dataclass
class _Vote:
    """A queued vote. Votes batched together go in with one INSERT (`insert_many`)."""

    vote_id: str
    battle_id: str
    rater_id: str
    choice: str

    def __call__(self, cur: Any) -> str | InputError:
        return _Vote.insert_many(cur, [self])[0]

    @staticmethod
    def insert_many(cur: Any, votes: list[_Vote]) -> list[str | InputError]:
        """Insert the first vote on each battle that has none yet; the others get their error (not raised).

        Three statements whatever the batch size (two point lookups, one multi-row INSERT): each
        DuckDB statement costs about a millisecond, and INSERT … SELECT … NOT EXISTS (or a
        correlated EXISTS) costs several.
        """
        ids = sorted({v.battle_id for v in votes})
        marks = ", ".join(["?"] * len(ids))
        voted = {r[0] for r in cur.execute(f"SELECT battle_id FROM votes WHERE battle_id IN ({marks})", ids).fetchall()}
        battles = cur.execute(f"SELECT id, blind, failed FROM battles WHERE id IN ({marks})", ids).fetchall()
        found = {r[0]: (r[1], r[0] in voted) for r in battles}
        failed = {r[0] for r in battles if r[2]}  # a side failed: the battle takes no vote
        out: list[str | InputError] = []
        rows: list[list[Any]] = []
        for v in votes:
            if v.battle_id not in found:
                out.append(InputError("There is no such battle to vote on."))
            elif v.battle_id in failed:
                out.append(InputError("One side of this battle failed, so it cannot be voted on."))
            elif found[v.battle_id][1]:
                out.append(InputError("This battle already has a vote."))
            else:
                found[v.battle_id] = (found[v.battle_id][0], True)  # later votes in this batch lose
                rows.append([v.vote_id, v.battle_id, v.rater_id, v.choice, found[v.battle_id][0]])
                out.append(v.vote_id)
        if rows:
            cur.execute("INSERT INTO votes VALUES " + ", ".join(["(?, ?, ?, ?, ?, now())"] * len(rows)),
                        [x for r in rows for x in r])
        return out


class Database:
    """A DuckDB file with migrations applied, read cursors and a group-committing writer."""

    _open: ClassVar[dict[str, Database]] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str | Path, migrations: Sequence[tuple[int, list[str]]] = MIGRATIONS) -> None:
        import duckdb

        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.IOException as e:
            m = _LOCK_RE.search(str(e))
            if m or "lock" in str(e).lower():
                raise StoreLockedError(self.path, int(m["pid"]) if m else None, m["prog"] if m else None) from None
            raise FireActError(f"cannot open the database {self.path}: {e}") from None
        self._write_lock = threading.Lock()
        self.commits = 0  # write transactions committed since opening: how a durable copy knows it is stale
        self.migrate(migrations)
        self._pending: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="fireact-store-writer", daemon=True)
        self._writer.start()
        atexit.register(self.close)  # DuckDB may abort at exit with a connection still open

    @classmethod
    def open(cls, path: str | Path) -> Any:
        """The process's one `Store` for `path` (opened on first use)."""
        key = str(Path(path).resolve()) if str(path) != ":memory:" else ":memory:"
        with cls._open_lock:
            if not cls._open:
                atexit.register(cls.close_all)
            store = cls._open.get(key)
            if store is None or store.closed:
                store = cls._open[key] = cls(path)
            return store

    @classmethod
    def close_all(cls) -> None:
        """Close every store `open` opened (at exit: DuckDB complains about connections left open)."""
        with cls._open_lock:
            for store in cls._open.values():
                store.close()
            cls._open.clear()

    @property
    def closed(self) -> bool:
        return self._con is None

    def close(self) -> None:
        if self._con is not None:
            self._pending.put(None)
            self._writer.join()
            self._con.close()
            self._con = None

    # --- plumbing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A transaction, committed (durable) when the block exits; rolled back on error."""
        with self._write_lock:
            cur = self._con.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
                self.commits += 1
            finally:
                cur.close()

    def _tx(self, op: Callable[[Any], T]) -> T:
        """Run `op(cursor)` in a write transaction; return its result once committed (durable).

        Group commit: one writer thread runs every queued op in a single transaction and
        commits once, so concurrent writes share one WAL flush instead of queueing for a
        flush each. An op that raises (e.g. a second vote on a battle) sends the batch to
        the slow path: rolled back, and each op re-run in a transaction of its own, so one
        op's failure never touches another's write.
        """
        if self._con is None:
            raise FireActError(f"the database {self.path} is closed")
        done: cf.Future = cf.Future()
        self._pending.put((op, done))
        return done.result()

    def _write_loop(self) -> None:
        # Two lanes: votes and ratings (a few rows each) go first, in one transaction; trajectory
        # saves (a run and all its steps) go HEAVY_BATCH at a time, so a vote never waits behind
        # more than one such transaction.
        light: list[tuple[Callable[[Any], Any], cf.Future]] = []
        heavy: collections.deque[tuple[Callable[[Any], Any], cf.Future]] = collections.deque()
        stopping = False
        while True:
            if not light and not heavy:
                if stopping:
                    return
                item = self._pending.get()
                if item is None:
                    return
                (light if _light(item[0]) else heavy).append(item)
            while not stopping:
                try:
                    nxt = self._pending.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True  # finish what is queued, then stop
                else:
                    (light if _light(nxt[0]) else heavy).append(nxt)
            if light:
                batch, light = light[:256], light[256:]
            else:
                batch = [heavy.popleft() for _ in range(min(HEAVY_BATCH, len(heavy)))]
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Callable[[Any], Any], cf.Future]]) -> None:
        results: list[Any] = [None] * len(batch)
        try:
            with self._write() as cur:
                votes = [(i, op) for i, (op, _) in enumerate(batch) if isinstance(op, _Vote)]
                if votes:  # every queued vote in one statement: DuckDB's per-statement cost dominates a vote
                    for (i, _), r in zip(votes, _Vote.insert_many(cur, [op for _, op in votes])):
                        results[i] = r
                for i, (op, _) in enumerate(batch):
                    if not isinstance(op, _Vote):
                        results[i] = op(cur)
        except BaseException:
            if len(batch) == 1:
                self._run_one(*batch[0])
            else:
                for op, fut in batch:
                    self._run_one(op, fut)
            return
        for (_, fut), r in zip(batch, results):
            if isinstance(r, InputError):
                fut.set_exception(r)
            else:
                fut.set_result(r)

    def _run_one(self, op: Callable[[Any], Any], fut: cf.Future) -> None:
        try:
            with self._write() as cur:
                r = op(cur)
            if isinstance(r, InputError):
                raise r
        except BaseException as e:
            fut.set_exception(e)
        else:
            fut.set_result(r)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._read() as cur:
            cur.execute(sql, list(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._read() as cur:
            row = cur.execute(sql, list(params)).fetchone()
            return row[0] if row else None

    # --- migrations ----------------------------------------------------------------------
    def version(self) -> int:
        with self._read() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
            return int(cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def migrate(self, migrations: Sequence[tuple[int, list[str]]] = MIGRATIONS) -> list[int]:
        """Apply the migrations newer than the file's version; return the versions applied."""
        applied = []
        current = self.version()
        for version, statements in sorted(migrations):
            if version <= current:
                continue
            with self._write() as cur:
                for sql in statements:
                    cur.execute(sql)
                cur.execute("INSERT INTO schema_version VALUES (?, now())", [version])
            applied.append(version)
        return applied

