"""The admin's "train a new adapter from the ratings" button: `train.loop.run_loop` in a background thread.

One job at a time per app. The button's handler starts it (or, while one runs, follows it) and
streams its progress lines; the job goes on if the page is closed, and the next click shows where
it is. When it ends, the new adapter is registered with the runtime, so the fine-tuned dropdown
offers it at once (and the Hub listing is refreshed after a push), without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fireact_core.errors import FireActError
from fireact_core.redact import redact

log = logging.getLogger("fireact.app")


@dataclass
class LoopJob:
    """A running (or finished) loop: its progress lines, and its result or error."""

    lines: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def note(self, line: str) -> None:
        self.lines.append(redact(line))
        del self.lines[:-200]  # the trainer logs a line per step: keep the tail


def start_loop(rt: Any, loop_cfg: Any) -> LoopJob:
    """Start `run_loop(rt.store, loop_cfg)` in the background unless a job runs already; return the job.

    On ZeroGPU hardware nothing starts: the job ends at once with the reason (`space.gpu.TRAINING_REFUSED`)."""
    from space.gpu import TRAINING_REFUSED, on_zero_gpu

    if on_zero_gpu():
        return LoopJob(error=TRAINING_REFUSED)
    with rt.loop_lock:
        job = rt.loop_job
        if job is not None and job.running:
            return job
        job = rt.loop_job = LoopJob()

        def work() -> None:
            from train.loop import run_loop

            try:
                job.result = run_loop(rt.store, loop_cfg, progress=job.note)
                rt.register_adapter(str(job.result.adapter), f"Loop adapter: {job.result.adapter.name}")
                if job.result.hub_url:
                    rt.refresh_hub()
            except FireActError as e:
                job.error = redact(str(e))
            except Exception as e:  # a bug or a failing trainer: the app goes on
                log.exception("the training loop failed")
                job.error = redact(f"internal error ({type(e).__name__}): {e}")

        job.thread = threading.Thread(target=work, name="fireact-loop", daemon=True)
        job.thread.start()
        return job


def follow(job: LoopJob, every_s: float = 1.0, tail: int = 12) -> Iterator[str]:
    """The job's last progress lines, every `every_s` while it runs, and once more when it ends."""
    while True:
        running = job.running
        yield "\n".join(job.lines[-tail:])
        if not running:
            return
        time.sleep(every_s)
