"""The app's DuckDB store: runs, steps, battles, votes, ratings, raters and the annotation queue.

One `Store` per database file per process (`Store.open`), holding one DuckDB connection;
each request takes its own cursor. A write returns once its transaction is committed, so
once the UI confirms a vote it is on disk (DuckDB's WAL); concurrent writes share a commit
(`db.py`). DuckDB allows a single writer process: opening a file another process holds
raises `StoreLockedError` naming that process, instead of DuckDB's raw IO error.

The schema is versioned (`schema.py`): `MIGRATIONS` is a list of (version, statements),
applied in order inside one transaction each and recorded in `schema_version`.

Exports (`exports.py`): every table as Parquet or JSONL (`export_tables`) and a training set in
the trainer's trajectory JSONL (`export_training_set`). Durable copies (`durable.py`,
`backups.py`, `hubcopy.py`): a consistent copy in a storage bucket and Parquet snapshots in a Hub
dataset, never the live file, and the restore from the newest at start. Secrets from the
environment are scrubbed from everything written (`redact`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fireact_core.errors import ConfigError, InputError
from fireact_core.redact import redact
from fireact_core.store.db import HEAVY_BATCH, Database, StoreLockedError, _light, _Vote
from fireact_core.store.exports import Exports, default_db_path
from fireact_core.store.schema import MIGRATIONS, TABLES
from fireact_core.trajectory import Trajectory

__all__ = ["HEAVY_BATCH", "MIGRATIONS", "TABLES", "VOTE_CHOICES", "BattleRecord", "QueueItem", "Store", "StoreLockedError",
           "_light", "default_db_path", "redact"]

VOTE_CHOICES = ("a", "b", "tie", "bad")
PENDING_S = 600  # an item shown but not yet rated holds its slot in the queue this long


@dataclass
class QueueItem:
    run_id: str
    trajectory: Trajectory
    ratings_so_far: int


@dataclass
class BattleRecord:
    """A stored battle as its page showed it: both runs (A, B), blind mode, who ran it, and whether it has its vote."""

    id: str
    blind: bool
    rater_id: str | None
    run_a: Trajectory
    run_b: Trajectory
    voted: bool
    failed: bool = False  # a side failed: no vote


class Store(Exports, Database):
    """A DuckDB database file with the app's schema. Thread-safe; use `Store.open(path)`."""

    # --- raters --------------------------------------------------------------------------
    def touch_rater(self, rater_id: str, kind: str = "anon", display_name: str | None = None) -> None:
        self._tx(lambda cur: _run(cur,
            "INSERT INTO raters VALUES (?, ?, ?, now(), now()) "
            "ON CONFLICT (id) DO UPDATE SET last_seen = now(), display_name = excluded.display_name",
            [rater_id, kind, display_name]))

    # --- runs ----------------------------------------------------------------------------
    def save_run(self, traj: Trajectory, *, source: str, agent_key: str | None = None,
                 battle_id: str | None = None) -> bool:
        """Store one trajectory (its steps are the `steps` view of it); False when a run with its id already exists.

        Its model, adapter, noise and leaderboard key come from `traj.agent` (an `AgentSpec`);
        `agent_key` overrides the key (a label for runs made outside the app)."""
        return self._tx(lambda cur: self._insert_run(cur, traj, source=source, key=agent_key, battle_id=battle_id))

    def _insert_run(self, cur: Any, traj: Trajectory, *, source: str, key: str | None, battle_id: str | None) -> bool:
        if cur.execute("SELECT 1 FROM runs WHERE id = ?", [traj.id]).fetchone():
            return False
        a, noise = traj.agent, traj.agent.noise
        cur.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
            [traj.id, source, battle_id, key or a.key, redact(a.model), a.adapter, traj.method, a.finetuned,
             noise.mode, noise.p, noise.seed,
             traj.task, redact(traj.question), _opt_str(traj.gold), _opt_redact(traj.answer), traj.em, traj.f1,
             traj.status, _opt_redact(traj.reason), traj.num_steps, traj.time_s, traj.tokens_in, traj.tokens_out,
             traj.cost_usd, redact(json.dumps(traj.to_dict(), ensure_ascii=False)), traj.chosen_method])
        return True

    def get_run(self, run_id: str) -> Trajectory | None:
        text = self._scalar("SELECT trajectory FROM runs WHERE id = ?", [run_id])
        return Trajectory.from_dict(json.loads(text)) if text else None

    def import_trajectories(self, trajs: Iterable[Trajectory], *, source: str = "import") -> int:
        """Store trajectories (e.g. from `fireact eval`) for the annotation queue; return how many were new."""
        items = list(trajs)

        def op(cur: Any) -> int:
            return sum(self._insert_run(cur, t, source=source, key=None, battle_id=None) for t in items)

        return self._tx(op)

    def noise_pool(self, limit: int = 500, tools: str | None = None) -> list[str]:
        """Clean search observations from the latest stored runs: the pool the 'random' noise draws from.

        Read from the newest `runs` (the `steps` view parses their JSON), so its cost does not grow with the store.
        `tools`: only runs that searched with this tool (among the newest), so a replayed observation comes from
        the same kind of source (`corpus` takes runs that do not say too)."""
        runs = "SELECT id, created_at FROM runs ORDER BY created_at DESC, id LIMIT ?"
        args: list[Any] = [max(1, limit // 2)]
        if tools is not None:
            runs = ("SELECT id, created_at FROM (SELECT id, created_at, trajectory FROM runs ORDER BY created_at DESC, "
                    "id LIMIT ?) WHERE coalesce(trajectory->>'$.agent.tools', '') IN (?, ?)")
            args = [max(1, limit), tools, "" if tools == "corpus" else tools]
        rows = self._rows(f"SELECT s.observation FROM steps s JOIN ({runs}) r ON r.id = s.run_id WHERE s.noise = 'clean' "
                          "AND s.error IS NULL AND s.action NOT IN ('finish', '') AND s.observation <> '' "
                          "ORDER BY r.created_at DESC, s.run_id, s.idx DESC LIMIT ?", [*args, limit])
        return [r["observation"] for r in rows]

    # --- battles and votes ---------------------------------------------------------------
    def save_battle(self, battle_id: str, *, run_a: Trajectory, run_b: Trajectory, blind: bool, rater_id: str | None,
                    key_a: str | None = None, key_b: str | None = None, failed: bool = False) -> None:
        """Both runs of a battle and the battle row, in one transaction (A and B as shown).

        The keys come from each run's `agent`; `key_a`/`key_b` override them (labels in tests and benches).
        `failed`: a side failed, so the battle takes no vote (its runs can still be rated)."""
        noise = run_a.agent.noise

        def op(cur: Any) -> None:
            self._insert_run(cur, run_a, source="arena", key=key_a, battle_id=battle_id)
            self._insert_run(cur, run_b, source="arena", key=key_b, battle_id=battle_id)
            cur.execute("INSERT INTO battles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
                        [battle_id, redact(run_a.question), run_a.task, _opt_str(run_a.gold), run_a.id, run_b.id, blind,
                         noise.mode, noise.p, noise.seed, rater_id, failed])

        self._tx(op)

    def record_vote(self, battle_id: str, rater_id: str, choice: str) -> str:
        """Store the battle's vote (one per battle); returns the vote id. Durable on return."""
        if choice not in VOTE_CHOICES:
            raise InputError(f"unknown vote {choice!r}; choose one of {', '.join(VOTE_CHOICES)}")
        return self._tx(_Vote(uuid.uuid4().hex[:16], battle_id, rater_id, choice))

    def battle_of(self, battle_id: str) -> BattleRecord | None:
        """The stored battle `battle_id` with both its runs, or None: what a page needs to vote after a restart."""
        rows = self._rows("SELECT b.blind, b.rater_id, b.failed, ra.trajectory AS a, rb.trajectory AS b, "
                          "EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = b.id) AS voted FROM battles b "
                          "JOIN runs ra ON ra.id = b.run_a JOIN runs rb ON rb.id = b.run_b WHERE b.id = ?", [battle_id])
        if not rows:
            return None
        r = rows[0]
        a, b = (Trajectory.from_dict(json.loads(r[k])) for k in ("a", "b"))
        return BattleRecord(battle_id, bool(r["blind"]), r["rater_id"], a, b, bool(r["voted"]), bool(r["failed"]))

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


def _run(cur: Any, sql: str, params: Sequence[Any]) -> None:
    cur.execute(sql, list(params))  # returns nothing: a cursor must not outlive its transaction


def _opt_str(x: Any) -> str | None:
    return None if x is None else str(x)


def _opt_redact(x: str | None) -> str | None:
    return None if x is None else redact(x)


