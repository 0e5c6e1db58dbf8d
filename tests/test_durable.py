"""Durable copies in one process (issue 27, part 6): consistent while the writer commits, restored from the newest
non-empty copy, and never written from a database that holds less than the newest copy.

The kill -9 runs with the real app are in tests/test_durable_restart.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest
from hub_server import TOKEN, HubServer
from test_store import _traj

from fireact_core.store import Store
from fireact_core.store.backups import Durability
from fireact_core.store.durable import BucketCopy, CopyInfo, DurableTargets, open_with_restore, read_copy, take_copy
from fireact_core.store.hubcopy import build_from_parquet
from fireact_core.store.schema import MIGRATIONS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the stand-in Hub only: tests stay offline
    with HubServer() as server:
        yield server


def _fill(store: Store, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.save_battle(f"b{i}", run_a=_traj(2 * i), run_b=_traj(2 * i + 1), key_a="A", key_b="B", blind=True,
                          rater_id="r")
        store.record_vote(f"b{i}", "r", "a")


def _copy(store: Store, tmp_path: Path, name: str = "copy.duckdb") -> CopyInfo:
    return take_copy(store, tmp_path / name)


def test_a_copy_is_one_consistent_state_while_the_writer_commits(tmp_path):
    store = Store.open(tmp_path / "live.duckdb")
    _fill(store, 2)
    over = threading.Event()

    def storm() -> None:
        i = 100
        while not over.is_set():
            _fill(store, 1, i)
            i += 1

    writer = threading.Thread(target=storm)
    writer.start()
    try:
        for k in range(5):
            info = _copy(store, tmp_path, f"c{k}.duckdb")
            con = duckdb.connect(info.where, read_only=True)
            n = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "battles", "votes")}
            orphans = con.execute("SELECT count(*) FROM votes WHERE battle_id NOT IN (SELECT id FROM battles)").fetchone()[0]
            con.close()
            assert n == {t: info.counts[t] for t in n}  # what the copy says it holds is what it holds
            # one state: no battle without both its runs, and at most the one battle being voted on without its vote
            assert n["runs"] == 2 * n["battles"] and n["votes"] in (n["battles"], n["battles"] - 1) and orphans == 0
            assert read_copy(tmp_path / f"c{k}.duckdb").counts == info.counts
    finally:
        over.set()
        writer.join()
    assert store.count("votes") > info.counts["votes"]  # the writer went on while copies were taken
    store.close()


def test_the_bucket_copy_is_replaced_whole_and_restores_into_an_empty_disk(tmp_path):
    store = Store.open(tmp_path / "live.duckdb")
    _fill(store, 3)
    bucket = BucketCopy(tmp_path / "bucket")
    bucket.put(Path(_copy(store, tmp_path).where))
    _fill(store, 2, 3)
    bucket.put(Path(_copy(store, tmp_path).where))
    store.close()
    assert [p.name for p in bucket.folder.iterdir()] == ["app.duckdb"]
    assert bucket.latest().counts["votes"] == 5
    back, state = open_with_restore(tmp_path / "new" / "app.duckdb", DurableTargets(bucket_dir=bucket.folder), Store.open)
    assert back.count("votes") == 5 and back.count("steps") == 20
    durable = Durability(back, DurableTargets(bucket_dir=bucket.folder), state)
    assert durable.copy("bucket") is None  # the copy it came from holds the same: not written again
    back.touch_rater("r")
    assert durable.copy("bucket") is not None
    assert state.restored and state.notes[0].startswith("Restored 10 runs and 5 votes from the storage bucket copy of ")
    assert "fireact_copy_info" not in {r[0] for r in back._con.execute("SHOW TABLES").fetchall()}
    fresh = Store.open(tmp_path / "fresh.duckdb")
    constraints = "SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints() ORDER BY ALL"
    assert back._rows(constraints) == fresh._rows(constraints)  # keys and the one-vote-per-battle rule came along
    fresh.close()
    with pytest.raises(Exception, match="already has a vote"):
        back.record_vote("b0", "r", "b")
    back.close()


def test_the_restore_takes_the_newest_non_empty_copy_of_the_bucket_and_the_hub(tmp_path, hub):
    store = Store.open(tmp_path / "live.duckdb")
    bucket = BucketCopy(tmp_path / "bucket")
    targets = DurableTargets(bucket_dir=bucket.folder, hub_repo="tester/ratings", token=TOKEN, endpoint=hub.url)
    empty = _copy(store, tmp_path, "empty.duckdb")
    _fill(store, 2)
    bucket.put(Path(_copy(store, tmp_path, "two.duckdb").where))  # older, 2 votes
    time.sleep(0.01)
    _fill(store, 2, 2)
    four = _copy(store, tmp_path, "four.duckdb")
    targets.hub().push(tmp_path / "four.duckdb", four)  # newer, 4 votes
    newest_empty = type(empty)(**{**empty.__dict__, "taken_at": four.taken_at.replace(year=four.taken_at.year + 1)})
    targets.hub().push(tmp_path / "empty.duckdb", newest_empty)  # the newest, but empty: never restored
    back, state = open_with_restore(tmp_path / "a" / "app.duckdb", targets, Store.open)
    assert back.count("votes") == 4 and "the Hub dataset tester/ratings snapshot of" in state.notes[0]
    back.close()
    _fill(store, 1, 4)
    bucket.put(Path(_copy(store, tmp_path, "five.duckdb").where))  # now the bucket is the newest
    back, state = open_with_restore(tmp_path / "b" / "app.duckdb", targets, Store.open)
    assert back.count("votes") == 5 and "the storage bucket copy of" in state.notes[0]
    back.close()
    store.close()


def test_a_database_with_fewer_rows_than_the_newest_copy_writes_no_copy_and_the_page_says_so(tmp_path):
    from app import create_app
    from space.fakes import fake_config

    old = Store.open(tmp_path / "old.duckdb")
    _fill(old, 4)
    bucket = BucketCopy(tmp_path / "bucket")
    bucket.put(Path(_copy(old, tmp_path).where))
    old.close()
    before = bucket.path.read_bytes()
    stale = Store.open(tmp_path / "local" / "app.duckdb")
    _fill(stale, 1, 50)  # another history: one vote the copy lacks, four it lacks
    stale.close()
    cfg = fake_config(tmp_path / "local" / "app.duckdb", backup_dir=bucket.folder, backup_interval_s=0.05)
    demo = create_app(cfg)
    store = demo.fireact_runtime.store
    notes = [c["props"].get("value", "") for c in demo.config["components"]
             if c.get("props", {}).get("elem_id") == "fa-db-durable"]
    assert len(notes) == 1 and "fewer rows than the storage bucket copy of" in notes[0] and "not restored" in notes[0]
    assert store.count("votes") == 1  # nothing was restored over it
    durable = Durability(store, cfg.durable_targets(), cfg.start_state).start()
    _fill(store, 5, 60)  # it now has more rows than the copy, and is still another history
    time.sleep(0.3)
    durable.stop()
    assert durable.copy("bucket") is None and bucket.path.read_bytes() == before
    store.close()


def test_a_hub_that_cannot_be_read_at_start_gets_no_snapshot_while_it_holds_rows_this_database_lacks(tmp_path, hub):
    full = Store.open(tmp_path / "full.duckdb")
    _fill(full, 4)
    targets = DurableTargets(hub_repo="tester/ratings", token=TOKEN, endpoint=hub.url)
    c = _copy(full, tmp_path)
    targets.hub().push(Path(c.where), c)
    full.close()
    commits = len(hub.repos["tester/ratings"]["commits"])
    handle = hub.handle
    hub.handle = lambda *a: (503, {"Content-Type": "text/plain"}, b"down for maintenance")
    store, state = open_with_restore(tmp_path / "local" / "app.duckdb", targets, Store.open)
    assert not state.hub_checked and state.restored is None
    assert "could not be read at start" in state.notes[0] and "TOKEN" not in state.notes[0]
    _fill(store, 1, 50)  # a visitor votes on the empty database
    durable = Durability(store, targets, state)
    assert durable.copy("hub") is None  # still unreadable: nothing pushed
    hub.handle = handle
    assert durable.copy("hub") is None and "holds more rows than this database" in durable.hub_held
    _fill(store, 1, 51)
    assert durable.copy("hub") is None
    assert len(hub.repos["tester/ratings"]["commits"]) == commits  # the fuller snapshot stays the newest
    store.close()


def test_a_restore_that_fails_starts_empty_and_writes_no_copy_over_the_one_it_could_not_fetch(tmp_path, hub):
    full = Store.open(tmp_path / "full.duckdb")
    _fill(full, 3)
    c = _copy(full, tmp_path)
    targets = DurableTargets(hub_repo="tester/ratings", token=TOKEN, endpoint=hub.url)
    folder = targets.hub().push(Path(c.where), c)
    full.close()
    del hub.repos["tester/ratings"]["files"][f"{folder}/votes.parquet"]  # listed, but its tables do not come
    store, state = open_with_restore(tmp_path / "local" / "app.duckdb", targets, Store.open)
    assert state.restored is None and "Restoring the Hub dataset tester/ratings snapshot of" in state.held
    assert store.count("votes") == 0 and not (tmp_path / "local" / "app.duckdb.restoring").exists()
    _fill(store, 1)
    assert Durability(store, targets, state).copy("hub") is None
    assert len(hub.repos["tester/ratings"]["commits"]) == 1
    store.close()


def test_an_empty_database_is_never_copied(tmp_path, hub):
    store = Store.open(tmp_path / "live.duckdb")
    targets = DurableTargets(bucket_dir=tmp_path / "bucket", hub_repo="tester/ratings", token=TOKEN,
                             endpoint=hub.url)
    durable = Durability(store, targets)
    store.touch_rater("someone")  # a row, but no run, battle, vote or rating
    assert durable.copy("bucket") is None and durable.copy("hub") is None
    assert not (tmp_path / "bucket" / "app.duckdb").exists() and "tester/ratings" not in hub.repos
    _fill(store, 1)
    assert durable.copy("bucket") and durable.copy("hub")
    assert durable.copy("bucket") is None  # nothing committed since: no copy
    durable.stop(final=False)
    store.close()


def test_a_hub_snapshot_of_an_older_schema_is_restored_and_then_migrated(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = Store.open(tmp_path / "live.duckdb")
    _fill(store, 2)
    paths = {}
    for table in ("runs", "battles", "votes", "raters", "ratings", "queue_seen"):
        t = pa.Table.from_pylist(store._rows(f"SELECT * FROM {table}")) if store.count(table) else None
        if t is not None and table == "battles":
            t = t.drop(["failed"])  # as written before migration 4 added the column
        if t is not None:
            pq.write_table(t, tmp_path / f"{table}.parquet")
            paths[table] = tmp_path / f"{table}.parquet"
    store.close()
    build_from_parquet(tmp_path / "old.duckdb", paths, version=3)
    back = Store.open(tmp_path / "old.duckdb")
    assert back.version() == MIGRATIONS[-1][0] and back.count("votes") == 2 and back.count("steps") == 8
    assert {r["failed"] for r in back._rows("SELECT failed FROM battles")} == {False}
    back.close()


def test_a_second_container_writing_the_same_bucket_stops_when_the_copy_there_holds_rows_it_lacks(tmp_path):
    bucket = tmp_path / "bucket"
    one, two = Store.open(tmp_path / "one.duckdb"), Store.open(tmp_path / "two.duckdb")
    first, second = (Durability(s, DurableTargets(bucket_dir=bucket)) for s in (one, two))
    _fill(one, 3)
    assert first.copy("bucket")
    _fill(two, 2, 10)  # another container, another history, fewer rows
    assert second.copy("bucket") is None and "another container writes there" in second.bucket_held
    assert BucketCopy(bucket).latest().counts["votes"] == 3
    _fill(one, 1, 3)
    assert first.copy("bucket") and BucketCopy(bucket).latest().counts["votes"] == 4  # the first goes on
    for d, s in ((first, one), (second, two)):
        d.stop(final=False)
        s.close()
