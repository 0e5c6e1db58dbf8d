"""bench/compare.py on trajectory files it did not run: EM by kind with intervals, the paired difference."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fireact_core.trajectory import Step, Trajectory

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("compare", ROOT / "bench" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _write(path: Path, ems: dict[str, tuple[int, int]]) -> Path:
    """Question i of kind `hops` with EM em, for each id -> (hops, em)."""
    with path.open("w") as f:
        for qid, (hops, em) in ems.items():
            t = Trajectory(question=qid, id=qid, gold="a", task="world", answer="a", em=float(em),
                           steps=[Step(action="finish", argument="a", observation="Episode finished")],
                           meta={"type": "bridge", "hops": hops})
            f.write(json.dumps(t.to_dict()) + "\n")
    return path


def test_a_paired_difference_per_kind_of_question(tmp_path, capsys):
    compare = _bench()
    # 20 2-hop questions: both right on the first 15. 10 3-hop ones: A right on 2, B on the same 2 and 3 more.
    a = {f"b2-{i}": (2, int(i < 15)) for i in range(20)} | {f"b3-{i}": (3, int(i < 2)) for i in range(10)}
    b = {**a} | {f"b3-{i}": (3, 1) for i in range(2, 5)}
    first = _write(tmp_path / "a.jsonl", dict(list(a.items())[:12]))
    rest = _write(tmp_path / "a2.jsonl", dict(list(a.items())[12:]))
    extra = {"self-0": (0, 1)}  # only B answered it: left out of the paired set
    second = _write(tmp_path / "b.jsonl", b | extra)
    assert compare.main([f"A={first},{rest}", f"B={second}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("30 questions answered by every run.")
    row_a = next(line for line in out.splitlines() if line.startswith("| A |"))
    assert "56.7 (" in row_a and "17 of 30" in row_a and "20.0 (" in row_a and "2 of 10" in row_a
    diff = next(line for line in out.splitlines() if line.startswith("| B − A |"))
    cells = [c.strip() for c in diff.strip("|").split("|")][1:]
    assert cells[0].startswith("+10.0 (") and cells[1].startswith("+0.0 (+0.0 to +0.0)")
    assert cells[2].startswith("+30.0 (")
    lo, hi = (float(x.replace("−", "-")) for x in cells[2].split("(")[1].rstrip(")").split(" to "))
    assert 0 <= lo < 30 < hi <= 100  # three more right out of ten, never fewer


def test_runs_that_share_no_question_are_refused(tmp_path):
    compare = _bench()
    a = compare.read_run([_write(tmp_path / "a.jsonl", {"x": (2, 1)})])
    b = compare.read_run([_write(tmp_path / "b.jsonl", {"y": (2, 1)})])
    with pytest.raises(ValueError, match="share no question"):
        compare.compare({"a": a, "b": b})
