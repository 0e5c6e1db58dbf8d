"""Exports: every table as Parquet or JSONL, a training set in the trainer's format, Hub snapshots.

Secrets were scrubbed when rows were written (`redact`), so nothing here can leak one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError
from fireact_core.store.schema import TABLES
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



def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")


def default_db_path() -> Path:
    """`$FIREACT_DB`, else `$FIREACT_CACHE/app.duckdb` (default cache `~/.cache/fireact`)."""
    if os.environ.get("FIREACT_DB"):
        return Path(os.environ["FIREACT_DB"])
    from fireact_core.models import cache_root

    return cache_root() / "app.duckdb"


def start_hub_sync(store: Exports, repo_id: str, *, folder: str | Path, every_minutes: float = 10.0,
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

