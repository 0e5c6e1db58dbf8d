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
                        "--out-dir", str(tmp_path), "--report", "--ledger", "none"]) == 0
    out = capsys.readouterr().out
    assert "| react-500 (off) | ReAct only | 500 | 4 | 75.0 | 3.00 | 1.00 | 4 | 2 min |" in out
    assert "| react-500 (none) | ReAct only | 500 | 4 | 25.0 |" in out
    assert "multi-500 (off) |" not in out and "default (off)" not in out
    assert "Not run yet: multi-500 (off), multi-500 (none)." in out
    assert not (tmp_path / "react-500.jsonl").exists()  # a report draws no samples


def test_naming_one_setting_runs_that_setting_only(tmp_path, capsys):
    ablate.main(["--additive", "500", "--limit", "4", "--out-dir", str(tmp_path), "--report", "--ledger", "none"])
    assert "Not run yet: additive-500 (off)." in capsys.readouterr().out
    ablate.main(["--limit", "4", "--out-dir", str(tmp_path), "--report", "--ledger", "none"])  # none named: the scaling curve
    assert "Not run yet: multi-100 (off), multi-200 (off), multi-500 (off), react-500 (off)." in capsys.readouterr().out


def test_report_pairs_the_additive_mix_with_a_react_only_sample_of_its_size(tmp_path, capsys):
    for tag, ems in (("additive-500", [1, 1, 1, 0]), ("react-500", [1, 0, 0, 0]), ("react-660", [1, 1, 0, 0])):
        (tmp_path / tag).mkdir()
        (tmp_path / tag / "adapter_model.safetensors").write_bytes(b"")
        _trajs(tmp_path / tag, "", ems)
    assert ablate.main(["--react-only", "500", "660", "--additive", "500", "--limit", "4",
                        "--out-dir", str(tmp_path), "--report", "--ledger", "none"]) == 0
    out = capsys.readouterr().out
    assert "| additive-500 − react-500 | off | 1 / 1 | 4 | +50.0 |" in out
    assert "| additive-500 − react-660 | off | 1 / 1 | 4 | +25.0 |" in out
    assert "| react-500 − additive-500 |" not in out
    flipped = ablate.differences({("x", "off"): [{"q": 0.0}], ("y", "off"): [{"q": 1.0}]}, [("x", "y")])
    assert flipped == ["| x − y | off | 1 / 1 | 1 | −100.0 | −100.0 to −100.0 |"]
    assert "react-660 − " not in out  # no multi-method sample of 660 was named


