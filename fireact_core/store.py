"""The app's DuckDB store: runs, steps, battles, votes, ratings, raters and the annotation queue.

One `Store` per database file per process (`Store.open`), holding one DuckDB connection;
each request takes its own cursor. Writes are serialised by a lock and committed before the
method returns, so once the UI confirms a vote it is on disk (DuckDB's WAL). DuckDB allows a
single writer process: opening a file another process holds raises `StoreLockedError`
naming that process, instead of DuckDB's raw IO error.

The schema is versioned: `MIGRATIONS` is a list of (version, statements), applied in order
inside one transaction each and recorded in `schema_version`.

Exports: every table as Parquet or JSONL (`export_tables`), a training set in the trainer's
trajectory JSONL (`export_training_set`), and Parquet snapshots for a Hub dataset
(`start_hub_sync`, never the live database file). Secrets from the environment are
scrubbed from everything written (`redact`).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import contextlib
import json
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fireact_core.errors import ConfigError, FireActError, InputError
from fireact_core.trajectory import Trajectory

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE raters(
            id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, display_name VARCHAR,
            created_at TIMESTAMP NOT NULL, last_seen TIMESTAMP NOT NULL)""",
        """CREATE TABLE runs(
            id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, battle_id VARCHAR, agent_key VARCHAR NOT NULL,
            model VARCHAR, adapter VARCHAR, method VARCHAR, finetuned BOOLEAN,
            noise_mode VARCHAR, noise_p DOUBLE, noise_seed INTEGER,
            task VARCHAR, question VARCHAR NOT NULL, gold VARCHAR, answer VARCHAR, em DOUBLE, f1 DOUBLE,
            status VARCHAR, reason VARCHAR, num_steps INTEGER, time_s DOUBLE,
            tokens_in BIGINT, tokens_out BIGINT, cost_usd DOUBLE,
            trajectory VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)""",
        """CREATE TABLE steps(
            run_id VARCHAR NOT NULL, idx INTEGER NOT NULL, trial INTEGER, thought VARCHAR, action VARCHAR,
            argument VARCHAR, observation VARCHAR, noise VARCHAR, tokens_in INTEGER, tokens_out INTEGER,
            latency_s DOUBLE, error VARCHAR, PRIMARY KEY(run_id, idx))""",
        """CREATE TABLE battles(
            id VARCHAR PRIMARY KEY, question VARCHAR NOT NULL, task VARCHAR, gold VARCHAR,
            run_a VARCHAR NOT NULL, run_b VARCHAR NOT NULL, blind BOOLEAN NOT NULL,
            noise_mode VARCHAR, noise_p DOUBLE, noise_seed INTEGER, rater_id VARCHAR,
            created_at TIMESTAMP NOT NULL)""",
        # One vote per battle: the buttons close after it, and the store enforces it.
        """CREATE TABLE votes(
            id VARCHAR PRIMARY KEY, battle_id VARCHAR NOT NULL UNIQUE, rater_id VARCHAR NOT NULL,
            choice VARCHAR NOT NULL, blind BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL)""",
        # step_idx NULL: the whole trajectory (score +1/-1); else a step (thought_ok/action_ok).
        # Append-only; readers take each (run, rater, step) pair's latest row.
        """CREATE TABLE ratings(
            id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, rater_id VARCHAR NOT NULL, source VARCHAR NOT NULL,
            step_idx INTEGER, score INTEGER, thought_ok BOOLEAN, action_ok BOOLEAN, comment VARCHAR,
            created_at TIMESTAMP NOT NULL)""",
        # The annotation queue's memory: which rater was shown which run (never twice).
        """CREATE TABLE queue_seen(
            run_id VARCHAR NOT NULL, rater_id VARCHAR NOT NULL, outcome VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL, PRIMARY KEY(run_id, rater_id))""",
    ]),
]
TABLES = ("raters", "runs", "steps", "battles", "votes", "ratings", "queue_seen", "schema_version")
VOTE_CHOICES = ("a", "b", "tie", "bad")
PENDING_S = 600  # an item shown but not yet rated holds its slot in the queue this long
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")
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


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """Replace the value of every secret-looking environment variable (…KEY/…TOKEN/…SECRET) in `text`."""
    env = os.environ if env is None else env
    for name, value in env.items():
        if value and len(value) >= 8 and _SECRET_NAME.search(name.upper()) and value in text:
            text = text.replace(value, "[redacted]")
    return text


