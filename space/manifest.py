"""What a Hugging Face Space of this repository holds: the one list of files the app needs at run time.

`fireact space deploy` uploads exactly `space_files()`, and the rehearsal (`make space-check`,
`bench/space_check.py`) builds its copy from the same call, so what is tested is what is pushed.

The app imports `fireact_core`, `space` and `train` (the admin's training loop), and reads
`data/world/` (the offline world) and `data/adapters/` (the bundled adapters). `README.md` carries
the Space's front matter and `requirements.txt` is what the Space builder installs. Nothing else
goes: not tests, benchmarks, docs, runs, caches, the Makefile or the virtual environment.

The files are those git knows (tracked, or new and not ignored), so a local database, a run folder
or `__pycache__` never travel; outside a git checkout the folders are walked with the same rules.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Files at the top of the repository and folders taken whole (everything git knows in them).
TOP_FILES: tuple[str, ...] = ("app.py", "README.md", "requirements.txt", "LICENSE")
FOLDERS: tuple[str, ...] = ("fireact_core", "space", "train", "data/world", "data/adapters")
# Never uploaded, even inside those folders (byte-code, databases, editor and OS droppings).
EXCLUDE: tuple[str, ...] = ("*/__pycache__/*", "*.pyc", "*.duckdb", "*.duckdb.wal", "*.tmp", "*/.DS_Store",
                            "*.egg-info/*")
# Kept on the Space when a deploy removes what is no longer in the list (the Hub writes it at creation).
KEEP_REMOTE: tuple[str, ...] = (".gitattributes",)
# Torch versions ZeroGPU supports, as the Hub's documentation lists them (hub-docs
# `docs/hub/spaces-zerogpu.md`, "Supported Versions": 2.1.0 to 2.8.0; PR 2153 added 2.9 and Python
# 3.12; PR 2763 added 2.12.1 and 2.13.0 beside the entries from 2.8.0 through 2.11.0, whose patch
# versions are left out here as not checked). The `spaces` package carries no such list: a ZeroGPU
# Space's build fails with "No candidate PyTorch version found for ZeroGPU" on any other.
ZEROGPU_TORCH: tuple[str, ...] = ("2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.2", "2.4.0", "2.5.1", "2.6.0", "2.7.1",
                                  "2.8.0", "2.12.1", "2.13.0")
ZEROGPU_PYTHON: tuple[str, ...] = ("3.10", "3.12")


def _excluded(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(f"/{path}", pattern) for pattern in EXCLUDE)


def _wanted(path: str) -> bool:
    return (path in TOP_FILES or any(path.startswith(f"{folder}/") for folder in FOLDERS)) and not _excluded(path)


def _git_files(root: Path) -> list[str] | None:
    """Files git knows under `root` (tracked, or untracked and not ignored); None outside a checkout."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [p for p in out.decode().split("\0") if p]


def _walked_files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]


def space_files(root: Path = ROOT) -> list[str]:
    """The repository-relative paths (sorted, POSIX) a Space of the checkout at `root` needs, all existing files."""
    root = Path(root)
    known = _git_files(root)
    candidates = known if known is not None else _walked_files(root)
    # git lists a tracked file deleted in the working tree too: only what is there goes
    return sorted(p for p in set(candidates) if _wanted(p) and (root / p).is_file())


def front_matter(root: Path = ROOT) -> dict[str, Any]:
    """The YAML front matter of `README.md` (the Space's configuration)."""
    text = (Path(root) / "README.md").read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError("README.md has no front matter (it must start with ---)")
    end = text.find("\n---", 4)
    if end < 0:
        raise ValueError("README.md's front matter is not closed with ---")
    data = yaml.safe_load(text[4:end]) or {}
    if not isinstance(data, dict):
        raise ValueError("README.md's front matter must be a mapping")
    return data


def requirement_pins(root: Path = ROOT) -> dict[str, str]:
    """`name -> version` for each requirement pinned with `==` in requirements.txt (names lower-case,
    extras dropped: `gradio[oauth]==6.31.0` -> `gradio: 6.31.0`)."""
    pins = {}
    for line in (Path(root) / "requirements.txt").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins
