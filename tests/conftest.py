"""Shared fixtures. Tests never touch the internet; state lives in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Apps the tests start (in process, or as `python app.py`) load models when a battle asks for them, not in the
# background at start: two cores, shared with the test. tests/test_preload.py turns it on where it is the subject.
os.environ.setdefault("FIREACT_PRELOAD", "0")
# The torch path, whose greedy text the tests' expectations and docs/results.md come from, wherever llama.cpp is
# installed or not; tests/test_llamacpp.py (and the app test that names it) turn llama.cpp on.
os.environ.setdefault("FIREACT_ENGINE", "torch")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIREACT_SHARED_DATA", ROOT.parent / "shared" / "data" / "fireact"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The paper's released data (../shared/data/fireact); skips when absent."""
    if not (SHARED / "finetune").is_dir():
        pytest.skip(f"the paper's released data is not at {SHARED} (see its README); skipping")
    return SHARED
