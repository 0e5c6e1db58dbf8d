"""The DuckDB store on real files: migrations, durability, the one-writer rule, the queue, exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from fireact_core.errors import InputError
from fireact_core.formats import read_trajectories
from fireact_core.store import MIGRATIONS, Store, StoreLockedError, redact
from fireact_core.trajectory import Step, Trajectory

ROOT = Path(__file__).resolve().parents[1]


def _traj(i: int, *, em: float | None = 1.0, status: str = "finished", model: str = "m") -> Trajectory:
    steps = [Step(thought="look", action="search", argument=f"topic {i}", observation=f"page {i}"),
             Step(thought="done", action="finish", argument="ans")]
    return Trajectory(question=f"question {i}?", steps=steps, id=f"run{i:03d}", gold="ans", answer="ans", em=em,
                      f1=em, status=status, agent={"model": model, "finetuned": False, "exemplars": 2,
                                                    "noise": {"mode": "off", "p": 0.5, "seed": 0}})


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "app.duckdb")
    yield s
    s.close()


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_migrations_apply_once_and_in_order(tmp_path):
    path = tmp_path / "m.duckdb"
    s = Store(path)
    assert s.version() == MIGRATIONS[-1][0]
    s.close()
    last = MIGRATIONS[-1][0]
    v2 = [*MIGRATIONS, (last + 1, ["ALTER TABLE runs ADD COLUMN note VARCHAR"])]
    s = Store(path, migrations=v2)
    assert s.version() == last + 1
    s.close()
    s = Store(path, migrations=v2)  # reopening applies nothing again
    assert s.migrate(v2) == [] and s.count("schema_version") == len(v2)
    s.close()
    con = duckdb.connect(str(path), read_only=True)
    assert "note" in [c[0] for c in con.execute("DESCRIBE runs").fetchall()]
    con.close()


def test_failed_migration_rolls_back(tmp_path):
    path = tmp_path / "bad.duckdb"
    Store(path).close()
    last = MIGRATIONS[-1][0]
    bad = [*MIGRATIONS, (last + 1, ["CREATE TABLE extra(x INTEGER)", "THIS IS NOT SQL"])]
    with pytest.raises(duckdb.Error):
        Store(path, migrations=bad)
    s = Store(path)
    assert s.version() == last
    with pytest.raises(duckdb.Error):
        s._scalar("SELECT count(*) FROM extra")
    s.close()


def test_a_confirmed_write_survives_a_killed_process(tmp_path):
    path = tmp_path / "durable.duckdb"
    r = _run("""
        import os, sys
        from fireact_core.store import Store
        from fireact_core.trajectory import Trajectory, Step
        s = Store(sys.argv[1])
        a = Trajectory(question="q", steps=[Step(action="finish", argument="x")], id="ra")
        b = Trajectory(question="q", steps=[Step(action="finish", argument="y")], id="rb")
        s.save_battle("b1", run_a=a, run_b=b, key_a="A", key_b="B", blind=True,
                      rater_id="anon:1")
        s.record_vote("b1", "anon:1", "a")
        print("confirmed", flush=True)
        os._exit(0)  # no close, no checkpoint: only what was committed survives
    """, str(path))
    assert r.returncode == 0 and "confirmed" in r.stdout, r.stderr
    s = Store(path)
    assert s.count("votes") == 1 and s.count("runs") == 2 and s.count("steps") == 2
    assert s.blind_comparisons() == [("A", "B", "a")]
    s.close()


def test_a_second_writer_process_gets_a_message_naming_the_holder(store, tmp_path):
    r = _run("""
        import sys
        from fireact_core.store import Store, StoreLockedError
        try:
            Store(sys.argv[1])
        except StoreLockedError as e:
            print("PID", e.pid); print(e)
    """, store.path)
    assert r.returncode == 0, r.stderr
    assert f"PID {os.getpid()}" in r.stdout
    assert f"in use by process {os.getpid()}" in r.stdout and "FIREACT_DB" in r.stdout
    assert "Traceback" not in r.stderr


def test_the_app_refuses_a_locked_database_with_a_clear_message(store):
    r = subprocess.run([sys.executable, "app.py", "--fake", "--db", store.path], capture_output=True, text=True,
                       cwd=ROOT, timeout=180, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert r.returncode == 2
    assert f"in use by process {os.getpid()}" in r.stderr and "Traceback" not in r.stderr


def test_store_locked_error_parses_duckdbs_message():
    e = StoreLockedError("/x.duckdb", 42, "/usr/bin/python3")
    assert "process 42 (/usr/bin/python3)" in str(e)


def test_one_vote_per_battle_and_valid_choices(store):
    a, b = _traj(1), _traj(2)
    store.save_battle("b1", run_a=a, run_b=b, key_a="A", key_b="B", blind=False,
                      rater_id=None)
    with pytest.raises(InputError, match="unknown vote"):
        store.record_vote("b1", "r", "maybe")
    store.record_vote("b1", "r", "tie")
    with pytest.raises(InputError, match="already"):
        store.record_vote("b1", "r2", "a")
    with pytest.raises(InputError, match="no such battle"):
        store.record_vote("nope", "r", "a")
    assert store.blind_comparisons() == []  # not blind: not on the leaderboard
    assert store.count("votes") == 1


def test_a_stored_battle_reads_back_with_both_runs_and_its_vote(store):
    a, b = _traj(1, model="left"), _traj(2, model="right")
    store.save_battle("b1", run_a=a, run_b=b, blind=True, rater_id="anon:abc")
    rec = store.battle_of("b1")
    assert (rec.id, rec.blind, rec.rater_id, rec.voted) == ("b1", True, "anon:abc", False)
    assert rec.run_a.to_dict() == a.to_dict() and rec.run_b.to_dict() == b.to_dict()  # A and B as shown
    store.record_vote("b1", "anon:abc", "b")
    assert store.battle_of("b1").voted
    assert store.battle_of("b2") is None


def test_a_failed_battle_is_kept_with_its_runs_and_takes_no_vote(store):
    a, b = _traj(1), _traj(2)
    b.status, b.reason = "failed", "internal error (RuntimeError): boom"
    store.save_battle("f1", run_a=a, run_b=b, blind=True, rater_id="anon:abc", failed=True)
    rec = store.battle_of("f1")
    assert rec.failed and not rec.voted and rec.run_b.status == "failed" and rec.run_b.reason == b.reason
    with pytest.raises(InputError, match="failed, so it cannot be voted on"):
        store.record_vote("f1", "anon:abc", "a")
    assert store.count("votes") == 0 and store.blind_comparisons() == []
    store.rate(b.id, "anon:abc", source="arena", score=-1)  # its runs are rated like any other
    assert [r["run_id"] for r in store.ratings()] == [b.id]
    store.save_battle("ok1", run_a=_traj(3), run_b=_traj(4), blind=True, rater_id=None)
    assert not store.battle_of("ok1").failed


def test_a_store_from_before_failed_battles_upgrades_with_its_battles_votable(tmp_path):
    path = tmp_path / "v3.duckdb"
    old = [m for m in MIGRATIONS if m[0] <= 3]
    s = Store(path, migrations=old)
    s._tx(lambda cur: cur.execute("INSERT INTO battles VALUES ('b0', 'q', '', NULL, 'ra', 'rb', true, 'off', 0.5, 0, "
                                  "NULL, now())"))
    s.close()
    s = Store(path)
    assert s.version() == MIGRATIONS[-1][0]
    assert s._rows("SELECT id, failed FROM battles") == [{"id": "b0", "failed": False}]
    s.close()


def test_ratings_validate_and_keep_the_latest(store):
    store.save_run(_traj(1), source="arena", agent_key="A")
    with pytest.raises(InputError):
        store.rate("run001", "r", source="arena", score=0)
    with pytest.raises(InputError, match="step 5 does not exist"):
        store.rate("run001", "r", source="arena", step_idx=4, thought_ok=True)
    with pytest.raises(InputError, match="no such trajectory"):
        store.rate("zzz", "r", source="arena", score=1)
    store.rate("run001", "r", source="arena", score=1)
    store.rate("run001", "r", source="arena", score=-1)
    store.rate("run001", "r", source="arena", step_idx=1, thought_ok=False, action_ok=True, comment=" ok ")
    latest = store.ratings()
    assert [(x["rater_id"], x["score"]) for x in latest] == [("r", -1)]
    steps = store.ratings(steps=True)
    assert steps[0]["step_idx"] == 1 and steps[0]["thought_ok"] is False and steps[0]["comment"] == "ok"


def test_queue_gives_each_item_to_k_raters_never_twice(store):
    store.import_trajectories([_traj(i) for i in range(3)])
    store.save_run(_traj(9, status="failed"), source="import", agent_key="A")  # failed runs are not queued
    k = 2
    seen: dict[str, list[str]] = {}
    for rater in ("r1", "r2", "r3"):
        while (item := store.next_for(rater, k)) is not None:
            seen.setdefault(rater, []).append(item.run_id)
            store.rate(item.run_id, rater, source="queue", score=1)
    for rater, items in seen.items():
        assert len(items) == len(set(items)), rater
    counts = {rid: sum(rid in v for v in seen.values()) for rid in ("run000", "run001", "run002")}
    assert counts == {"run000": 2, "run001": 2, "run002": 2}
    assert all("run009" not in v for v in seen.values())
    p = store.progress("r1", k)
    assert p["done"] == 6 and p["target"] == 6 and p["mine"] == len(seen["r1"])


def test_skipped_items_never_come_back_to_that_rater(store):
    store.import_trajectories([_traj(1)])
    item = store.next_for("r1", 3)
    store.skip(item.run_id, "r1")
    assert store.next_for("r1", 3) is None
    assert store.next_for("r2", 3).run_id == item.run_id


def test_import_skips_known_ids(store):
    assert store.import_trajectories([_traj(1), _traj(2)]) == 2
    assert store.import_trajectories([_traj(2), _traj(3)]) == 1
    assert store.count("runs") == 3 and store.get_run("run002").question == "question 2?"


def test_exports_every_table_as_parquet_and_jsonl(store, tmp_path):
    store.touch_rater("anon:1")
    store.save_battle("b1", run_a=_traj(1), run_b=_traj(2), key_a="A", key_b="B",
                      blind=True, rater_id="anon:1")
    store.record_vote("b1", "anon:1", "b")
    store.rate("run001", "anon:1", source="arena", score=1)
    for fmt in ("parquet", "jsonl"):
        paths = store.export_tables(tmp_path / fmt, fmt)
        assert {p.stem for p in paths} >= {"runs", "steps", "battles", "votes", "ratings", "raters"}
        con = duckdb.connect(":memory:")
        reader = "read_parquet" if fmt == "parquet" else "read_json_auto"
        for p, want in ((tmp_path / fmt / f"runs.{fmt}", 2), (tmp_path / fmt / f"steps.{fmt}", 4),
                        (tmp_path / fmt / f"votes.{fmt}", 1)):
            assert con.execute(f"SELECT count(*) FROM {reader}('{p}')").fetchone()[0] == want
        con.close()


def test_training_set_selects_best_rated_and_em_correct(store, tmp_path):
    store.import_trajectories([_traj(1, em=1.0), _traj(2, em=0.0), _traj(3, em=1.0), _traj(4, em=0.0)])
    store.rate("run002", "r", source="queue", score=1)  # wrong by EM but rated good
    store.rate("run003", "r", source="queue", score=-1)  # right by EM but rated bad
    ids = {m: [t.id for t in store.select_training(m)] for m in ("em", "rated", "rated_or_em", "rated_and_em")}
    assert ids == {"em": ["run001", "run003"], "rated": ["run002"], "rated_or_em": ["run001", "run002"],
                   "rated_and_em": []}
    out = tmp_path / "train.jsonl"
    assert store.export_training_set(out, "rated_or_em") == 2
    back = list(read_trajectories(out))  # the trainer's input format
    assert [t.id for t in back] == ["run001", "run002"]
    assert back[1].evidence.rating == 1.0 and back[1].em == 0.0 and back[0].evidence.rating is None


def test_secrets_from_the_environment_never_reach_the_database_or_exports(store, tmp_path, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    t = _traj(1)
    t.status, t.reason = "failed", f"model error: 401 invalid key {secret}"
    t.steps[0].observation = f"echo {secret}"
    store.save_run(t, source="arena", agent_key="A")
    store.export_tables(tmp_path / "x", "jsonl")
    dumped = "".join(p.read_text() for p in (tmp_path / "x").iterdir())
    assert secret not in dumped and "[redacted]" in dumped
    assert secret not in json.dumps(store.get_run("run001").to_dict())
    assert redact(f"a {secret} b", {"MY_TOKEN": secret}) == "a [redacted] b"
    assert redact("short", {"X_KEY": "short"}) == "short"  # too short to be a real secret


def test_noise_pool_holds_clean_tool_observations(store):
    t = _traj(1)
    t.steps[0].noise = "clean"
    store.save_run(t, source="arena", agent_key="A")
    n = _traj(2)
    n.steps[0].noise, n.steps[0].observation = "none", "None"
    store.save_run(n, source="arena", agent_key="A")
    assert store.noise_pool() == ["page 1"]


def test_open_returns_one_store_per_file(tmp_path):
    a = Store.open(tmp_path / "one.duckdb")
    assert Store.open(str(tmp_path / "one.duckdb")) is a
    a.close()
    b = Store.open(tmp_path / "one.duckdb")
    assert b is not a and not b.closed
    b.close()


def test_hub_snapshots_are_parquet_in_a_new_folder_per_push_never_the_database(store, tmp_path, monkeypatch):
    from hub_server import TOKEN, HubServer
    from huggingface_hub import constants

    from fireact_core.store.backups import Durability
    from fireact_core.store.durable import DurableTargets

    store.save_run(_traj(1), source="arena", agent_key="A")
    with HubServer() as hub:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        durable = Durability(store, DurableTargets(hub_repo="tester/ratings", token=TOKEN, endpoint=hub.url))
        assert durable.copy("hub")
        first = dict(hub.repos["tester/ratings"]["files"])
        store.rate("run001", "r", source="arena", score=1)
        assert durable.copy("hub")
        durable.stop(final=False)
        repo = hub.repos["tester/ratings"]
    assert repo["private"] is True
    files = repo["files"]
    assert all(files[name] == data for name, data in first.items())  # the second push replaced nothing
    folders = sorted({name.rsplit("/", 1)[0] for name in files})
    assert len(folders) == 2 and all(f.startswith("snapshots/") for f in folders)
    assert {f"{folders[1]}/{t}.parquet" for t in ("runs", "ratings", "votes")} <= set(files)
    assert not any(name.endswith((".duckdb", ".wal")) for name in files)
    back = tmp_path / "ratings.parquet"
    for folder, n in zip(folders, (0, 1)):
        back.write_bytes(files[f"{folder}/ratings.parquet"])
        con = duckdb.connect(":memory:")
        assert con.execute(f"SELECT count(*) FROM read_parquet('{back}')").fetchone()[0] == n
        con.close()


def test_concurrent_writes_share_a_commit_and_a_failing_one_fails_alone(store, monkeypatch):
    import concurrent.futures as cf
    import threading
    import time

    for i in range(20):
        store.save_battle(f"b{i}", run_a=_traj(2 * i), run_b=_traj(2 * i + 1), key_a="A", key_b="B", blind=True, rater_id=None)
    sizes: list[int] = []
    run_batch = store._run_batch
    monkeypatch.setattr(store, "_run_batch", lambda batch: (sizes.append(len(batch)), run_batch(batch))[1])
    gate, inside = threading.Event(), threading.Event()
    hold: cf.Future = cf.Future()
    # Keep the writer busy (queued before any vote) while the votes queue up behind it.
    store._pending.put((lambda cur: (inside.set(), gate.wait(10)), hold))
    assert inside.wait(10)
    with cf.ThreadPoolExecutor(24) as ex:
        votes = [ex.submit(store.record_vote, f"b{i}", f"r{i}", "a") for i in range(20)]
        dup = ex.submit(store.record_vote, "b3", "late", "b")
        deadline = time.monotonic() + 20
        while store._pending.qsize() < 21 and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        hold.result()
        ids = [f.result() for f in votes[:3]] + [f.result() for f in votes[4:]]
        results = []
        for f in (votes[3], dup):
            try:
                results.append(f.result())
            except InputError as e:
                results.append(e)
    assert len(ids) == 19 and all(isinstance(x, str) for x in ids)
    assert sum(isinstance(x, InputError) for x in results) == 1  # one of the two votes on b3 lost the race
    assert store.count("votes") == 20
    assert max(sizes) == 21  # the queued votes went in as one batch (one INSERT, one commit)



def test_a_vote_goes_ahead_of_queued_trajectory_saves(store, monkeypatch):
    import concurrent.futures as cf
    import threading
    import time

    from fireact_core.store import HEAVY_BATCH, _light

    store.save_battle("b0", run_a=_traj(0), run_b=_traj(1), key_a="A", key_b="B",
                      blind=True, rater_id=None)
    batches: list[list[bool]] = []
    run_batch = store._run_batch
    monkeypatch.setattr(store, "_run_batch", lambda b: (batches.append([_light(op) for op, _ in b]), run_batch(b))[1])
    gate, inside = threading.Event(), threading.Event()
    hold: cf.Future = cf.Future()
    store._pending.put((lambda cur: (inside.set(), gate.wait(10)), hold))
    assert inside.wait(10)
    n = 3 * HEAVY_BATCH
    with cf.ThreadPoolExecutor(n + 2) as ex:
        saves = [ex.submit(store.save_battle, f"s{i}", run_a=_traj(10 + 2 * i), run_b=_traj(11 + 2 * i), key_a="A",
                           key_b="B", blind=True, rater_id=None) for i in range(n)]
        deadline = time.monotonic() + 20
        while store._pending.qsize() < n and time.monotonic() < deadline:
            time.sleep(0.01)
        vote = ex.submit(store.record_vote, "b0", "r", "a")
        rating = ex.submit(store.rate, _traj(0).id, "r", source="arena", score=1)
        while store._pending.qsize() < n + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        vote.result(), rating.result(), [f.result() for f in saves]
    assert batches[1] == [True, True]  # right after the op that held the writer: the vote and the rating, together
    assert all(not any(b) and len(b) <= HEAVY_BATCH for b in batches[2:])
    assert sum(len(b) for b in batches[2:]) == n and store.count("battles") == n + 1 and store.count("votes") == 1


def test_an_op_that_raises_in_a_batch_leaves_the_others_written(store):
    import concurrent.futures as cf
    import threading
    import time

    gate, inside = threading.Event(), threading.Event()
    hold: cf.Future = cf.Future()
    store._pending.put((lambda cur: (inside.set(), gate.wait(10)), hold))
    assert inside.wait(10)
    with cf.ThreadPoolExecutor(3) as ex:
        good = ex.submit(store.touch_rater, "anon:ok")
        bad = ex.submit(store.rate, "no-such-run", "anon:ok", source="arena", score=1)
        also = ex.submit(store.import_trajectories, [_traj(7)])
        while store._pending.qsize() < 3:
            time.sleep(0.01)
        gate.set()
        with pytest.raises(InputError, match="no such trajectory"):
            bad.result()
        good.result()
        assert also.result() == 1
    assert store.count("raters") == 1 and store.count("runs") == 1 and store.count("ratings") == 0


def test_a_version_1_file_upgrades_and_its_steps_come_from_the_trajectories(tmp_path):
    """Migration 3: each trajectory is kept once (its JSON in runs); `steps` is a view of it with the same columns."""
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version(version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    for sql in MIGRATIONS[0][1]:
        con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    t = _traj(1)
    con.execute("INSERT INTO runs VALUES (?, 'import', NULL, 'm', 'm', NULL, 'react', false, 'off', 0.5, 0, '', ?, "
                "'ans', 'ans', 1.0, 1.0, 'finished', NULL, 2, 0.0, 0, 0, 0.0, ?, now())",
                [t.id, t.question, json.dumps(t.to_dict())])
    con.execute("INSERT INTO steps VALUES (?, 0, 0, 'look', 'search', 'topic 1', 'page 1', 'clean', 0, 0, 0.0, NULL)",
                [t.id])
    con.close()
    s = Store(path)
    try:
        assert s.version() == MIGRATIONS[-1][0]
        rows = s._rows("SELECT * FROM steps ORDER BY idx")
        assert [(r["run_id"], r["idx"], r["action"], r["observation"], r["error"]) for r in rows] == [
            ("run001", 0, "search", "page 1", None), ("run001", 1, "finish", "", None)]
        assert s.noise_pool() == ["page 1"] and s.count("steps") == 2
        s.save_run(_traj(2), source="arena")  # a new run's steps appear in the view with no second write
        assert s.count("steps") == 4
    finally:
        s.close()
