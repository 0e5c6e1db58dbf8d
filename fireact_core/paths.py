"""Where the project's files are: the one place that names the data folder and what is in it.

`HOME` is the folder holding `data/` (the bundled adapters in `data/adapters/`, the offline world in
`data/world/`), the first of:

1. `$FIREACT_HOME`, when set: a FireAct checkout, or any folder laid out like one;
2. the source checkout this package runs from (the repository, an editable install of it, or the
   copy a Space runs: `fireact space deploy` uploads app.py and data/ beside the package);
3. the installed package itself: a wheel ships the default adapters and the world inside
   `fireact_core/data/` (see setup.py), found through `importlib.resources`.

A missing file's error names `HOME` and how it was chosen (`where()`). This module imports
nothing else of the project, so any layer may use it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # fireact_core/: its prompts, templates
REPO = PACKAGE.parent  # the folder above the package: the repository root in a source checkout
# A checkout has pyproject.toml beside data/; a Space's copy (space/manifest.py) has app.py beside it, and no
# pyproject.toml. A site-packages folder has neither beside a data/ folder.
IN_CHECKOUT = (REPO / "data").is_dir() and any((REPO / f).is_file() for f in ("pyproject.toml", "app.py"))


def _bundled_home() -> Path:
    """The installed package's folder, which holds `data/` in a wheel (a real folder on disk)."""
    return Path(str(resources.files("fireact_core")))


def _home() -> tuple[Path, str]:
    if os.environ.get("FIREACT_HOME"):
        return Path(os.environ["FIREACT_HOME"]).expanduser().resolve(), "$FIREACT_HOME"
    if IN_CHECKOUT:
        return REPO, "the source checkout"
    return _bundled_home(), "the installed package"


HOME, HOME_SOURCE = _home()
DATA = HOME / "data"
ADAPTERS_DIR = DATA / "adapters"  # the bundled adapters, and the ones the app and `fireact loop` register
DEFAULT_ADAPTER = ADAPTERS_DIR / "default"  # SmolLM2's; another bundled base's is ADAPTERS_DIR / its name
WORLD = DATA / "world"  # the offline world: corpus, questions, teacher trajectories
TRAJECTORIES = WORLD / "trajectories" / "train.jsonl"
SHARED = HOME.parent / "shared" / "data" / "fireact"  # the paper's released data, next to a checkout


def where() -> str:
    """One sentence for a missing-file error: which data folder was searched, and how to point elsewhere."""
    found = "" if DATA.is_dir() else " (it does not exist)"
    return (f"the project's data folder is {DATA}{found}, from {HOME_SOURCE}; set FIREACT_HOME to the folder "
            "holding data/ (a FireAct checkout) to use another")


__all__ = ["ADAPTERS_DIR", "DATA", "DEFAULT_ADAPTER", "HOME", "HOME_SOURCE", "IN_CHECKOUT", "PACKAGE", "REPO",
           "SHARED", "TRAJECTORIES", "WORLD", "where"]