def _adapter(folder: Path, ems: list[int], tag: str = "") -> None:
    folder.mkdir(exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(b"")
    _trajs(folder, tag, ems)


def test_the_ledger_keeps_each_question_so_a_new_checkout_still_pairs_the_seeds(tmp_path, capsys):
    ledger = tmp_path / "results" / "ablate.jsonl"
    old = tmp_path / "old"  # an earlier checkout's runs/ folder: seed 1 of both settings
    old.mkdir()
    _adapter(old / "react-660-s1", [1, 1, 0, 0])
    (old / "react-660-s1" / "train_s.txt").write_text("4576.0\n")
    _adapter(old / "additive-500-s1", [1, 0, 0, 0])
    (old / "additive-500-s1.jsonl").write_text("{}\n" * 660)
    args = ["--react-only", "660", "--additive", "500", "--seeds", "1", "--limit", "4", "--report",
            "--ledger", str(ledger)]
    assert ablate.main([*args, "--out-dir", str(old), "--record"]) == 0
    before = capsys.readouterr().out
    lines = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert [(x["setting"], x["noise"], x["trajectories"]) for x in lines] == [
        ("additive-500-s1", "off", 660), ("react-660-s1", "off", 660)]
    assert lines[1]["train_s"] == 4576.0 and lines[0]["train_s"] is None
    assert lines[1]["questions"]["world-test-0001"] == {"em": 1, "steps": 3, "time_s": 1.0, "status": "finished"}

    new = tmp_path / "new"  # a fresh clone: nothing under runs/ but seed 2 of ReAct-only
    new.mkdir()
    _adapter(new / "react-660-s2", [1, 1, 1, 0])
    assert ablate.main(["--react-only", "660", "--additive", "500", "--seeds", "1", "2", "--limit", "4",
                        "--report", "--ledger", str(ledger), "--out-dir", str(new)]) == 0
    out = capsys.readouterr().out
    assert "| react-660-s1 (off) | ReAct only | 660 | 4 | 50.0 | 3.00 | 1.00 | 4 | 76 min |" in out
    assert "| additive-500-s1 (off) | ReAct + added CoT + Reflexion | 660 | 4 | 25.0 |" in out
    assert "| react-660 | off | 2 | 62.5 | " in out  # seed 1 from the ledger, seed 2 from the folder
    assert "| additive-500 − react-660 | off | 1 / 2 | 4 | −37.5 | " in out
    assert f"From the ledger ({ledger}), not in {new}: react-660-s1 (off), additive-500-s1 (off)." in out
    assert "Not run yet: additive-500-s2 (off)." in out
    assert "| additive-500 − react-660 | off | 1 / 1 | 4 | −25.0 | " in before
    assert len(ledger.read_text().splitlines()) == 2  # a report without --record writes nothing


def test_a_run_recorded_again_replaces_its_line_and_a_short_one_counts_as_not_run(tmp_path):
    ledger = tmp_path / "ablate.jsonl"
    rows = [{"id": f"world-test-{i:04d}", "em": 0.0, "steps": 2, "time_s": 1.0, "status": "finished"} for i in range(3)]
    ablate.record(ledger, "react-500", "none", 500, 60.0, rows)
    ablate.record(ledger, "react-500", "off", 500, 60.0, rows)
    (line,) = [x for x in ledger.read_text().splitlines() if '"none"' in x]
    ledger.write_text(ledger.read_text().replace(line, line.replace(json.loads(line)["recorded"], "2026-01-01")))
    ablate.record(ledger, "react-500", "none", 500, 60.0, rows)  # the same run again: its date stays
    assert ablate.read_ledger(ledger)[("react-500", "none")]["recorded"] == "2026-01-01"
    ablate.record(ledger, "react-500", "none", 500, 61.0, [{**r, "em": 1.0} for r in rows])
    runs = ablate.read_ledger(ledger)
    assert sorted(runs) == [("react-500", "none"), ("react-500", "off")]
    assert runs[("react-500", "none")]["train_s"] == 61.0 and runs[("react-500", "none")]["recorded"] != "2026-01-01"
    assert [r["em"] for r in ablate.ledgered(runs, "react-500", "none", 3)["rows"]] == [1.0, 1.0, 1.0]
    assert ablate.ledgered(runs, "react-500", "none", 4) is None  # it ran 3 of the first 4 questions
    assert ablate.ledgered(runs, "react-500", "random", 3) is None


def test_a_broken_ledger_line_is_named_with_its_number_before_anything_runs(tmp_path):
    ledger = tmp_path / "ablate.jsonl"
    good = {"setting": "react-500", "noise": "off", "trajectories": 500, "train_s": None, "questions": {}}
    ledger.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "questions": {"q": {"em": 1}}}) + "\n")
    with pytest.raises(SystemExit, match=r"ablate\.jsonl:3: not a ledger run \(each question needs em"):
        ablate.main(["--react-only", "500", "--limit", "4", "--out-dir", str(tmp_path / "runs"),
                     "--ledger", str(ledger)])
    assert not (tmp_path / "runs").exists()  # refused before a sample was drawn
    ledger.write_text('{"setting": "react-500"\n')
    with pytest.raises(SystemExit, match=r"ablate\.jsonl:1: not a ledger run"):
        ablate.read_ledger(ledger)


def test_a_training_cut_short_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "react-660-s2"
    assert ablate.interrupted(out) is None
    for name in ("checkpoint-50", "checkpoint-100", "checkpoint-best", "checkpoint-9"):
        (out / "checkpoints" / name).mkdir(parents=True)
    assert ablate.interrupted(out).name == "checkpoint-100"  # by step, not by name
    (tmp_path / "react-660-s2.train.log").write_text("steps 1 to 100\n")
    ran = []

    def fake_run(cmd, **kw):
        ran.append(cmd)
        kw["stdout"].write("steps 101 to 166\n")
        (out / "adapter_model.safetensors").write_bytes(b"")

    monkeypatch.setattr(ablate.subprocess, "run", fake_run)
    secs = ablate.train(tmp_path / "data.jsonl", out, threads=2, seed=2)
    assert "resume_from_checkpoint=true" in ran[0] and "seed=44" in ran[0]
    assert secs != secs and ablate.trained_seconds(out) != ablate.trained_seconds(out)  # unknown, not the tail's
    assert (tmp_path / "react-660-s2.train.log").read_text() == "steps 1 to 100\nsteps 101 to 166\n"
    assert ablate.train(tmp_path / "data.jsonl", out, threads=2, seed=2) != 0 and len(ran) == 1  # trained: skipped


def test_the_drop_table_compares_relative_drops_with_a_paired_interval():
    q = [f"q{i}" for i in range(40)]
    runs = {("a", "off"): [{x: 1.0 for x in q}], ("a", "none"): [{x: float(i % 4 != 0) for i, x in enumerate(q)}],
            ("b", "off"): [{x: 1.0 for x in q}, {x: float(i % 2) for i, x in enumerate(q)}],  # 75% over 2 seeds
            ("b", "none"): [{x: float(i % 2) for i, x in enumerate(q)}, {x: 0.0 for x in q}]}  # 25%
    (row,) = ablate.drops(runs, [("a", "b"), ("a", "c")])
    assert row.startswith("| a − b | none | 1 / 2 | 40 | 25.0% | 66.7% | −41.7 | ")
    lo, hi = (float(x.replace("−", "-")) for x in row.split("|")[8].split(" to "))
    assert lo < -41.7 < hi < 0  # a loses less to the noise, and the interval says so
    assert ablate.drops({k: v for k, v in runs.items() if k != ("b", "off")}, [("a", "b")]) == []
