"""Exports: every table as Parquet or JSONL, and a training set in the trainer's format.

Secrets were scrubbed when rows were written (`redact`), so nothing here can leak one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError
from fireact_core.evidence import Evidence
from fireact_core.store.schema import TABLES
from fireact_core.training_rule import TrainingRule, step_votes
from fireact_core.trajectory import Trajectory


class Exports:
    """What `Store` can write out (a mixin over `Database` and the store's readers)."""

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

    def training_candidates(self) -> list[Trajectory]:
        """Every stored trajectory with the evidence `TrainingRule` reads beside it (`Trajectory.evidence`): its
        thumbs and votes (won +1, lost -1, both bad -1) and its step labels. The run id is the trajectory's id."""
        scores: dict[str, list[int]] = {}
        for r in self.ratings():
            scores.setdefault(r["run_id"], []).append(r["score"])
        won: dict[str, int] = {}
        lost: dict[str, int] = {}
        for v in self._rows("SELECT b.run_a, b.run_b, v.choice FROM votes v JOIN battles b ON v.battle_id = b.id"):
            outcome = {"a": ((v["run_a"], won), (v["run_b"], lost)), "b": ((v["run_b"], won), (v["run_a"], lost)),
                       "bad": ((v["run_a"], lost), (v["run_b"], lost))}.get(v["choice"], ())
            for run_id, tally in outcome:
                tally[run_id] = tally.get(run_id, 0) + 1
        labels: dict[str, list[dict[str, Any]]] = {}
        for r in self.ratings(steps=True):
            labels.setdefault(r["run_id"], []).append(r)
        rows = self._rows("SELECT id, trajectory FROM runs ORDER BY created_at, id")
        out = []
        for r in rows:
            t = Trajectory.from_dict(json.loads(r["trajectory"]))
            t.evidence = Evidence.from_scores(scores.get(r["id"], []), won.get(r["id"], 0), lost.get(r["id"], 0),
                                              step_votes(labels.get(r["id"], [])))
            out.append(t)
        return out

    def select_training(self, rule: TrainingRule | str = "rated_or_em") -> list[Trajectory]:
        """The stored trajectories `rule` trains on (a `TrainingRule`, or its `keep` mode), with their evidence."""
        rule = TrainingRule(keep=rule) if isinstance(rule, str) else rule
        return rule.select(self.training_candidates())

    def export_training_set(self, path: str | Path, rule: TrainingRule | str = "rated_or_em") -> int:
        """Write `select_training(rule)` as trajectory JSONL (the trainer's input, each with its `evidence`); return the count."""
        from fireact_core.formats import write_trajectories

        return write_trajectories(self.select_training(rule), path, "trajectories")


def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")


def default_db_path() -> Path:
    """`$FIREACT_DB`, else `$FIREACT_CACHE/app.duckdb` (default cache `~/.cache/fireact`)."""
    if os.environ.get("FIREACT_DB"):
        return Path(os.environ["FIREACT_DB"])
    from fireact_core.models import cache_root

    return cache_root() / "app.duckdb"

