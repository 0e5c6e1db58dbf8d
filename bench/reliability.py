"""Reliability figures (issue 14): load, crashes, a second writer, fuzzed model output, and the page checks.

Each part runs the real app (`python app.py --fake` on 127.0.0.1, a real DuckDB file) and
prints its figures; docs/reliability.md keeps them with the command that produced each.

    .venv/bin/python bench/reliability.py load     # 50 rater processes × 20 battle → vote rounds
    .venv/bin/python bench/reliability.py crash    # kill -9 the app 10 times mid vote storm, restart each time
    .venv/bin/python bench/reliability.py writer   # a second app on the same database file
    .venv/bin/python bench/reliability.py fuzz     # hypothesis: fuzzed model outputs through parser, loop, store
    .venv/bin/python bench/reliability.py checks   # the page, secrets, bad requests, limits and admin (pytest)
    .venv/bin/python bench/reliability.py durable  # lost containers: kill -9, wipe the disk, restore (bench/durable.py)

The fast versions of these run in `make test` (tests/test_reliability_*.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # this checkout's packages, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.app import PY, bench_votes, free_port, pct, start, stop
from fireact_core.paths import REPO as ROOT

QUESTION = "What is the capital of France?"
SETTINGS = ["fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, True]
NO_LIMITS = {"FIREACT_BATTLES_PER_MINUTE": "0", "FIREACT_RATINGS_PER_MINUTE": "0"}


# --- a vote storm that survives its server --------------------------------------------------
def _connect(url: str, stop: Any) -> Any:
    from gradio_client import Client

    while not stop.is_set():
        try:
            return Client(url, verbose=False, download_files=False, ssl_verify=False, httpx_kwargs={"timeout": 20})
        except Exception:  # the server is down (killed, restarting): try again
            time.sleep(0.3)
    return None


def storm_rater(url: str, rater: int, stop: Any, out: Any) -> None:
    """One rater process: battle → vote rounds until `stop` is set, reconnecting whenever the server dies.

    Every battle asks a question of its own (`… (rater R, round I)`), which the store keeps on the
    battle row: that is how an acknowledged vote is found in the file afterwards. A vote whose
    call failed is retried once, as a client would; the retry is counted, never a second row.
    """
    threading.excepthook = lambda _: None  # gradio_client's stream threads die with the server: not news here
    acked: list[str] = []
    sent = retries = errors = 0
    latency: list[float] = []
    c = _connect(url, stop)
    i = 0
    while c is not None and not stop.is_set():
        q = f"{QUESTION} (rater {rater}, round {i})"
        i += 1
        try:
            status = c.submit(q, *SETTINGS, api_name="/battle").result(timeout=30)[0]
        except Exception:
            errors += 1
            c = _connect(url, stop)
            continue
        if "Both agents finished" not in status:
            errors += 1
            continue
        sent += 1
        t = time.perf_counter()
        for attempt in range(2):
            try:
                reveal = c.submit(api_name="/vote_a").result(timeout=30)[0]
            except Exception:
                errors += 1
                retries += attempt == 0
                c = _connect(url, stop) if attempt == 0 else c
                if c is None:
                    break
                continue
            if "is saved" in reveal:
                acked.append(q)
                latency.append(time.perf_counter() - t)
            break
    out.put({"acked": acked, "sent": sent, "retries": retries, "errors": errors, "latency": latency})


@dataclass
class CrashResult:
    kills: int
    sent: int = 0
    acked: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    orphans: int = 0
    retries: int = 0
    errors: int = 0
    restart_s: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def crash_storm(db: Path, *, kills: int, raters: int, storm_s: tuple[float, float] = (1.5, 4.0), seed: int = 0,
                log: Path | None = None) -> CrashResult:
    """`raters` client processes vote while the app is killed with SIGKILL `kills` times and restarted on its port."""
    import duckdb

    rng = random.Random(seed)
    port = free_port()
    args, env = ["--fake", "--db", str(db)], NO_LIMITS
    proc, url, _ = start(args, env, port=port, log=log)
    res = CrashResult(kills)
    t0 = time.monotonic()
    ctx = mp.get_context("fork")
    out, storm_over = ctx.Queue(), ctx.Event()
    clients = [ctx.Process(target=storm_rater, args=(url, r, storm_over, out)) for r in range(raters)]
    for c in clients:
        c.start()
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(*storm_s))  # votes in flight
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            k = time.monotonic()
            proc, _, _ = start(args, env, port=port, log=log)
            res.restart_s.append(time.monotonic() - k)
        time.sleep(storm_s[1])
        storm_over.set()  # the raters finish their round and report
        for _ in clients:
            r = out.get(timeout=120)
            res.acked += r["acked"]
            res.sent += r["sent"]
            res.retries += r["retries"]
            res.errors += r["errors"]
            res.latency += r["latency"]
        for c in clients:
            c.join(timeout=30)
    finally:
        for c in clients:
            if c.is_alive():
                c.kill()
        stop(proc)
        res.wall_s = time.monotonic() - t0
    con = duckdb.connect(str(db), read_only=True)  # opens cleanly after ten crashes, or raises here
    res.stored = [r[0] for r in con.execute("SELECT b.question FROM votes v JOIN battles b ON b.id = v.battle_id")
                  .fetchall()]
    res.duplicates = con.execute("SELECT count(*) - count(DISTINCT battle_id) FROM votes").fetchone()[0]
    res.duplicates += con.execute("SELECT count(*) - count(DISTINCT question) FROM battles").fetchone()[0]
    res.orphans = con.execute(
        "SELECT (SELECT count(*) FROM votes WHERE battle_id NOT IN (SELECT id FROM battles)) + "
        "(SELECT count(*) FROM battles WHERE run_a NOT IN (SELECT id FROM runs) OR run_b NOT IN (SELECT id FROM runs)) + "
        "(SELECT count(*) FROM steps WHERE run_id NOT IN (SELECT id FROM runs))").fetchone()[0]
    con.close()
    res.lost = sorted(set(res.acked) - set(res.stored))
    return res


def bench_crash(kills: int, raters: int) -> CrashResult:
    with tempfile.TemporaryDirectory(prefix="fireact-crash-") as tmp:
        log = Path(tmp) / "app.log"
        res = crash_storm(Path(tmp) / "crash.duckdb", kills=kills, raters=raters, log=log)
        tracebacks = log.read_text(errors="replace").count("Traceback")
    ms = [x * 1000 for x in res.latency]
    print(f"\ncrash: {raters} rater processes voting while the app is killed with SIGKILL {kills} times "
          f"(restarted on the same port each time); {res.wall_s:.0f} s wall")
    print(f"  votes sent {res.sent} · acknowledged {len(res.acked)} · in the file after the last restart "
          f"{len(res.stored)} · acknowledged but lost {len(res.lost)}")
    print(f"  duplicate rows {res.duplicates} · orphan rows {res.orphans} · vote retries after a failed call "
          f"{res.retries} · failed calls {res.errors}")
    print(f"  restart to first page: p50 {statistics.median(res.restart_s):.1f} s · max {max(res.restart_s):.1f} s; "
          f"acknowledged vote round trip p50 {statistics.median(ms):.0f} ms · p95 {pct(ms, 0.95):.0f} ms; "
          f"tracebacks in the app's log {tracebacks}")
    return res


# --- a second writer -----------------------------------------------------------------------
def second_writer(db: Path, log: Path | None = None) -> dict[str, Any]:
    """A second `python app.py` on a file the first holds: its exit status and output; then the first still serves."""
    from gradio_client import Client

    first, url, _ = start(["--fake", "--db", str(db)], NO_LIMITS, log=log)
    try:
        t = time.perf_counter()
        second = subprocess.run([PY, "app.py", "--fake", "--db", str(db), "--port", str(free_port())], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - t
        c = Client(url, verbose=False, download_files=False, ssl_verify=False)
        status = c.predict(QUESTION, *SETTINGS, api_name="/battle")[0]
        reveal = c.predict(api_name="/vote_a")[0]
        return {"rc": second.returncode, "stderr": second.stderr.strip(), "stdout": second.stdout.strip(),
                "seconds": took, "first_pid": first.pid, "first_served": "Both agents finished" in status,
                "first_voted": "is saved" in reveal}
    finally:
        stop(first)


def bench_writer() -> None:
    with tempfile.TemporaryDirectory(prefix="fireact-writer-") as tmp:
        r = second_writer(Path(tmp) / "w.duckdb")
    print(f"\nsecond writer: exit status {r['rc']} after {r['seconds']:.1f} s; names the first's pid "
          f"{str(r['first_pid']) in r['stderr']}; traceback {'Traceback' in r['stderr']}; "
          f"lines {len(r['stderr'].splitlines())}")
    print(f"  it said: {r['stderr']}")
    print(f"  the first kept serving: battle {r['first_served']}, vote {r['first_voted']}")


# --- fuzzing and the pytest checks -------------------------------------------------------------
def bench_fuzz(examples: int) -> None:
    import json

    with tempfile.TemporaryDirectory(prefix="fireact-fuzz-") as tmp:
        report = Path(tmp) / "counts.json"
        env = {**os.environ, "FIREACT_FUZZ_EXAMPLES": str(examples), "FIREACT_FUZZ_REPORT": str(report),
               "HF_HUB_OFFLINE": "1"}
        t = time.perf_counter()
        r = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_reliability_fuzz.py"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        n = json.loads(report.read_text()) if report.exists() else {}
    print(f"\nfuzz: {examples} outputs through the parser alone; {n.get('runs', 0)} agent runs fed "
          f"{n.get('outputs', 0)} fuzzed model outputs through the loop ({n.get('steps', 0)} steps: "
          f"{n.get('invalid_steps', 0)} ended as an invalid-action observation; runs finished "
          f"{n.get('finished', 0)}, at the step limit {n.get('step_limit', 0)}; longest step text "
          f"{n.get('longest_output', 0):,} chars), each through the store, Parquet/JSONL exports and the "
          f"training-set JSONL; {time.perf_counter() - t:.0f} s")
    print("  pytest: " + (r.stdout.strip().splitlines() or ["(no output)"])[-1])
    if r.returncode:
        print(r.stdout[-3000:])


def bench_checks() -> None:
    files = ["tests/test_reliability_page.py", "tests/test_reliability_api.py"]
    r = subprocess.run([PY, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *files], cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    print("\nchecks: " + " ".join(files))
    for line in r.stdout.splitlines():
        if line.startswith(("PASSED", "FAILED", "ERROR")) or " passed" in line or " failed" in line:
            print("  " + line)


def bench_durable(battles: int, interval: float, kills: int, target: str) -> None:
    """Copy costs of a database of `battles` voted battles, then `kills` × (kill -9, wipe, restore) on it."""
    import shutil

    from bench.durable import copy_costs, loss_run, seed

    sys.path.insert(0, str(ROOT / "tests"))
    from hub_server import TOKEN, HubServer
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = False  # the stand-in Hub only
    with HubServer() as hub, tempfile.TemporaryDirectory(prefix="fireact-durable-") as tmp:
        c = copy_costs(battles, hub.url, TOKEN)
        print(f"\ndurable copies of a database of {battles:,} voted battles ({2 * battles:,} runs, "
              f"{c['db_mb']:.1f} MB; the copy {c['copy_mb']:.1f} MB):")
        print(f"  consistent copy {c['copy_s']:.2f} s · written into the bucket folder and renamed {c['bucket_put_s']:.2f} s"
              f" · restored from it {c['bucket_restore_s']:.2f} s · Hub snapshot pushed (stand-in Hub) "
              f"{c['hub_push_s']:.2f} s · restored from it {c['hub_restore_s']:.2f} s")
        db = Path(tmp) / "local" / "app.duckdb"
        db.parent.mkdir()
        seed(db, battles)
        env = {"FIREACT_BACKUP_DIR": str(Path(tmp) / "bucket"), "FIREACT_BACKUP_INTERVAL_S": str(interval)}
        if target == "hub":
            env = {"FIREACT_HUB_DATASET": "tester/loss", "FIREACT_HUB_INTERVAL_S": str(interval), "HF_TOKEN": TOKEN,
                   "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
        log = Path(tmp) / "app.log"
        res = loss_run(db, env, stops=("kill",) * kills, storm_s=(interval, 2 * interval), log=log)
        copies = [x for v in res.copy_s.values() for x in v]
        shutil.rmtree(Path(tmp) / "bucket", ignore_errors=True)
    ages = [a for _, a in res.lost]
    print(f"\nlost containers ({target}, a copy every {interval:g} s): {kills} × (kill -9 mid vote storm, local "
          f"database deleted, restart), 2 rater processes")
    print(f"  votes acknowledged {len(res.acked)} · lost {len(res.lost)} · oldest lost vote "
          f"{max(ages) if ages else 0:.1f} s before its kill · the window (interval + longest copy) "
          f"{interval + max(copies):.1f} s")
    print(f"  copies in the app's log {len(copies)}: p50 {statistics.median(copies):.2f} s, max {max(copies):.2f} s · "
          f"restart to first page (the restore included) p50 {statistics.median(res.restart_s):.1f} s")
    print(f"  the page said: {res.notes[-1]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["load", "crash", "writer", "fuzz", "checks", "durable", "all"])
    p.add_argument("--raters", type=int, default=None, help="load: 50; crash: 10")
    p.add_argument("--votes", type=int, default=20, help="load: rounds per rater")
    p.add_argument("--kills", type=int, default=None, help="crash: 10; durable: 3")
    p.add_argument("--examples", type=int, default=2000, help="fuzz: examples per check")
    p.add_argument("--battles", type=int, default=10_000, help="durable: voted battles in the database")
    p.add_argument("--interval", type=float, default=30.0, help="durable: seconds between copies")
    p.add_argument("--target", choices=["bucket", "hub"], default="bucket", help="durable: where the copies go")
    a = p.parse_args()
    print(f"machine: {os.cpu_count()} CPUs · python {sys.version.split()[0]}")
    parts = ["load", "crash", "writer", "fuzz", "checks", "durable"] if a.part == "all" else [a.part]
    for part in parts:
        if part == "load":  # separate client processes, one rater each
            n = a.raters or 50
            bench_votes(n, a.votes, waves=False, procs=n)
        elif part == "crash":
            bench_crash(a.kills or 10, a.raters or 10)
        elif part == "writer":
            bench_writer()
        elif part == "fuzz":
            bench_fuzz(a.examples)
        elif part == "durable":
            bench_durable(a.battles, a.interval, a.kills or 3, a.target)
        else:
            bench_checks()


if __name__ == "__main__":
    main()
