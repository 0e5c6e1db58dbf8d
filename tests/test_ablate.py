"""bench/ablate.py's samples and its spread table (the trainings themselves are long runs, not tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("ablate", Path(__file__).resolve().parents[1] / "bench" / "ablate.py")
ablate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablate)


def lines(n: int) -> list[str]:
    methods = ("react", "react", "cot", "reflexion")
    return [json.dumps({"id": i, "method": methods[i % 4]}) for i in range(n)]


def test_the_additive_mix_keeps_the_react_sample_and_adds_the_multi_samples_other_methods():
    pool = lines(400)
    react = ablate.draw(pool, 50, "react", seed=3)
    multi = ablate.draw(pool, 50, "multi", seed=3)
    additive = ablate.draw(pool, 50, "additive", seed=3)
    assert {json.loads(x)["method"] for x in react} == {"react"} and len(set(react)) == 50
    others = [x for x in multi if json.loads(x)["method"] != "react"]
    assert 0 < len(others) < 50 and additive == react + others  # adds data, replaces none
    assert len(additive) == 50 + len(others) and len(set(additive)) == len(additive)
    assert ablate.draw(pool, 50, "multi", seed=3) == multi and ablate.draw(pool, 50, "multi", seed=4) != multi


def test_a_sample_larger_than_the_data_is_refused():
    with pytest.raises(SystemExit, match="ReAct data has 200"):
        ablate.draw(lines(400), 201, "react", seed=0)


def test_the_spread_table_gives_mean_and_sample_sd_over_seeds():
    rows = ablate.spread({("react-500", "off"): [0.49, 0.45, 0.53], ("multi-500", "none"): [0.33]})
    assert rows[0] == "| react-500 | off | 3 | 49.0 | 4.0 | 49, 45, 53 |"
    assert rows[1] == "| multi-500 | none | 1 | 33.0 | – | 33 |"


def test_the_difference_table_averages_seeds_per_question_and_brackets_the_mean():
    a = [{f"q{i}": float(i % 2) for i in range(40)}, {f"q{i}": 1.0 for i in range(40)}]  # 50% and 100%
    b = [{f"q{i}": 0.0 for i in range(40)}]
    rows = ablate.differences({("react-500", "off"): a, ("multi-500", "off"): b},
                              [("react-500", "multi-500"), ("additive-500", "multi-500")])
    assert len(rows) == 1 and rows[0].startswith("| react-500 − multi-500 | off | 2 / 1 | 40 | +75.0 | ")
    lo, hi = (float(x) for x in rows[0].split("|")[6].split(" to "))
    assert 50 < lo < 75 < hi <= 100
    same = ablate.differences({("x", "none"): b, ("y", "none"): b}, [("x", "y")])
    assert same == ["| x − y | none | 1 / 1 | 40 | +0.0 | +0.0 to +0.0 |"]


def _trajs(out: Path, tag: str, ems: list[int]) -> None:
    for a, b in ((0, len(ems) // 2), (len(ems) // 2, len(ems))):
        rows = [{"id": f"world-test-{i:04d}", "em": ems[i], "steps": [{}] * 3, "time_s": 1.0, "status": "finished"}
                for i in range(a, b)]
        (out / f"test-{tag}{a}-{b}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_reads_what_ran_and_names_what_did_not(tmp_path, capsys):
    react = tmp_path / "react-500"
    react.mkdir()
    (react / "adapter_model.safetensors").write_bytes(b"")
    (react / "train_s.txt").write_text("120.0\n")
    _trajs(react, "", [1, 1, 0, 1])
    _trajs(react, "none-", [1, 0, 0, 0])
    (tmp_path / "multi-500").mkdir()  # trained, evaluated on half the questions only
    (tmp_path / "multi-500" / "adapter_model.safetensors").write_bytes(b"")
    _trajs(tmp_path / "multi-500", "", [0, 1, 0, 1])
    (tmp_path / "multi-500" / "test-2-4.jsonl").write_text("{}\n")
    assert ablate.main(["--sizes", "500", "--react-only", "500", "--limit", "4", "--noises", "off", "none",
                        "--out-dir", str(tmp_path), "--report"]) == 0
    out = capsys.readouterr().out
    assert "| react-500 (off) | ReAct only | 500 | 4 | 75.0 | 3.00 | 1.00 | 4 | 2 min |" in out
    assert "| react-500 (none) | ReAct only | 500 | 4 | 25.0 |" in out
    assert "multi-500 (off) |" not in out and "default (off)" not in out
    assert "Not run yet: multi-500 (off), multi-500 (none)." in out
    assert not (tmp_path / "react-500.jsonl").exists()  # a report draws no samples


def test_naming_one_setting_runs_that_setting_only(tmp_path, capsys):
    ablate.main(["--additive", "500", "--limit", "4", "--out-dir", str(tmp_path), "--report"])
    assert "Not run yet: additive-500 (off)." in capsys.readouterr().out
    ablate.main(["--limit", "4", "--out-dir", str(tmp_path), "--report"])  # none named: the scaling curve
    assert "Not run yet: multi-100 (off), multi-200 (off), multi-500 (off), react-500 (off)." in capsys.readouterr().out


def test_report_pairs_the_additive_mix_with_a_react_only_sample_of_its_size(tmp_path, capsys):
    for tag, ems in (("additive-500", [1, 1, 1, 0]), ("react-500", [1, 0, 0, 0]), ("react-660", [1, 1, 0, 0])):
        (tmp_path / tag).mkdir()
        (tmp_path / tag / "adapter_model.safetensors").write_bytes(b"")
        _trajs(tmp_path / tag, "", ems)
    assert ablate.main(["--react-only", "500", "660", "--additive", "500", "--limit", "4",
                        "--out-dir", str(tmp_path), "--report"]) == 0
    out = capsys.readouterr().out
    assert "| additive-500 − react-500 | off | 1 / 1 | 4 | +50.0 |" in out
    assert "| additive-500 − react-660 | off | 1 / 1 | 4 | +25.0 |" in out
    assert "| react-500 − additive-500 |" not in out
    flipped = ablate.differences({("x", "off"): [{"q": 0.0}], ("y", "off"): [{"q": 1.0}]}, [("x", "y")])
    assert flipped == ["| x − y | off | 1 / 1 | 1 | −100.0 | −100.0 to −100.0 |"]
    assert "react-660 − " not in out  # no multi-method sample of 660 was named
