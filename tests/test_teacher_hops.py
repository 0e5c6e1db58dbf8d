"""The scripted teacher on 3-hop bridge questions: Thoughts that track the hops, and their share of the training set.

A 135M agent trained on the first teacher data stopped one hop early on most 3-hop questions (it
answered the city, not its country). So a bridge Thought says after each article what is still to
be found, the finishing Thought names every link of the chain, and `training_set` gives 3-hop
questions a fixed share. The phrasings are checked against the question's own chain and the
relation table, not against fixed strings.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from fireact_core.formats import read_trajectories
from fireact_core.tools.noisy import NoiseConfig
from worldgen.files import read_questions
from worldgen.relations import NEED
from worldgen.teacher import ScriptedTeacher

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "data" / "world"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path_factory.getbasetemp() / "fireact-cache"))


@pytest.fixture(scope="module")
def teacher() -> ScriptedTeacher:
    return ScriptedTeacher(WORLD)


@pytest.fixture(scope="module")
def bridge3() -> dict[str, dict]:
    return {q["id"]: q for split in ("train", "dev") for q in read_questions(WORLD, split)
            if q["type"] == "bridge" and q["hops"] == 3}


def _needs(rel: str, subject: str | None) -> re.Pattern[str]:
    """Any wording of "I need `rel` of `subject`" (of anything, when `subject` is None)."""
    alts = [re.escape(t).replace(re.escape("{t}"), re.escape(subject) if subject else r"[^.;,]+") for t in NEED[rel]]
    return re.compile("|".join(alts))


def _check_hops(q: dict, steps: list, start: int = 1) -> int:
    """Each search of the chain's 2nd or 3rd article from step `start` on, taken right after a clean read,
    names the hop it is for and every later one; the finishing Thought names every link. Returns the searches seen."""
    chain = q["chain"]
    titles = [c["title"] for c in chain]
    seen = 0
    for i in range(max(start, 1), len(steps)):
        s, prev = steps[i], steps[i - 1]
        if s.action != "search" or s.argument not in titles[1:] or prev.noise != "clean" or prev.observation == "None":
            continue
        j = titles.index(s.argument)
        assert _needs(chain[j]["rel"], chain[j]["title"]).search(s.thought), (q["question"], s.thought)
        for c in chain[j + 1:]:  # later hops: their subject is not known yet
            assert _needs(c["rel"], None).search(s.thought.split(chain[j]["title"], 1)[-1]), (q["question"], s.thought)
        seen += 1
    end = steps[-1]
    assert end.action == "finish" and end.argument == q["answer"]
    for link in (chain[0]["title"], *(c["value"] for c in chain)):
        assert link in end.thought, (link, end.thought)
    return seen


def test_react_thoughts_name_the_hops_still_to_go(teacher, bridge3):
    for q in list(bridge3.values())[:40]:
        for seed in range(3):
            t = teacher.solve(q, "react", None, seed)
            assert t.em == 1.0 and [s.argument for s in t.steps[:3]] == [c["title"] for c in q["chain"]]
            assert _check_hops(q, t.steps) == 2
            # the plan names all three hops
            for c in q["chain"]:
                assert _needs(c["rel"], None).search(t.steps[0].thought), t.steps[0].thought


def test_flat_reflexion_corrected_steps_and_cot_walk_the_chain(teacher, bridge3):
    mistakes = Counter()
    for q in list(bridge3.values())[:60]:
        t = teacher.solve(q, "reflexion-flat")
        mistakes[t.meta["mistake"]] += 1
        _check_hops(q, t.steps, start=t.meta["reflection_step"])
        cot = teacher.solve(q, "cot").steps[0].thought
        for link in (q["chain"][0]["title"], *(c["value"] for c in q["chain"])):
            assert link in cot
    assert len(mistakes) >= 2, mistakes


def test_wording_is_deterministic_and_varies(teacher, bridge3):
    q = next(iter(bridge3.values()))
    noise = NoiseConfig("random", 0.5, seed=4)
    assert teacher.solve(q, "react", noise, 1).to_dict() == teacher.solve(q, "react", noise, 1).to_dict()
    after_first = {teacher.solve(q, "react", None, s).steps[1].thought for s in range(8)}
    assert len(after_first) >= 3


def test_training_set_share_prefix_and_determinism(teacher, bridge3):
    for share in (0.5, 0.0):
        trajs, stats = teacher.training_set(n=40, bridge3=share)
        three = [t for t in trajs if t.meta["qid"] in bridge3]
        assert len(trajs) == 40 and len(three) == math.floor(40 * share) == stats["by_hops"].get("3", 0)
        assert all(t.em == 1.0 for t in trajs)
    again, _ = teacher.training_set(n=40, bridge3=0.5)
    first, _ = teacher.training_set(n=40, bridge3=0.5)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in first]
    shorter, _ = teacher.training_set(n=13, bridge3=0.5)
    assert [t.to_dict() for t in shorter] == [t.to_dict() for t in first[:13]]
    with pytest.raises(Exception, match="bridge3"):
        teacher.training_set(n=5, bridge3=1.5)


def test_shipped_trajectories_have_the_manifest_share_of_3_hop_questions(bridge3):
    stats = json.loads((WORLD / "manifest.json").read_text())["trajectories"]
    trajs = list(read_trajectories(WORLD / "trajectories" / "train.jsonl", infer=False))
    three = [t for t in trajs if t.meta["type"] == "bridge" and t.meta["hops"] == 3]
    assert len(trajs) == stats["kept"] and len(three) == math.floor(len(trajs) * stats["bridge3"])
    assert len(three) / len(trajs) >= 0.34
    assert len({t.meta["qid"] for t in three}) == stats["bridge3_questions"] == 300  # every 3-hop train question
    react = [t for t in three if t.method == "react" and all(s.noise == "clean" for s in t.steps)]
    assert len(react) > 100
    for t in react:
        assert _check_hops(bridge3[t.meta["qid"]], t.steps) == 2