def agent_key(model: str, *, adapter: str | None = None, method: str = "react", finetuned: bool = False,
              exemplars: int | None = None) -> str:
    """The leaderboard's unit: a readable label of an agent configuration."""
    name = model + (f" + {adapter}" if adapter else "")
    if finetuned:
        return f"{name} · fine-tuned"
    shots = f" {exemplars}-shot" if exemplars is not None else ""
    return f"{name} · {method}{shots}"


def agent_key_of(traj: Trajectory) -> str:
    """An agent key for an imported trajectory, from what it records about its agent."""
    a = traj.agent or {}
    return agent_key(str(a.get("model") or "unknown"), adapter=a.get("adapter"), method=traj.method,
                     finetuned=bool(a.get("finetuned")), exemplars=a.get("exemplars"))


HEAVY_BATCH = 8  # trajectory saves per write transaction (see Store._write_loop)


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
        found = {r[0]: (r[1], r[0] in voted)
                 for r in cur.execute(f"SELECT id, blind FROM battles WHERE id IN ({marks})", ids).fetchall()}
        out: list[str | InputError] = []
        rows: list[list[Any]] = []
        for v in votes:
            if v.battle_id not in found:
                out.append(InputError("There is no such battle to vote on."))
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


@dataclass
class QueueItem:
    run_id: str
    trajectory: Trajectory
    ratings_so_far: int


