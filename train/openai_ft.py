"""Fine-tune an OpenAI model on trajectories (the paper's GPT-3.5 FireAct): upload, start a job, follow it.

The files are rewritten as chat JSONL in exactly the format the local trainer uses (question
alone, assistant `Thought/Action` turns, user `Observation` turns; `fireact_core.training_rule`),
so an OpenAI fine-tune and a LoRA adapter see the same conversations. OpenAI trains on the
assistant messages only, which is the paper's objective.

    job = start(["chat.jsonl"], model="gpt-4o-mini-2024-07-18", client=openai.OpenAI())
    job = follow(client, job.id)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError, FireActError
from train.data import Source, load_source, split_and_mix

TERMINAL = ("succeeded", "failed", "cancelled")
DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"


class OpenAIError(FireActError):
    """The fine-tuning API could not be reached or refused a request."""


def client(base_url: str | None = None) -> Any:
    """An `openai.OpenAI` client from `OPENAI_API_KEY` (and `OPENAI_BASE_URL` or `base_url`)."""
    import openai

    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigError("OPENAI_API_KEY is not set; export it to fine-tune an OpenAI model")
    return openai.OpenAI(api_key=key, base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None, max_retries=1)


def _api(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    import openai

    try:
        return fn(*args, **kwargs)
    except openai.APIConnectionError as e:
        raise OpenAIError(f"{what}: cannot reach the OpenAI API ({e.__class__.__name__})") from None
    except openai.APIStatusError as e:
        msg = e.message if isinstance(e.message, str) else str(e)
        raise OpenAIError(f"{what}: the API answered {e.status_code}: {' '.join(msg.split())}") from None


def write_chat(examples: list[Any], path: Path) -> int:
    with path.open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps({"messages": e.messages}, ensure_ascii=False) + "\n")
    return len(examples)


def prepare_files(data: list[Any], out_dir: Path, *, val_size: float = 0.0, seed: int = 42,
                  data_dir: str | None = None) -> tuple[Path, Path | None, int, int]:
    """Read and check the inputs (file:line errors), mix them, write train (and validation) chat JSONL."""
    if not data:
        raise ConfigError("no training data: pass --data FILE (repeatable)")
    groups = []
    for item in data:
        src = Source.parse(item)
        groups.append((src, load_source(src, data_dir=data_dir)[0]))
    train, val = split_and_mix(groups, val_size, seed)
    train_path = out_dir / "train.jsonl"
    write_chat(train, train_path)
    val_path = None
    if val:
        val_path = out_dir / "validation.jsonl"
        write_chat(val, val_path)
    return train_path, val_path, len(train), len(val)


def start(data: list[Any], *, model: str = DEFAULT_MODEL, api: Any, suffix: str | None = "fireact",
          epochs: int | None = None, val_size: float = 0.0, seed: int = 42, log: Callable[[str], None] = print) -> Any:
    """Upload the training (and validation) file and create the fine-tuning job; return the job."""
    with tempfile.TemporaryDirectory(prefix="fireact-ft-") as tmp:
        train_path, val_path, n_train, n_val = prepare_files(data, Path(tmp), val_size=val_size, seed=seed)
        log(f"uploading {n_train} training conversations" + (f" and {n_val} validation" if n_val else ""))
        with train_path.open("rb") as f:
            train_file = _api("uploading the training file", api.files.create, file=f, purpose="fine-tune")
        val_file = None
        if val_path is not None:
            with val_path.open("rb") as f:
                val_file = _api("uploading the validation file", api.files.create, file=f, purpose="fine-tune")
    kwargs: dict[str, Any] = {"model": model, "training_file": train_file.id, "seed": seed}
    if suffix:
        kwargs["suffix"] = suffix
    if val_file is not None:
        kwargs["validation_file"] = val_file.id
    if epochs:
        kwargs["method"] = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}}
    job = _api("creating the fine-tuning job", api.fine_tuning.jobs.create, **kwargs)
    log(f"job {job.id}: {job.status} (model {job.model}, file {train_file.id})")
    return job


def follow(api: Any, job_id: str, *, poll_s: float = 10.0, timeout_s: float | None = None,
           log: Callable[[str], None] = print) -> Any:
    """Poll the job until it ends, printing status changes and new events; return the final job."""
    seen: set[str] = set()
    status = None
    t0 = time.monotonic()
    while True:
        job = _api(f"reading job {job_id}", api.fine_tuning.jobs.retrieve, job_id)
        events = _api(f"reading job {job_id}'s events", api.fine_tuning.jobs.list_events, job_id, limit=50)
        for ev in sorted(events.data, key=lambda e: e.created_at):
            if ev.id not in seen:
                seen.add(ev.id)
                log(f"  {ev.message}")
        if job.status != status:
            status = job.status
            log(f"job {job.id}: {status}")
        if status in TERMINAL:
            if status == "succeeded":
                log(f"fine-tuned model: {job.fine_tuned_model}")
            elif job.error is not None and getattr(job.error, "message", None):
                log(f"error: {job.error.message}")
            return job
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            log(f"still {status} after {timeout_s:.0f} s; follow it later with the job id {job.id}")
            return job
        time.sleep(poll_s)
