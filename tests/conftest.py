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

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIREACT_SHARED_DATA", ROOT.parent / "shared" / "data" / "fireact"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The paper's released data (../shared/data/fireact); skips when absent."""
    if not (SHARED / "finetune").is_dir():
        pytest.skip(f"the paper's released data is not at {SHARED} (see its README); skipping")
    return SHARED