class Store:
    """A DuckDB database file with the app's schema. Thread-safe; use `Store.open(path)`."""

    _open: ClassVar[dict[str, Store]] = {}
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
        self.migrate(migrations)
        self._pending: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="fireact-store-writer", daemon=True)
        self._writer.start()
        atexit.register(self.close)  # DuckDB may abort at exit with a connection still open

    @classmethod
    def open(cls, path: str | Path) -> Store:
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

    # --- raters --------------------------------------------------------------------------
    def touch_rater(self, rater_id: str, kind: str = "anon", display_name: str | None = None) -> None:
        self._tx(lambda cur: _run(cur,
            "INSERT INTO raters VALUES (?, ?, ?, now(), now()) "
            "ON CONFLICT (id) DO UPDATE SET last_seen = now(), display_name = excluded.display_name",
            [rater_id, kind, display_name]))

    # --- runs ----------------------------------------------------------------------------
    def save_run(self, traj: Trajectory, *, source: str, agent_key: str, adapter: str | None = None,
                 battle_id: str | None = None) -> bool:
        """Store one trajectory and its steps; False when a run with its id already exists."""
        return self._tx(lambda cur: self._insert_run(cur, traj, source=source, key=agent_key, adapter=adapter,
                                                     battle_id=battle_id))

    def _insert_run(self, cur: Any, traj: Trajectory, *, source: str, key: str, adapter: str | None,
                    battle_id: str | None) -> bool:
        if cur.execute("SELECT 1 FROM runs WHERE id = ?", [traj.id]).fetchone():
            return False
        a = traj.agent or {}
        noise = a.get("noise") or {}
        cur.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [traj.id, source, battle_id, key, redact(str(a.get("model", ""))), adapter, traj.method,
             bool(a.get("finetuned", False)), noise.get("mode", "off"), noise.get("p"), noise.get("seed"),
             traj.task, redact(traj.question), _opt_str(traj.gold), _opt_redact(traj.answer), traj.em, traj.f1,
             traj.status, _opt_redact(traj.reason), traj.num_steps, traj.time_s, traj.tokens_in, traj.tokens_out,
             traj.cost_usd, redact(json.dumps(traj.to_dict(), ensure_ascii=False))])
        rows = [[traj.id, i, s.trial, redact(s.thought), s.action, redact(s.argument), redact(s.observation), s.noise,
                 s.tokens_in, s.tokens_out, s.latency_s, _opt_redact(s.error)] for i, s in enumerate(traj.steps)]
        if rows:  # one multi-row INSERT: DuckDB's executemany prepares and runs each row apart
            cur.execute("INSERT INTO steps VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows)),
                        [x for r in rows for x in r])
        return True

    def get_run(self, run_id: str) -> Trajectory | None:
        text = self._scalar("SELECT trajectory FROM runs WHERE id = ?", [run_id])
        return Trajectory.from_dict(json.loads(text)) if text else None

    def import_trajectories(self, trajs: Iterable[Trajectory], *, source: str = "import") -> int:
        """Store trajectories (e.g. from `fireact eval`) for the annotation queue; return how many were new."""
        items = list(trajs)

        def op(cur: Any) -> int:
            return sum(self._insert_run(cur, t, source=source, key=agent_key_of(t),
                                        adapter=(t.agent or {}).get("adapter"), battle_id=None) for t in items)

        return self._tx(op)

    def noise_pool(self, limit: int = 500) -> list[str]:
        """Clean search observations from stored runs: the pool the 'random' noise draws from."""
        rows = self._rows("SELECT observation FROM steps WHERE noise = 'clean' AND error IS NULL AND action NOT IN "
                          "('finish', '') AND observation <> '' ORDER BY run_id, idx DESC LIMIT ?", [limit])
        return [r["observation"] for r in rows]

    # --- battles and votes ---------------------------------------------------------------
    def save_battle(self, battle_id: str, *, run_a: Trajectory, run_b: Trajectory, key_a: str, key_b: str,
                    adapter_a: str | None, adapter_b: str | None, blind: bool, rater_id: str | None) -> None:
        """Both runs of a battle and the battle row, in one transaction (A and B as shown)."""
        noise = (run_a.agent or {}).get("noise") or {}

        def op(cur: Any) -> None:
            self._insert_run(cur, run_a, source="arena", key=key_a, adapter=adapter_a, battle_id=battle_id)
            self._insert_run(cur, run_b, source="arena", key=key_b, adapter=adapter_b, battle_id=battle_id)
            cur.execute("INSERT INTO battles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                        [battle_id, redact(run_a.question), run_a.task, _opt_str(run_a.gold), run_a.id, run_b.id, blind,
                         noise.get("mode", "off"), noise.get("p"), noise.get("seed"), rater_id])

        self._tx(op)

    def record_vote(self, battle_id: str, rater_id: str, choice: str) -> str:
        """Store the battle's vote (one per battle); returns the vote id. Durable on return."""
        if choice not in VOTE_CHOICES:
            raise InputError(f"unknown vote {choice!r}; choose one of {', '.join(VOTE_CHOICES)}")
        return self._tx(_Vote(uuid.uuid4().hex[:16], battle_id, rater_id, choice))

    def blind_comparisons(self) -> list[tuple[str, str, str]]:
        """(agent key of A, agent key of B, choice) for every blind vote: the leaderboard's input."""
        rows = self._rows(
            "SELECT ra.agent_key AS a, rb.agent_key AS b, v.choice FROM votes v JOIN battles b ON v.battle_id = b.id "
            "JOIN runs ra ON ra.id = b.run_a JOIN runs rb ON rb.id = b.run_b WHERE v.blind ORDER BY v.created_at")
        return [(r["a"], r["b"], r["choice"]) for r in rows]

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ConfigError(f"unknown table {table!r}; one of {', '.join(TABLES)}")
        return int(self._scalar(f"SELECT count(*) FROM {table}"))

    # --- ratings -------------------------------------------------------------------------
    def rate(self, run_id: str, rater_id: str, *, source: str, score: int | None = None, step_idx: int | None = None,
             thought_ok: bool | None = None, action_ok: bool | None = None, comment: str | None = None) -> str:
        """A thumbs up/down on a trajectory (`score` ±1) or a label on one step; durable on return."""
        if step_idx is None and score not in (1, -1):
            raise InputError("a trajectory rating is a thumbs up (+1) or down (-1)")
        if step_idx is not None and thought_ok is None and action_ok is None and not (comment or "").strip():
            raise InputError("label the thought or the action, or write a comment")
        rating_id = uuid.uuid4().hex[:16]

        def op(cur: Any) -> str:
            row = cur.execute("SELECT num_steps FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None:
                raise InputError("There is no such trajectory to rate.")
            if step_idx is not None and not 0 <= step_idx < row[0]:
                raise InputError(f"step {step_idx + 1} does not exist; the trajectory has {row[0]} steps")
            cur.execute("INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                        [rating_id, run_id, rater_id, source, step_idx, score, thought_ok, action_ok,
                         redact((comment or "").strip()) or None])
            if source == "queue" and step_idx is None:
                cur.execute("INSERT INTO queue_seen VALUES (?, ?, 'rated', now()) ON CONFLICT (run_id, rater_id) "
                            "DO UPDATE SET outcome = 'rated', created_at = now()", [run_id, rater_id])
            return rating_id

        op.light = True  # type: ignore[attr-defined]
        return self._tx(op)

    def ratings(self, *, steps: bool = False) -> list[dict[str, Any]]:
        """Latest rating per (run, rater[, step]): trajectory ratings, or step labels with `steps=True`."""
        cond = "step_idx IS NOT NULL" if steps else "step_idx IS NULL"
        return self._rows(
            f"SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY run_id, rater_id, step_idx "
            f"ORDER BY created_at DESC, id) AS rn FROM ratings WHERE {cond}) WHERE rn = 1 ORDER BY run_id, rater_id")

    # --- the annotation queue ------------------------------------------------------------
    def next_for(self, rater_id: str, k: int) -> QueueItem | None:
        """The next run this rater has never been shown that still needs ratings (fewer than `k`).

        Runs closest to `k` come first, so overlapping ratings (for agreement) accumulate.
        The item is marked as shown to the rater before it is returned; until it is rated or
        skipped, asking again returns the same item (a reload resumes where the rater was).
        """

        def op(cur: Any) -> QueueItem | None:
            row = cur.execute(
                "SELECT q.run_id, (SELECT count(DISTINCT rater_id) FROM ratings WHERE run_id = q.run_id AND step_idx IS "
                "NULL) FROM queue_seen q WHERE q.rater_id = ? AND q.outcome = 'shown' AND q.created_at > now() - "
                "to_seconds(?) ORDER BY q.created_at DESC LIMIT 1", [rater_id, PENDING_S]).fetchone()
            if row is not None:
                text = cur.execute("SELECT trajectory FROM runs WHERE id = ?", [row[0]]).fetchone()[0]
                return QueueItem(row[0], Trajectory.from_dict(json.loads(text)), int(row[1]))
            row = cur.execute(
                "WITH rated AS (SELECT run_id, count(DISTINCT rater_id) AS n FROM ratings WHERE step_idx IS NULL "
                "GROUP BY run_id), pending AS (SELECT run_id, count(*) AS n FROM queue_seen WHERE outcome = 'shown' "
                "AND created_at > now() - to_seconds(?) GROUP BY run_id) "
                "SELECT r.id, coalesce(rated.n, 0) AS n FROM runs r LEFT JOIN rated ON rated.run_id = r.id "
                "LEFT JOIN pending ON pending.run_id = r.id "
                "WHERE coalesce(rated.n, 0) + coalesce(pending.n, 0) < ? AND r.status <> 'failed' "
                "AND r.id NOT IN (SELECT run_id FROM queue_seen WHERE rater_id = ?) "
                "AND r.id NOT IN (SELECT run_id FROM ratings WHERE rater_id = ? AND step_idx IS NULL) "
                "ORDER BY n DESC, r.created_at, r.id LIMIT 1", [PENDING_S, k, rater_id, rater_id]).fetchone()
            if row is None:
                return None
            cur.execute("INSERT INTO queue_seen VALUES (?, ?, 'shown', now())", [row[0], rater_id])
            text = cur.execute("SELECT trajectory FROM runs WHERE id = ?", [row[0]]).fetchone()[0]
            return QueueItem(row[0], Trajectory.from_dict(json.loads(text)), int(row[1]))

        return self._tx(op)

    def skip(self, run_id: str, rater_id: str) -> None:
        self._tx(lambda cur: _run(cur,
            "INSERT INTO queue_seen VALUES (?, ?, 'skipped', now()) ON CONFLICT (run_id, rater_id) "
            "DO UPDATE SET outcome = 'skipped', created_at = now()", [run_id, rater_id]))

    def progress(self, rater_id: str, k: int) -> dict[str, int]:
        """Queue progress: this rater's ratings, everyone's, and the target (runs × k)."""
        mine = self._scalar("SELECT count(DISTINCT run_id) FROM ratings WHERE rater_id = ? AND step_idx IS NULL "
                            "AND source = 'queue'", [rater_id])
        done = self._scalar("SELECT coalesce(sum(least(n, ?)), 0) FROM (SELECT count(DISTINCT rater_id) AS n "
                            "FROM ratings WHERE step_idx IS NULL GROUP BY run_id)", [k])
        runs = self._scalar("SELECT count(*) FROM runs WHERE status <> 'failed'")
        return {"mine": int(mine), "done": int(done), "target": int(runs) * k, "runs": int(runs)}

    # --- reading for the leaderboard ------------------------------------------------------
    def runs_table(self) -> list[dict[str, Any]]:
        """One row per run without the trajectory JSON (for the leaderboard's summaries)."""
        return self._rows("SELECT * EXCLUDE (trajectory) FROM runs ORDER BY created_at")

    # --- exports -------------------------------------------------------------------------
    def export_tables(self, out_dir: str | Path, fmt: str = "parquet") -> list[Path]:
        """Every table as `<table>.parquet` or `<table>.jsonl` in `out_dir`; returns the paths."""
        if fmt not in ("parquet", "jsonl"):
            raise ConfigError(f"unknown export format {fmt!r}; choose parquet or jsonl")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        with self._read() as cur:
            cur.execute("BEGIN TRANSACTION")  # one snapshot for every table
            for table in TABLES:
                p = out / f"{table}.{fmt}"
                opts = "FORMAT parquet" if fmt == "parquet" else "FORMAT json"
                cur.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(p)}' ({opts})")
                paths.append(p)
            cur.execute("COMMIT")
        return paths

    def training_set(self, mode: str = "rated_or_em", min_rating: float = 0.0) -> list[Trajectory]:
        """The best-rated and/or EM-correct finished trajectories, with `rating`/`em` in their meta.

        mode: `em` (EM-correct), `rated` (mean thumbs > min_rating), `rated_or_em` (either, unless
        rated down), `rated_and_em` (both).
        """
        modes = ("em", "rated", "rated_or_em", "rated_and_em")
        if mode not in modes:
            raise ConfigError(f"unknown training-set mode {mode!r}; choose one of {', '.join(modes)}")
        scores: dict[str, list[int]] = {}
        for r in self.ratings():
            scores.setdefault(r["run_id"], []).append(r["score"])
        rows = self._rows("SELECT id, trajectory, em FROM runs WHERE status = 'finished' ORDER BY created_at, id")
        out = []
        for r in rows:
            s = scores.get(r["id"])
            rating = sum(s) / len(s) if s else None
            good = rating is not None and rating > min_rating
            bad = rating is not None and rating < 0
            correct = r["em"] is not None and r["em"] >= 1.0
            keep = {"em": correct, "rated": good, "rated_or_em": good or (correct and not bad),
                    "rated_and_em": good and correct}[mode]
            if keep:
                t = Trajectory.from_dict(json.loads(r["trajectory"]))
                t.meta.update(rating=rating, em=r["em"], ratings=len(s or []))
                out.append(t)
        return out

    def export_training_set(self, path: str | Path, mode: str = "rated_or_em", min_rating: float = 0.0) -> int:
        """Write `training_set(...)` as trajectory JSONL (the trainer's input); return the count."""
        from fireact_core.formats import write_trajectories

        return write_trajectories(self.training_set(mode, min_rating), path, "trajectories")


