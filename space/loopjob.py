"""The admin's "train a new adapter from the ratings" button: `train.loop.run_loop` in a process of its own.

One job at a time per app. The button's handler starts it (or, while one runs, follows it) and
streams its progress lines; the job goes on if the page is closed, and the next click shows where
it is. The server only watches: a thread reads the child's progress lines from its stdout, and
when the child ends its result is read back and the new adapter registered with the runtime, so
the fine-tuned dropdown offers it at once (and the Hub listing is refreshed after a push), without
a restart. A training run thus takes neither the server's interpreter lock nor its memory, a crash
in it (out of memory, a native fault) ends only the child, and `LoopJob.cancel` (or the server's
exit) stops it.

The app holds its DuckDB file, which another process cannot open, so the server exports the rated
set itself (step 1, a query) to the path `run_loop` would write it to, and hands the child a
snapshot of the store with that file and the runs table (`_Snapshot`). Job, snapshot and result
cross as pickles in a private folder: the child is this server's own, started with its interpreter.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact_core.errors import FireActError
from fireact_core.redact import redact

log = logging.getLogger("fireact.app")
JOB, RESULT, ERRORS = "job.pkl", "result.pkl", "stderr.log"


@dataclass
class LoopJob:
    """A running (or finished) loop: its progress lines, and its result or error."""

    lines: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    thread: threading.Thread | None = None  # the watcher: reads the child's lines, then its result
    process: subprocess.Popen | None = None  # the child running `run_loop`
    cancelled: bool = False

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def note(self, line: str) -> None:
        self.lines.append(redact(line))
        del self.lines[:-200]  # the trainer logs a line per step: keep the tail

    def cancel(self) -> None:
        """Stop the training child (SIGTERM, then SIGKILL after 10 s); the job ends as cancelled."""
        self.cancelled = True
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class _Snapshot:
    """What `run_loop` reads of the store, taken in the server: the exported rated set and the runs table."""

    path: str
    exported: Path
    count: int
    runs: list[dict[str, Any]]

    def export_training_set(self, path: str | Path, rule: Any = None) -> int:
        if Path(path) != self.exported:  # a loop that chose another path: the same rows there
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.exported, path)
        return self.count

    def runs_table(self) -> list[dict[str, Any]]:
        return self.runs


def start_loop(rt: Any, loop_cfg: Any) -> LoopJob:
    """Start `run_loop(rt.store, loop_cfg)` in a child process unless a job runs already; return the job.

    On ZeroGPU hardware nothing starts: the job ends at once with the reason (`space.gpu.TRAINING_REFUSED`)."""
    from space.gpu import TRAINING_REFUSED, on_zero_gpu

    if on_zero_gpu():
        return LoopJob(error=TRAINING_REFUSED)
    with rt.loop_lock:
        job = rt.loop_job
        if job is not None and job.running:
            return job
        job = rt.loop_job = LoopJob()
        try:
            folder, cfg = _prepare(rt.store, loop_cfg)
            job.process = _spawn(folder)
        except FireActError as e:
            job.error = redact(str(e))
            return job
        except Exception as e:  # a store or spawn failure: the app goes on
            log.exception("the training loop could not start")
            job.error = redact(f"internal error ({type(e).__name__}): {e}")
            return job
        job.note(f"training in process {job.process.pid} (recipe {cfg.recipe}) …")
        job.thread = threading.Thread(target=_watch, args=(rt, job, folder), name="fireact-loop", daemon=True)
        job.thread.start()
        return job


def _prepare(store: Any, loop_cfg: Any) -> tuple[Path, Any]:
    """Fix the adapter's name and work folder, export the rated set there, and write the child's job file."""
    from fireact_core.models import cache_root
    from fireact_core.training_rule import TrainingRule

    cfg = dataclasses.replace(loop_cfg, name=loop_cfg.name or f"loop-{time.strftime('%Y%m%d-%H%M%S')}",
                              work_dir=Path(loop_cfg.work_dir or cache_root() / "loop"))
    data = Path(cfg.work_dir) / cfg.name / "rated.jsonl"  # where run_loop puts it (train/loop.py)
    n = store.export_training_set(data, TrainingRule(keep=cfg.keep))
    snapshot = _Snapshot(str(getattr(store, "path", "")), data, n, store.runs_table())
    folder = Path(tempfile.mkdtemp(prefix="fireact-loop-"))
    with open(folder / JOB, "wb") as f:
        pickle.dump((snapshot, cfg), f)
    return folder, cfg


def _spawn(folder: Path) -> subprocess.Popen:
    here = str(Path(__file__).resolve().parents[1])  # the folder holding space/ (a checkout or site-packages)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    # stdout: the progress lines; stderr (libraries' warnings, a traceback) to a file, read if it fails
    with open(folder / ERRORS, "wb") as errors:
        return subprocess.Popen([sys.executable, "-m", "space.loopjob", str(folder)], stdout=subprocess.PIPE,
                                stderr=errors, stdin=subprocess.DEVNULL, text=True, env=env,
                                start_new_session=True)  # a Ctrl-C in the server's terminal reaches the server alone


def _watch(rt: Any, job: LoopJob, folder: Path) -> None:
    """Follow the child's output to its end, then take its result (and register the adapter)."""
    proc = job.process
    assert proc is not None and proc.stdout is not None
    _children.add(proc)
    try:
        for line in proc.stdout:
            job.note(line.rstrip("\n"))
        code = proc.wait()
        if job.cancelled:
            job.error = "cancelled"
            return
        try:
            with open(folder / RESULT, "rb") as f:
                kind, value = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            tail = (folder / ERRORS).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            job.error = redact(f"the training process ended (exit code {code}) without a result: {' | '.join(tail)}")
            return
        if kind == "error":
            job.error = redact(value)
            return
        job.result = value
        rt.register_adapter(str(value.adapter), f"Loop adapter: {value.adapter.name}")
        if value.hub_url:
            rt.refresh_hub()
    except Exception as e:  # a bug here: the app goes on
        log.exception("following the training loop failed")
        job.error = redact(f"internal error ({type(e).__name__}): {e}")
    finally:
        _children.discard(proc)
        shutil.rmtree(folder, ignore_errors=True)


_children: set[subprocess.Popen] = set()


@atexit.register
def _stop_children() -> None:  # the server stops: its training child stops with it
    for proc in list(_children):
        if proc.poll() is None:
            proc.terminate()


def follow(job: LoopJob, every_s: float = 1.0, tail: int = 12) -> Iterator[str]:
    """The job's last progress lines, every `every_s` while it runs, and once more when it ends."""
    while True:
        running = job.running
        yield "\n".join(job.lines[-tail:])
        if not running:
            return
        time.sleep(every_s)


def main(folder: str) -> int:
    """The child: `python -m space.loopjob FOLDER` runs the job in FOLDER, its progress on stdout."""
    from train.loop import run_loop

    with open(Path(folder) / JOB, "rb") as f:
        snapshot, cfg = pickle.load(f)
    try:
        outcome: tuple[str, Any] = ("ok", run_loop(snapshot, cfg, progress=lambda line: print(line, flush=True)))
    except FireActError as e:
        outcome = ("error", str(e))
    except Exception as e:  # a bug or a failing trainer: reported to the server, which goes on
        log.exception("the training loop failed")
        outcome = ("error", f"internal error ({type(e).__name__}): {e}")
    tmp = Path(folder) / (RESULT + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f)
    tmp.replace(Path(folder) / RESULT)
    return 0 if outcome[0] == "ok" else 2


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    raise SystemExit(main(sys.argv[1]))
