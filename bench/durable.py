"""Durable copies against lost containers: how many acknowledged votes a kill and a wiped disk can take.

`loss_run` runs the real `python app.py --fake` with durable copies on (a folder standing for the
storage bucket, or the stand-in Hub), has rater processes vote, kills the app with SIGKILL,
deletes its local database (a new container's empty disk) and starts it again, which restores
from the newest durable copy. Each acknowledged vote missing afterwards is lost, and its age at
the kill is how far back a lost container reaches. `copy_costs` times one copy of a database of
a given size. `bench/reliability.py durable` prints both; tests/test_durable_restart.py runs
one short kill of each kind.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import re
import signal
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.app import start, stop

QUESTION = "What is the capital of France?"
SETTINGS = ["fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, True]
NO_LIMITS = {"FIREACT_BATTLES_PER_MINUTE": "0", "FIREACT_RATINGS_PER_MINUTE": "0"}
WORDS = ("the", "of", "and", "in", "was", "a", "is", "by", "film", "directed", "born", "city", "river", "capital",
         "country", "American", "French", "1987", "1952", "album", "band", "museum", "novel", "written", "located",
         "county", "founded", "university", "actor", "singer", "Paris", "Tovarin", "Sels", "Ostrava", "northern")
_COPIED = re.compile(r"durable copy to the (storage bucket|Hub dataset): .*, taken at (\S+), in ([0-9.]+) s")


def _connect(url: str, over: Any) -> Any:
    from gradio_client import Client

    while not over.is_set():
        try:
            return Client(url, verbose=False, download_files=False, ssl_verify=False, httpx_kwargs={"timeout": 20})
        except Exception:  # the app is down (killed, restarting)
            time.sleep(0.3)
    return None


def rater(url: str, n: int, over: Any, out: Any, voting: Any) -> None:
    """Battle → vote until `over` is set; reports each acknowledged vote's question, when it was sent and when its
    acknowledgement arrived (wall clock).

    `voting` is set at the first acknowledged vote (connecting can take seconds on a loaded machine)."""
    threading.excepthook = lambda _: None  # gradio_client's stream threads die with the server
    acked: list[tuple[str, float]] = []
    c, i = _connect(url, over), 0
    while c is not None and not over.is_set():
        q = f"{QUESTION} (durable rater {n}, round {i})"
        i += 1
        try:
            if "Both agents finished" not in c.submit(q, *SETTINGS, api_name="/battle").result(timeout=30)[0]:
                continue
            sent = time.time()
            reveal = c.submit(api_name="/vote_a").result(timeout=30)[0]
        except Exception:
            c = _connect(url, over)
            continue
        if "is saved" in reveal:
            acked.append((q, sent, time.time()))
            voting.set()
    out.put(acked)


@dataclass
class LossResult:
    interval_s: float
    acked: list[tuple[str, float]] = field(default_factory=list)  # (question, when acknowledged)
    # when each vote was sent: it was committed between then and its acknowledgement, so the stop that can lose it
    # is the first one after it was sent (an acknowledgement read just after a kill came from the killed app)
    sent: dict[str, float] = field(default_factory=dict)
    kills: list[float] = field(default_factory=list)  # when each stop happened
    clean: list[bool] = field(default_factory=list)  # whether it was a clean stop (SIGTERM)
    stored: set[str] = field(default_factory=set)  # questions with a vote in the database at the end
    lost: list[tuple[str, float]] = field(default_factory=list)  # (question, its age at the kill that lost it)
    copy_s: dict[str, list[float]] = field(default_factory=dict)  # per target, from the app's log
    copies: list[tuple[float, float]] = field(default_factory=list)  # (taken at, seconds it took), from the log
    notes: list[str] = field(default_factory=list)  # what each restarted page said about its restore
    restart_s: list[float] = field(default_factory=list)

    def older_than(self, age: float, clean: bool = False) -> list[str]:
        """Acknowledged votes at least `age` seconds older than the stop (a kill, or with `clean` a SIGTERM) after them."""
        out = []
        for q, t in self.acked:
            stop = self.stop_after(q, t)
            if stop is not None and stop[1] == clean and stop[0] - t >= age:
                out.append(q)
        return out

    def stop_after(self, q: str, t: float) -> tuple[float, bool] | None:
        """(when, clean) of the first stop after vote `q` (acknowledged at `t`) was sent; None if none came."""
        sent = self.sent.get(q, t)
        return next(((k, c) for k, c in zip(self.kills, self.clean) if k > sent), None)


    def owed(self) -> list[str]:
        """Acknowledged votes older than the last copy that was finished before the kill after them.

        Acknowledged before a copy was taken means committed before it, so each of these must be back
        after any kill, however late a loaded machine ran the copies."""
        out = []
        for q, t in self.acked:
            kill, clean = self.stop_after(q, t) or (None, True)
            if kill is None or clean:
                continue
            done = [taken for taken, took in self.copies if taken + took < kill]
            if done and t < max(done):
                out.append(q)
        return out


def page_notes(url: str) -> str:
    """The restore line the page shows (its `fa-db-durable` Markdown), or ''."""
    with urllib.request.urlopen(url + "config", timeout=10) as r:
        config = json.loads(r.read())
    for c in config.get("components", []):
        if c.get("props", {}).get("elem_id") == "fa-db-durable":
            return str(c["props"].get("value", ""))
    return ""


def loss_run(db: Path, env: dict[str, str], *, stops: tuple[str, ...] = ("kill",), raters: int = 2,
             storm_s: tuple[float, float] = (3.0, 3.5), seed: int = 0, log: Path) -> LossResult:
    """Votes while the app is stopped once per entry of `stops` ("kill": SIGKILL, "term": SIGTERM, a clean stop),
    its local disk wiped and the app started again each time."""
    import duckdb

    rng = random.Random(seed)
    env = {**NO_LIMITS, **env}
    res = LossResult(float(env.get("FIREACT_BACKUP_INTERVAL_S") or env.get("FIREACT_HUB_INTERVAL_S") or 0))
    args = ["--fake", "--db", str(db)]
    proc, url, _ = start(args, env, log=log)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    ctx = mp.get_context("fork")
    out, over, voting = ctx.Queue(), ctx.Event(), ctx.Event()
    clients = [ctx.Process(target=rater, args=(url, r, over, out, voting)) for r in range(raters)]
    for c in clients:
        c.start()
    try:
        for how in stops:
            voting.clear()
            if not voting.wait(120):
                raise SystemExit("no vote was acknowledged within 120 s")
            time.sleep(rng.uniform(*storm_s))  # from the first vote acknowledged since the (re)start
            if how == "term":
                stop(proc)
            else:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            res.kills.append(time.time())  # once it is gone: every acknowledgement came before this
            res.clean.append(how == "term")
            for p in (db, Path(f"{db}.wal")):  # the new container's empty disk
                p.unlink(missing_ok=True)
            t = time.monotonic()
            proc, _, _ = start(args, env, port=port, log=log)
            res.restart_s.append(time.monotonic() - t)
            res.notes.append(page_notes(url))
        over.set()
        for _ in clients:
            for q, sent, t in out.get(timeout=120):
                res.acked.append((q, t))
                res.sent[q] = sent
    finally:
        over.set()
        for c in clients:
            c.join(timeout=30)
            if c.is_alive():
                c.kill()
        stop(proc)
    con = duckdb.connect(str(db), read_only=True)
    try:
        res.stored = {r[0] for r in con.execute("SELECT b.question FROM votes v JOIN battles b ON b.id = v.battle_id")
                      .fetchall()}
    finally:
        con.close()
    for q, t in res.acked:
        if q not in res.stored:  # its age at the stop that lost it (0 when the acknowledgement was read after it)
            lost_at = res.stop_after(q, t)
            res.lost.append((q, max(0.0, lost_at[0] - t) if lost_at else 0.0))
    for m in _COPIED.finditer(log.read_text(errors="replace")):
        res.copy_s.setdefault(m.group(1), []).append(float(m.group(3)))
        res.copies.append((datetime.fromisoformat(m.group(2)).timestamp(), float(m.group(3))))
    return res


# --- a database of a given size ------------------------------------------------------------------
def seed(db: Path, battles: int, steps: int = 6, observation_chars: int = 400) -> int:
    """A database of `battles` voted battles (two runs of `steps` steps each); returns its size in bytes."""
    from fireact_core.store import Store
    from fireact_core.trajectory import Step, Trajectory

    store = Store.open(db)
    obs = "OBSERVATION-TEXT"  # each copy of the template gets its own words below, so the file compresses as text does
    mk = [Trajectory(question=f"seed question {k}?", id=f"seed-run-{k}", gold="Paris", answer="Paris", em=1.0, f1=1.0,
                     status="finished", steps=[Step(thought=f"I look up part {j}.", action="search", argument=f"topic {j}",
                                                    observation=obs) for j in range(steps - 1)]
                     + [Step(thought="I know it.", action="finish", argument="Paris")],
                     agent={"model": "fake:scripted", "finetuned": k == 1, "exemplars": 2,
                            "noise": {"mode": "off", "p": 0.5, "seed": 0}}) for k in (0, 1)]
    store.save_battle("seed-battle", run_a=mk[0], run_b=mk[1], blind=True, rater_id="seed")
    store.record_vote("seed-battle", "seed", "a")
    with store._write() as cur:  # the template repeated in SQL: minutes of app time in a second
        words = ", ".join(f"'{w}'" for w in WORDS)
        suffix = "CASE WHEN i = 0 THEN '' ELSE '-' || i END"
        cur.execute(f"CREATE TEMP TABLE seed_runs AS SELECT r.* REPLACE (r.id || {suffix} AS id, r.battle_id || "
                    f"{suffix} AS battle_id, replace(r.trajectory, 'OBSERVATION-TEXT', array_to_string(list_transform("
                    f"range(?), lambda x: [{words}][(1 + hash(i * 7919 + x) % {len(WORDS)})::BIGINT]), ' ')) AS trajectory) "
                    f"FROM runs r, range(0, ?) t(i)", [observation_chars // 6, battles])
        cur.execute("DELETE FROM runs")
        cur.execute("INSERT INTO runs SELECT * FROM seed_runs")
        cur.execute("DROP TABLE seed_runs")
        cur.execute("INSERT INTO battles SELECT b.* REPLACE (b.id || '-' || i AS id, b.question || ' ' || "
                    "i AS question, b.run_a || '-' || i AS run_a, b.run_b || '-' || i AS run_b) FROM battles b, "
                    "range(1, ?) t(i)", [battles])
        cur.execute("INSERT INTO votes SELECT v.* REPLACE (v.id || '-' || i AS id, v.battle_id || '-' || i "
                    "AS battle_id) FROM votes v, range(1, ?) t(i)", [battles])
    store.close()
    return db.stat().st_size


def copy_costs(battles: int, hub_url: str | None = None, token: str | None = None) -> dict[str, float]:
    """Seconds for one copy of a seeded database: the consistent copy, the bucket write, a restore from it,
    and (with `hub_url`) a Hub snapshot push and a restore from it."""
    from fireact_core.store import Store
    from fireact_core.store.durable import BucketCopy, DurableTargets, open_with_restore, take_copy

    with tempfile.TemporaryDirectory(prefix="fireact-copycost-") as tmp:
        d = Path(tmp)
        out: dict[str, float] = {"db_mb": seed(d / "live.duckdb", battles) / 1e6}
        store = Store.open(d / "live.duckdb")
        t = time.perf_counter()
        info = take_copy(store, d / "copy.duckdb")
        out["copy_s"] = time.perf_counter() - t
        t = time.perf_counter()
        BucketCopy(d / "bucket").put(d / "copy.duckdb")
        out["bucket_put_s"] = time.perf_counter() - t
        out["copy_mb"] = (d / "copy.duckdb").stat().st_size / 1e6
        t = time.perf_counter()
        back, _ = open_with_restore(d / "restored" / "app.duckdb", DurableTargets(bucket_dir=d / "bucket"), Store.open)
        out["bucket_restore_s"] = time.perf_counter() - t
        assert back.count("votes") == battles
        back.close()
        if hub_url:
            targets = DurableTargets(hub_repo="tester/ratings", token=token, endpoint=hub_url)
            t = time.perf_counter()
            targets.hub().push(d / "copy.duckdb", info)
            out["hub_push_s"] = time.perf_counter() - t
            t = time.perf_counter()
            back, _ = open_with_restore(d / "restored-hub" / "app.duckdb", targets, Store.open)
            out["hub_restore_s"] = time.perf_counter() - t
            assert back.count("votes") == battles
            back.close()
        store.close()
    return out
