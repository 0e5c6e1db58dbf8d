"""The library's one-way layers (`.importlinter`): the record imports nothing else of the project; tools,
backends and methods sit above it, the agent loop above those, the builders and the CLI on top; the
trainer and the app import the library, never the other way. A new arrow that breaks them fails here."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = {"fireact_core", "fireact_core.errors", "fireact_core.evidence", "fireact_core.noise", "fireact_core.spec", "fireact_core.trajectory"}
LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True, no_logo=True))"


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, f"import-linter (.importlinter) found imports that break the layers:\n{out.stdout}{out.stderr}"
    assert "2 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The check can fail: the record importing the agent loop is reported, with the offending line."""
    for pkg in ("fireact_core", "space", "train", "worldgen"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "prompts"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    traj = tmp_path / "fireact_core" / "trajectory.py"
    traj.write_text(traj.read_text(encoding="utf-8") + "\n\ndef _loop():\n    from fireact_core import agent  # noqa\n")
    out = _lint(tmp_path)
    assert out.returncode == 1 and "1 broken" in out.stdout, out.stdout + out.stderr
    assert "fireact_core.trajectory -> fireact_core.agent" in out.stdout


def test_importing_the_trajectory_loads_the_record_layer_alone():
    code = ("import sys, fireact_core.trajectory, fireact_core.spec\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('fireact_core', 'space', 'train'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120, check=True)
    assert set(out.stdout.split()) == RECORD


def test_the_library_does_not_import_the_app_module():
    """`app.py` is a module, not a package, so import-linter cannot name it: read the imports here."""
    bad = []
    for path in sorted((ROOT / "fireact_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "app" or n.startswith("app.")]
    assert not bad, bad
