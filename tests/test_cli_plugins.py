"""The trainer sits outside the core: no module of `fireact_core` imports `train`, `fireact run`
loads no trainer module, and `fireact train` still works, registered from `train/commands.py`."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from fireact_core.cli import build_parser, main, plugin_commands

CORE = Path(__file__).resolve().parents[1] / "fireact_core"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_core_module_imports_the_trainer():
    offenders = {str(p.relative_to(CORE)): sorted(n for n in _imports(p) if n == "train" or n.startswith("train."))
                 for p in CORE.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
    # and the literal check: `grep -r "from train\|import train" fireact_core/` finds nothing
    lines = [f"{p.relative_to(CORE)}:{n}" for p in CORE.rglob("*.py")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"from train|import train", line)]
    assert lines == []


def test_fireact_run_imports_no_trainer_module():
    code = ("import sys; from fireact_core.cli import main; "
            "rc = main(['run', 'Who?', '--model', 'fake:Paris', '--tools', 'none', '--json']); "
            "print(rc, sorted(m for m in sys.modules if m == 'train' or m.startswith('train.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    last = out.strip().splitlines()[-1]
    assert last == "0 []", out
    traj = json.loads(out[: out.rindex("}") + 1])
    assert traj["answer"] == "Paris"


def test_train_commands_register_through_the_entry_point_group(capsys):
    assert {"train", "train-openai"} <= set(plugin_commands())
    names = build_parser("*")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"train", "train-openai", "run", "eval"} <= set(names)
    assert "train" not in build_parser(None)._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert main(["train", "--list"]) == 0
    assert "smollm2-135m-world" in capsys.readouterr().out
