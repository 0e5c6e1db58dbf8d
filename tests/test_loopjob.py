"""The admin's training loop runs in a child process the server watches (space/loopjob.py).

Against a real DuckDB store: the child is another PID, its progress lines reach the job, a loop that
fails in the child (nothing rated) comes back as the job's error, a running one can be cancelled, and
the server's own process never imports the trainer. The full loop through the app (training, the
comparison, the new adapter offered at once) is tests/test_loop.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from fireact_core.store import Store
from space.loopjob import LoopJob, follow, start_loop
from train.loop import LoopConfig


class _Runtime:
    """What `start_loop` uses of `space.runtime.Runtime`."""

    def __init__(self, store: Store) -> None:
        self.store, self.loop_job, self.loop_lock, self.registered = store, None, threading.Lock(), []

    def register_adapter(self, path: str, label: str) -> None:
        self.registered.append((label, path))

    def refresh_hub(self) -> None:
        pass


def _wait(job: LoopJob, timeout_s: float = 120) -> None:
    job.thread.join(timeout_s)
    assert not job.running, "the loop's child did not end"


def test_the_loop_runs_in_a_child_process_and_its_error_comes_back(tmp_path):
    store = Store.open(tmp_path / "app.duckdb")  # nothing rated: run_loop refuses, in the child
    rt = _Runtime(store)
    trainer_loaded = "train.sft" in sys.modules
    job = start_loop(rt, LoopConfig(recipe="smollm2-135m-world", adapters_dir=tmp_path / "adapters", name="x",
                                    work_dir=tmp_path / "work"))
    assert job.error is None, job.error
    assert job.pid is not None and job.pid != os.getpid()
    assert start_loop(rt, LoopConfig(recipe="other")) is job  # one job at a time: a second click follows it
    _wait(job)
    assert job.process.returncode == 2
    assert "rate some battles first" in (job.error or ""), (job.error, job.lines)
    assert any(f"process {job.pid}" in line for line in job.lines) and any("1/4 exporting" in line for line in job.lines)
    assert job.result is None and rt.registered == []
    assert list(follow(job))[-1].endswith(job.lines[-1])
    assert trainer_loaded or "train.sft" not in sys.modules  # the server never loaded the trainer
    store.close()


def test_a_running_loop_can_be_cancelled_and_the_server_goes_on(tmp_path):
    """The admin's cancel button (`loop_cancel`) on the app's runtime stops the child mid-training."""
    pytest.importorskip("gradio_client")
    from test_loop import _rated_store

    from space.fakes import fake_config
    from space.leaderboard import loop_cancel
    from space.runtime import Runtime

    store, _ = _rated_store(tmp_path / "app.duckdb")
    store.close()
    rt = Runtime(fake_config(tmp_path / "app.duckdb", admin_token="s3cret-token"))
    try:
        assert loop_cancel(rt, "s3cret-token", None) == "No training is running."
        job = start_loop(rt, LoopConfig(recipe="smollm2-135m-world", adapters_dir=tmp_path / "adapters", name="y",
                                        work_dir=tmp_path / "work", eval_questions=0))
        assert job.error is None, job.error
        deadline = time.monotonic() + 120
        while not any("2/4 training" in line for line in job.lines) and job.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.running, (job.error, job.lines)  # training started, in the child
        assert (tmp_path / "work" / "y" / "rated.jsonl").is_file()  # exported by the server, read by the child
        # the server's store is still open and usable while the child trains
        assert len(rt.store.runs_table()) == 8 and subprocess.run(["kill", "-0", str(job.pid)]).returncode == 0
        assert "Only" in loop_cancel(rt, "wrong", None) and job.running  # not an admin: nothing stops
        assert loop_cancel(rt, "s3cret-token", None) == "Training cancelled."
        _wait(job, 30)
        assert job.error == "cancelled" and job.result is None and rt.finetuned_choices()[0][0] != "Loop adapter: y"
        assert job.process.returncode != 0 and not (tmp_path / "adapters" / "y").exists()
    finally:
        rt.store.close()


def test_on_zero_gpu_nothing_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    from space.gpu import TRAINING_REFUSED

    job = start_loop(_Runtime(None), LoopConfig(recipe="x"))  # type: ignore[arg-type]
    assert job.error == TRAINING_REFUSED and job.process is None and not job.running

