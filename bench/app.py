"""App benchmarks (figures, not tests).

1. Start-up: seconds from `python app.py` to the first served page, for the scripted fake
   config (`--fake`) and for the default config (SmolLM2 and the offline world; the model
   itself loads on the first battle, so this is the page, not the model).
2. Votes: N concurrent gradio_client raters (default 50) each run R battles on the fake
   models and vote on each (default 20); the vote round trip (click → confirmed, i.e. the
   row committed in DuckDB) is timed on the client. Prints p50/p95/max and the number of
   votes stored in the database against the number sent. Target: p95 ≤ 300 ms, 0 lost.
   Two load shapes, both run by default (`--mode`):
   - independent (the target's reading): each rater loops battle → vote → no-op with no
     think time, so votes land while other raters' battles stream, as on a busy Space;
   - waves (a stress test): all N raters vote at the same instant after each battle round.
     A burst of N calls costs N × Gradio's per-call work on the server's one event-loop
     thread, so the no-op's figure under the same burst is the floor any endpoint shares.
   The raters are threads spread over `--client-procs` processes (default 10), as 50 browsers
   would not share one GIL; the server's and the clients' CPU are printed against what the
   machine's cores offer. An unloaded round trip (one rater alone) is printed first: it
   includes gradio_client's own wait, which polls for the server's messages every 50 ms (a
   browser is pushed them), so no call through it comes back much faster than that.

    .venv/bin/python bench/app.py                   # both parts, 50 raters × 20 votes
    .venv/bin/python bench/app.py --raters 10 --votes 5 --skip-default --mode independent
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy
from fireact_core.paths import REPO as ROOT

PY = sys.executable


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(args: list[str], env: dict[str, str] | None = None, *, port: int | None = None,
          log: Path | None = None) -> tuple[subprocess.Popen, str, float]:
    """Start the app; return (process, url, seconds until the first page was served).

    `port`: a fixed port (a restart on the same address); `log`: append its output to this file.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    out = log.open("a") if log else None
    proc = subprocess.Popen([PY, "app.py", "--port", str(port), *args], cwd=ROOT,
                            stdout=out or subprocess.DEVNULL, stderr=out or subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    if out:
        out.close()  # the child holds its own descriptor
    while True:
        if proc.poll() is not None:
            why = log.read_text()[-2000:] if log else proc.stderr.read()[-2000:]
            raise SystemExit(f"the app exited with {proc.returncode}:\n{why}")
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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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


def rater(url: str, votes: int, stats: dict[str, list], lock: threading.Lock,
          barrier: threading.Barrier | None) -> None:
    """One rater: `votes` × (a fake battle, a timed vote, a timed no-op call).

    With a barrier, every rater votes at the same moment (waves of N simultaneous votes);
    without one, votes land while other raters' battles run (independent raters). The no-op
    (`/random_question`: no queue, no database) is the floor: what any call costs through
    gradio_client and the server under the same load.
    """
    from gradio_client import Client

    # Plain HTTP on loopback: with ssl_verify on, gradio_client loads the CA bundle for every request
    # (~50 ms of CPU each), and here the raters share the server's 2 cores; a browser pays nothing of it.
    c = Client(url, verbose=False, download_files=False, ssl_verify=not url.startswith("http://"),
               httpx_kwargs={"timeout": 300})
    for i in range(votes):
        q = ("What is the capital of France?", "Which river flows through the capital of France?")[i % 2]
        c.predict(q, "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, True, api_name="/battle")
        if barrier is not None:
            try:
                barrier.wait(timeout=300)
            except threading.BrokenBarrierError:
                barrier = None  # a rater died: go on without waves
        with lock:
            stats["sent"].append(1)
        t = time.perf_counter()
        try:
            reveal = c.predict(api_name=f"/vote_{'ab'[i % 2]}")[0]
        except Exception as e:
            with lock:
                stats["errors"].append(f"vote: {type(e).__name__}: {e}")
            continue
        dt = time.perf_counter() - t
        t = time.perf_counter()
        c.predict(api_name="/random_question")
        with lock:
            stats["floor"].append(time.perf_counter() - t)
            if "is saved" in reveal:
                stats["vote"].append(dt)
            else:
                stats["errors"].append(reveal[:200])


def _client_proc(url: str, n: int, votes: int, barrier: Any, out: Any) -> None:
    """One client process: `n` rater threads; sends its stats (and its CPU seconds) back on `out`."""
    stats: dict[str, list] = {"vote": [], "floor": [], "errors": [], "sent": []}
    lock = threading.Lock()
    with cf.ThreadPoolExecutor(n) as pool:
        futs = [pool.submit(rater, url, votes, stats, lock, barrier) for _ in range(n)]
        for f in cf.as_completed(futs):
            try:
                f.result()
            except Exception as e:  # a rater that failed outright (e.g. a battle timed out)
                stats["errors"].append(f"rater: {type(e).__name__}: {e}")
                if barrier is not None:
                    barrier.abort()
    out.put({**stats, "cpu": [time.process_time()]})


def bench_unloaded(votes: int = 10) -> None:
    """One rater alone: the round trip with nothing else on the server (gradio_client's 50 ms poll included)."""
    tmp = Path(tempfile.mkdtemp(prefix="fireact-bench-"))
    proc, url, _ = start(["--fake", "--db", str(tmp / "bench.duckdb")])
    stats: dict[str, list] = {"vote": [], "floor": [], "errors": [], "sent": []}
    try:
        rater(url, votes, stats, threading.Lock(), None)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    ms, fl = ([x * 1000 for x in stats[k]] for k in ("vote", "floor"))
    print(f"\nunloaded (one rater, {votes} votes): vote p50 {statistics.median(ms):.0f} ms · "
          f"no-op p50 {statistics.median(fl):.0f} ms")
    for e in stats["errors"][:5]:
        print("  error:", e)


def bench_votes(raters: int, votes: int, waves: bool, procs: int) -> None:
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="fireact-bench-"))
    db = tmp / "bench.duckdb"
    # Each rater runs `votes` battles in about a minute: lift the per-rater battle limit for the bench.
    proc, url, _ = start(["--fake", "--db", str(db)], env={"FIREACT_BATTLES_PER_MINUTE": str(votes * 10)})
    # Raters are spread over `procs` client processes: 50 raters in one process would queue on its
    # GIL, and that wait (not the server's) would show up in the round trip.
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(raters) if waves else None
    out = ctx.Queue()
    sizes = [raters // procs + (i < raters % procs) for i in range(procs)]
    t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
    clients = [ctx.Process(target=_client_proc, args=(url, n, votes, barrier, out)) for n in sizes if n]
    stats: dict[str, list] = {"vote": [], "floor": [], "errors": [], "sent": [], "cpu": []}
    try:
        for c in clients:
            c.start()
        for _ in clients:
            for k, v in out.get(timeout=3600).items():
                stats[k] += v
        for c in clients:
            c.join()
    finally:
        wall, cpu1 = time.perf_counter() - t0, cpu_seconds(proc.pid)
        for c in clients:
            if c.is_alive():
                c.kill()
        stop(proc)
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT count(*) FROM votes").fetchone()[0]
    battles = con.execute("SELECT count(*) FROM battles").fetchone()[0]
    con.close()
    shutil.rmtree(tmp, ignore_errors=True)
    sent, confirmed = len(stats["sent"]), len(stats["vote"])
    ms = [x * 1000 for x in stats["vote"]]
    fl = [x * 1000 for x in stats["floor"]]
    if waves:
        print(f"\nvotes, stress: {raters} raters × {votes} votes in waves of {raters} simultaneous votes "
              f"(after each battle round); {wall:.0f} s wall")
    else:
        print(f"\nvotes, independent raters: {raters} concurrent raters × {votes} votes, each after a fake battle, "
              f"landing while the other raters' battles run; {wall:.0f} s wall")
    if ms:
        p95 = pct(ms, 0.95)
        verdict = "" if waves else f" (target p95 ≤ 300 ms: {'met' if p95 <= 300 else 'missed'})"
        print(f"  vote round trip: p50 {statistics.median(ms):.0f} ms · p95 {p95:.0f} ms · "
              f"max {max(ms):.0f} ms · mean {statistics.fmean(ms):.0f} ms{verdict}")
    if fl:
        print(f"  no-op call (floor, same load): p50 {statistics.median(fl):.0f} ms · p95 {pct(fl, 0.95):.0f} ms")
    if cpu0 is not None and cpu1 is not None:
        calls = raters * votes * 3
        per_call = 1000 * (cpu1 - cpu0) / calls
        print(f"  server CPU {cpu1 - cpu0:.1f} s for {calls} calls (battle, vote, no-op per round): "
              f"{per_call:.1f} ms a call on average; clients' CPU {sum(stats['cpu']):.1f} s "
              f"in {len(clients)} processes; {os.cpu_count()} CPUs × {wall:.0f} s = {os.cpu_count() * wall:.0f} CPU-s")
        if waves and fl:
            print(f"  a burst of {raters} calls holds the server's event loop for about {raters} × the per-call work: "
                  f"even the no-op's p95 is {pct(fl, 0.95):.0f} ms under it")
    print(f"  votes sent {sent} · confirmed {confirmed} · stored {stored} · confirmed but not stored "
          f"{max(0, confirmed - stored)} · errors {len(stats['errors'])} (battles stored: {battles} of {raters * votes})")
    for e in stats["errors"][:5]:
        print("  error:", e)


def bench_store(raters: int, votes: int) -> None:
    """The database part alone: `raters` threads × `votes` durable record_vote calls on one Store."""
    from fireact_core.store import Store
    from fireact_core.trajectory import Step, Trajectory

    tmp = Path(tempfile.mkdtemp(prefix="fireact-bench-store-"))
    store = Store(tmp / "store.duckdb")
    n = raters * votes
    for i in range(n):
        t = [Trajectory(question="q", id=f"r{i}{s}", steps=[Step(action="finish", argument="x")]) for s in "ab"]
        store.save_battle(f"b{i}", run_a=t[0], run_b=t[1], key_a="A", key_b="B",
                          blind=True, rater_id=None)
    lat: list[float] = []
    lock = threading.Lock()

    def one(r: int) -> None:
        for v in range(votes):
            t = time.perf_counter()
            store.record_vote(f"b{r * votes + v}", f"rater{r}", "a")
            with lock:
                lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(raters) as pool:
        list(pool.map(one, range(raters)))
    wall = time.perf_counter() - t0
    stored = store.count("votes")
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    ms = [x * 1000 for x in lat]
    print(f"\nstore only: {raters} threads × {votes} durable votes (group commit), {n / wall:.0f} votes/s: "
          f"p50 {statistics.median(ms):.1f} ms · p95 {pct(ms, 0.95):.1f} ms · stored {stored} of {n}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--votes", type=int, default=20)
    p.add_argument("--skip-default", action="store_true", help="skip the default config's start-up time")
    p.add_argument("--skip-votes", action="store_true")
    p.add_argument("--mode", choices=["independent", "waves", "both"], default="both",
                   help="independent raters (the target), synchronized waves (stress), or both")
    p.add_argument("--client-procs", type=int, default=10, help="client processes the raters are spread over")
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
    bench_store(a.raters, a.votes)
    if not a.skip_votes:
        bench_unloaded()
        for waves in {"independent": [False], "waves": [True], "both": [False, True]}[a.mode]:
            bench_votes(a.raters, a.votes, waves=waves, procs=max(1, a.client_procs))


if __name__ == "__main__":
    main()