def _run(cur: Any, sql: str, params: Sequence[Any]) -> None:
    cur.execute(sql, list(params))  # returns nothing: a cursor must not outlive its transaction


def _opt_str(x: Any) -> str | None:
    return None if x is None else str(x)


def _opt_redact(x: str | None) -> str | None:
    return None if x is None else redact(x)


def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")


def default_db_path() -> Path:
    """`$FIREACT_DB`, else `$FIREACT_CACHE/app.duckdb` (default cache `~/.cache/fireact`)."""
    if os.environ.get("FIREACT_DB"):
        return Path(os.environ["FIREACT_DB"])
    cache = Path(os.environ.get("FIREACT_CACHE") or Path.home() / ".cache" / "fireact")
    return cache / "app.duckdb"


def start_hub_sync(store: Store, repo_id: str, *, folder: str | Path, every_minutes: float = 10.0,
                   token: str | None = None) -> Any:
    """Push Parquet snapshots of the store to a Hub dataset every `every_minutes` (never the DB file).

    Uses `huggingface_hub.CommitScheduler`; each push first writes a fresh snapshot into `folder`.
    Returns the scheduler (call `.stop()` to end it).
    """
    from huggingface_hub import CommitScheduler, HfApi, constants

    class SnapshotScheduler(CommitScheduler):
        def push_to_hub(self) -> Any:
            store.export_tables(Path(self.folder_path) / "snapshot", "parquet")
            return super().push_to_hub()

    Path(folder).mkdir(parents=True, exist_ok=True)
    # HF_ENDPOINT is read now (not at import), so a mirror or a test server can stand in for the Hub.
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or constants.ENDPOINT, token=token)
    return SnapshotScheduler(repo_id=repo_id, repo_type="dataset", folder_path=folder, every=every_minutes,
                             token=token, allow_patterns=["snapshot/*.parquet"], private=True, hf_api=api)

