"""App benchmarks (figures, not tests).

1. Start-up: seconds from `python app.py` to the first served page, for the scripted fake
   config (`--fake`) and for the default config (SmolLM2 and the offline world; the model
   itself loads on the first battle, so this is the page, not the model).
2. Votes: N concurrent gradio_client raters (default 50) each run R battles on the fake
   models and vote on each (default 20); the vote round trip (click → confirmed, i.e. the
   row committed in DuckDB) is timed on the client. Prints p50/p95/max and the number of
   votes stored in the database against the number sent. Target: p95 ≤ 300 ms, 0 lost.

    .venv/bin/python bench/app.py                   # both parts, 50 raters × 20 votes
    .venv/bin/python bench/app.py --raters 10 --votes 5 --skip-default
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, float]:
    """Start the app; return (process, url, seconds until the first page was served)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, "app.py", "--port", str(port), *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}:\n{proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200 and b"FireAct" in r.read():
                    return proc, url, time.perf_counter() - t0
        except OSError:
            pass
        if time.perf_counter() - t0 > 300:
            proc.kill()
            raise SystemExit("the app did not serve a page within 300 s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def rater(url: str, votes: int, latencies: list[float], errors: list[str], lock: threading.Lock,
          floor: list[float]) -> int:
    """One rater: `votes` × (battle, a timed vote, a timed no-op call). Returns the votes confirmed.

    The no-op (`/random_question`, no queue, no database) is the floor: what any call costs
    through gradio_client and the server under the same load.
    """
    from gradio_client import Client

    c = Client(url, verbose=False, download_files=False)
    confirmed = 0
    for i in range(votes):
        q = ("What is the capital of France?", "Which river flows through the capital of France?")[i % 2]
        c.predict(q, "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, True, api_name="/battle")
        t = time.perf_counter()
        reveal = c.predict(api_name=f"/vote_{'ab'[i % 2]}")[0]
        dt = time.perf_counter() - t
        t = time.perf_counter()
        c.predict(api_name="/random_question")
        with lock:
            floor.append(time.perf_counter() - t)
            if "is saved" in reveal:
                latencies.append(dt)
                confirmed += 1
            else:
                errors.append(reveal[:200])
    return confirmed


def bench_votes(raters: int, votes: int) -> None:
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="fireact-bench-"))
    db = tmp / "bench.duckdb"
    # Each rater runs `votes` battles in about a minute: lift the per-rater battle limit for the bench.
    proc, url, _ = start(["--fake", "--db", str(db)], env={"FIREACT_BATTLES_PER_MINUTE": str(votes * 10)})
    latencies: list[float] = []
    floor: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.perf_counter()
    try:
        with cf.ThreadPoolExecutor(raters) as pool:
            futs = [pool.submit(rater, url, votes, latencies, errors, lock, floor) for _ in range(raters)]
            confirmed = 0
            for f in cf.as_completed(futs):
                try:
                    confirmed += f.result()
                except Exception as e:  # a rater that failed outright (connection) counts as lost votes
                    errors.append(f"{type(e).__name__}: {e}")
    finally:
        wall = time.perf_counter() - t0
        stop(proc)
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT count(*) FROM votes").fetchone()[0]
    battles = con.execute("SELECT count(*) FROM battles").fetchone()[0]
    con.close()
    shutil.rmtree(tmp, ignore_errors=True)
    sent = raters * votes
    ms = [x * 1000 for x in latencies]
    print(f"\nvotes: {raters} concurrent raters × {votes} votes (each after a fake battle), {wall:.0f} s wall")
    if ms:
        print(f"  vote round trip: p50 {statistics.median(ms):.0f} ms · p95 {pct(ms, 0.95):.0f} ms · "
              f"max {max(ms):.0f} ms · mean {statistics.fmean(ms):.0f} ms (target p95 ≤ 300 ms)")
    if floor:
        fl = [x * 1000 for x in floor]
        print(f"  no-op call (floor, same load): p50 {statistics.median(fl):.0f} ms · p95 {pct(fl, 0.95):.0f} ms")
    print(f"  sent {sent} · confirmed {len(latencies)} · stored {stored} · lost {sent - stored} "
          f"(battles stored: {battles})")
    for e in errors[:5]:
        print("  error:", e)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--votes", type=int, default=20)
    p.add_argument("--skip-default", action="store_true", help="skip the default config's start-up time")
    p.add_argument("--skip-votes", action="store_true")
    a = p.parse_args()
    print(f"machine: {os.cpu_count()} CPUs · python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        proc, _, secs = start(["--fake", "--db", str(Path(tmp) / "fake.duckdb")])
        stop(proc)
        print(f"start-up to first page, fake config:    {secs:.1f} s")
        if not a.skip_default:
            proc, _, secs = start(["--db", str(Path(tmp) / "default.duckdb")])
            stop(proc)
            print(f"start-up to first page, default config: {secs:.1f} s")
    if not a.skip_votes:
        bench_votes(a.raters, a.votes)


if __name__ == "__main__":
    main()
