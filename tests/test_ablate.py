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
