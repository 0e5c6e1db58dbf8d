"""Durable copies of the live database, and the restore from them at start.

The live DuckDB file stays on local disk, where DuckDB's WAL makes an acknowledged write durable
and its file lock refuses a second writer process. What outlives the container is a copy:

- in the storage bucket (`BucketCopy`): one file, `<folder>/app.duckdb`, written beside the old
  one under a temporary name and renamed into place, every `interval_s` and at a clean shutdown;
- in the Hub dataset (`hubcopy.HubSnapshots`): Parquet tables in a new folder per push,
  `snapshots/<UTC time>-<id>/`, so no push replaces an earlier one.

A copy is read in one transaction (`COPY FROM DATABASE` into an attached file, `take_copy`):
DuckDB's MVCC gives it one consistent state while the store's writer goes on committing, so a
vote never waits for a copy. (CHECKPOINT then a file copy would need the writer stopped for the
copy's length; `EXPORT DATABASE` writes a folder, which cannot be renamed into place atomically.)

At start (`open_with_restore`) a local database with no rows is replaced by the newest non-empty
durable copy. A local database with fewer rows than that copy, not restored from it, is another
history: no copy is written from it (`StartState.held`), so it never replaces the fuller one.
An empty copy is never written either.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fireact_core.redact import redact

log = logging.getLogger("fireact.store")
DATA_TABLES = ("runs", "battles", "votes", "ratings")  # what makes a database empty or fuller than another
COUNTED = ("raters", "runs", "battles", "votes", "ratings", "queue_seen")
INFO_TABLE = "fireact_copy_info"  # inside a bucket copy: when it was taken and what it holds


@dataclass(frozen=True)
class CopyInfo:
    """One durable copy: where it is, when it was taken (UTC) and its row counts."""

    source: str  # "bucket", "legacy" (a live database left on the bucket by an earlier version) or "hub"
    where: str  # the file, or the Hub folder
    taken_at: datetime
    counts: dict[str, int]
    label: str  # "the storage bucket copy", "the Hub dataset owner/name snapshot"
    schema_version: int = 0

    @property
    def empty(self) -> bool:
        return not any(self.counts.get(t, 0) for t in DATA_TABLES)

    def describe(self) -> str:
        return f"{self.label} of {self.taken_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@dataclass
class DurableTargets:
    """Where durable copies go: a bucket folder and/or a Hub dataset, and how often."""

    bucket_dir: Path | None = None
    hub_repo: str | None = None
    interval_s: float = 30.0  # bucket copies
    hub_interval_s: float = 300.0  # Hub snapshots
    legacy_db: Path | None = None  # a live database an earlier version kept on the bucket: restored from, never written
    token: str | None = None
    endpoint: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.bucket_dir or self.hub_repo)

    def hub(self) -> Any:
        from fireact_core.store.hubcopy import HubSnapshots

        return HubSnapshots(self.hub_repo, token=self.token, endpoint=self.endpoint) if self.hub_repo else None


@dataclass
class StartState:
    """What happened at start: the copy restored from, the newest copy seen, and why copies are held."""

    restored: CopyInfo | None = None
    newest: CopyInfo | None = None
    held: str | None = None  # no copy is written, and why
    hub_checked: bool = True  # False: the Hub dataset could not be read at start
    notes: list[str] = field(default_factory=list)  # for the page


# --- copies ------------------------------------------------------------------------------------
def count_rows(cur: Any) -> dict[str, int]:
    row = cur.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in COUNTED)).fetchone()
    return dict(zip(COUNTED, (int(x) for x in row)))


def fewer(counts: dict[str, int], than: dict[str, int]) -> list[str]:
    """The data tables where `counts` has fewer rows than `than`."""
    return [t for t in DATA_TABLES if counts.get(t, 0) < than.get(t, 0)]


def _sql(p: Path | str) -> str:
    return str(p).replace("'", "''")


def take_copy(store: Any, dest: Path) -> CopyInfo:
    """A consistent copy of `store`'s database in a new file `dest`, read in one transaction (the writer goes on).

    Everything committed before the copy's `taken_at` is in it. The file carries `INFO_TABLE`."""
    dest.unlink(missing_ok=True)
    Path(f"{dest}.wal").unlink(missing_ok=True)
    alias = f"fireact_copy_{uuid.uuid4().hex[:8]}"
    with store._read() as cur:
        live = cur.execute("SELECT current_database()").fetchone()[0]
        cur.execute(f"ATTACH '{_sql(dest)}' AS {alias}")
        try:
            taken = datetime.now(UTC)
            cur.execute("BEGIN TRANSACTION")
            try:
                counts = count_rows(cur)
                version = int(cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
                cur.execute(f'COPY FROM DATABASE "{live}" TO {alias}')
                info = {"taken_at": taken.isoformat(), "counts": counts, "schema_version": version}
                cur.execute(f"CREATE TABLE {alias}.{INFO_TABLE}(info VARCHAR)")
                cur.execute(f"INSERT INTO {alias}.{INFO_TABLE} VALUES (?)", [json.dumps(info)])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            cur.execute(f"DETACH {alias}")  # checkpoints the copy: one self-contained file
    return CopyInfo("local", str(dest), taken, counts, "a local copy", version)


def read_copy(path: Path, source: str = "bucket", label: str = "the storage bucket copy") -> CopyInfo:
    """A copy's `CopyInfo`, from its `INFO_TABLE` (read-only; the file is not changed)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        info = json.loads(con.execute(f"SELECT info FROM {INFO_TABLE}").fetchone()[0])
    finally:
        con.close()
    return CopyInfo(source, str(path), datetime.fromisoformat(info["taken_at"]), info["counts"], label,
                    info.get("schema_version", 0))


class BucketCopy:
    """The storage bucket's copy: `<folder>/app.duckdb`, replaced atomically."""

    NAME = "app.duckdb"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME

    def latest(self) -> CopyInfo | None:
        return read_copy(self.path) if self.path.exists() else None

    def put(self, copy: Path) -> None:
        """Write `copy` beside the current one under a temporary name, flush it, rename it into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{self.NAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with copy.open("rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        try:  # the rename itself, where the file system supports syncing a folder
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass

    def fetch(self, dest: Path) -> None:
        shutil.copyfile(self.path, dest)


def _legacy(path: Path) -> CopyInfo | None:
    """A live database (and its WAL) an earlier version kept on the bucket: its rows, its last change as its time."""
    import duckdb

    if not path.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="fireact-legacy-") as tmp:
        local = _fetch_legacy(path, Path(tmp) / "legacy.duckdb")
        con = duckdb.connect(str(local), read_only=True)
        try:
            counts = count_rows(con)
        finally:
            con.close()
    mtimes = [p.stat().st_mtime for p in (path, Path(f"{path}.wal")) if p.exists()]
    return CopyInfo("legacy", str(path), datetime.fromtimestamp(max(mtimes), UTC), counts,
                    "the database an earlier version kept on the storage bucket")


def _fetch_legacy(path: Path, dest: Path) -> Path:
    import duckdb

    shutil.copyfile(path, dest)
    if Path(f"{path}.wal").exists():
        shutil.copyfile(f"{path}.wal", f"{dest}.wal")
    duckdb.connect(str(dest)).close()  # replays the WAL into the file
    return dest


# --- start ---------------------------------------------------------------------------------------
def _restore(info: CopyInfo, path: Path, targets: DurableTargets) -> None:
    import duckdb

    tmp = path.with_name(f"{path.name}.restoring")
    for p in (tmp, Path(f"{tmp}.wal")):
        p.unlink(missing_ok=True)
    try:
        if info.source == "bucket":
            BucketCopy(Path(info.where).parent).fetch(tmp)
            con = duckdb.connect(str(tmp))
            con.execute(f"DROP TABLE IF EXISTS {INFO_TABLE}")
            con.close()
        elif info.source == "legacy":
            _fetch_legacy(Path(info.where), tmp)
        else:
            targets.hub().fetch(info, tmp)
    except BaseException:
        for p in (tmp, Path(f"{tmp}.wal")):
            p.unlink(missing_ok=True)
        raise
    Path(f"{path}.wal").unlink(missing_ok=True)
    os.replace(tmp, path)


def open_with_restore(path: Path, targets: DurableTargets, open_store: Callable[[Path], Any]) -> tuple[Any, StartState]:
    """Open the store at `path`; when it has no rows, restore it first from the newest non-empty durable copy.

    Raises what `open_store` raises (another process holds the file) before anything is restored."""
    store = open_store(path)
    state = StartState()
    if targets.legacy_db and Path(targets.legacy_db).resolve() == Path(path).resolve():
        targets.legacy_db = None  # FIREACT_DB names it: it is the live database, not a copy
    if not targets.any:
        return store, state
    found: list[CopyInfo] = []
    for name, find in (("storage bucket", lambda: targets.bucket_dir and BucketCopy(targets.bucket_dir).latest()),
                       ("storage bucket", lambda: targets.legacy_db and _legacy(targets.legacy_db)),
                       (f"Hub dataset {targets.hub_repo}", lambda: targets.hub_repo and targets.hub().latest())):
        try:
            info = find()
        except Exception as e:  # a copy that cannot be read is reported, and the others still count
            why = redact(f"{type(e).__name__}: {e}".splitlines()[0])[:300]
            log.warning("could not read the %s's copy: %s", name, why)
            if name.startswith("Hub"):
                state.hub_checked = False
                state.notes.append(f"The {name} could not be read at start ({why}); no snapshot goes there until it "
                                   "answers and holds no more rows than this database.")
            else:
                state.notes.append(f"The {name}'s copy could not be read at start ({why}).")
            continue
        if info and not info.empty:
            found.append(info)
    if not found:
        return store, state
    newest = state.newest = max(found, key=lambda c: c.taken_at)
    with store._read() as cur:
        local = count_rows(cur)
    if not any(local[t] for t in DATA_TABLES):
        store.close()
        t0 = time.perf_counter()
        try:
            _restore(newest, path, targets)
        except Exception as e:  # serve on the empty database, and write no copy over the one that failed to come back
            why = redact(f"{type(e).__name__}: {e}".splitlines()[0])[:300]
            state.held = (f"Restoring {newest.describe()} failed ({why}), so this database starts empty and writes no "
                          "durable copy (it would replace that one). Restart to try again.")
            state.notes.append(state.held)
            log.warning(state.held)
            return open_store(path), state
        store = open_store(path)
        with store._read() as cur:
            n = count_rows(cur)
        state.restored = newest
        state.notes.insert(0, f"Restored {n['runs']} runs and {n['votes']} votes from {newest.describe()}.")
        log.info("restored %s from %s in %.1f s", path, newest.describe(), time.perf_counter() - t0)
    elif fewer(local, newest.counts):
        state.held = (f"This database ({path}) holds fewer rows than {newest.describe()} and was not restored from "
                      f"it ({_rows(local)} against {_rows(newest.counts)}), so no durable copy is written: it would "
                      f"replace that one. Move {path} away and restart to restore the copy.")
        state.notes.append(state.held)
        log.warning(state.held)
    return store, state


def _rows(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(t, 0)} {t}" for t in DATA_TABLES)
