"""The offline world: determinism, the shipped encyclopedia, answerability, splits, and the scripted teacher."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections import Counter
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import fireact_core.cli as cli
from fireact_core.agent import Agent, AgentConfig
from fireact_core.formats import read_trajectories
from fireact_core.metrics import exact_match, normalize_answer
from fireact_core.tools.base import Toolbox
from fireact_core.tools.corpus import get_index, split_sentences
from fireact_core.tools.corpus import load as load_corpus
from fireact_core.tools.noisy import NoiseConfig
from fireact_core.trajectory import parse_react
from worldgen.files import read_jsonl, read_questions, read_world
from worldgen.generator import MASCOTS, TITLE_ADJS, TITLE_NOUNS
from worldgen.names import BLOCKLIST
from worldgen.policy import Policy
from worldgen.teacher import MAX_PASSES, ScriptedTeacher, load

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "data" / "world"
SPLITS = ("train", "dev", "test")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path_factory.getbasetemp() / "fireact-cache"))


@pytest.fixture(scope="module")
def questions() -> dict[str, list[dict]]:
    return {s: read_questions(WORLD, s) for s in SPLITS}


@pytest.fixture(scope="module")
def teacher() -> ScriptedTeacher:
    return ScriptedTeacher(WORLD)


def main(args: list[str]) -> int:
    """`fireact ARGS`, `world` being the command `worldgen` adds through its entry point (pyproject.toml). Until
    `make setup` reinstalls the project, the shared venv's metadata may predate it: then the same entry point."""
    plugins = cli.plugin_commands()
    if "world" in plugins:
        return cli.main(args)
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    ep = EntryPoint("world", meta["project"]["entry-points"]["fireact.commands"]["world"], "fireact.commands")
    real = cli.plugin_commands
    cli.plugin_commands = lambda: {**plugins, "world": ep}
    try:
        return cli.main(args)
    finally:
        cli.plugin_commands = real


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the generator -------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_world(tmp_path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        assert main(["world", "--seed", str(seed), "--out", str(out), "--size", "0.12", "--trajectories", "30"]) == 0
    files = _files(a)
    assert {"corpus.jsonl", "entities.jsonl", "manifest.json", "README.md", "questions/train.jsonl",
            "questions/dev.jsonl", "questions/test.jsonl", "trajectories/train.jsonl"} <= set(files)
    assert files == _files(b)
    assert files["corpus.jsonl"] != _files(c)["corpus.jsonl"]
    assert len(read_jsonl(a / "trajectories" / "train.jsonl")) == 30
    assert "trajectories: 30 kept" in capsys.readouterr().out


def test_shipped_world_is_regenerable_byte_for_byte(tmp_path):
    manifest = json.loads((WORLD / "manifest.json").read_text())
    assert main(["world", "--seed", str(manifest["seed"]), "--out", str(tmp_path)]) == 0
    for name in ("corpus.jsonl", "entities.jsonl", "questions/train.jsonl", "questions/dev.jsonl", "questions/test.jsonl"):
        assert (tmp_path / name).read_bytes() == (WORLD / name).read_bytes(), name
        assert hashlib.sha256((WORLD / name).read_bytes()).hexdigest() == manifest["files"][name]["sha256"]


def test_bad_options_are_user_errors(tmp_path, capsys):
    assert main(["world", "--out", str(tmp_path), "--size", "0"]) == 2
    assert "--size must be" in capsys.readouterr().err


# --- the shipped encyclopedia --------------------------------------------------------------
def test_encyclopedia_entities_names_and_articles():
    corpus = read_jsonl(WORLD / "corpus.jsonl")
    world = read_world(WORLD)
    kinds = Counter(e.kind for e in world.entities.values())
    assert len(corpus) == len(world.entities) >= 2000
    assert len(kinds) >= 6 and min(kinds.values()) >= 20, kinds
    titles = [a["title"] for a in corpus]
    assert titles == sorted(titles)
    keys = [normalize_answer(t).replace(" ", "") for t in titles]
    assert len(set(keys)) == len(keys), "names must be unique after normalisation"
    english = {w.lower() for w in (*TITLE_NOUNS, *TITLE_ADJS, *MASCOTS)}  # titles mix English words in
    invented = {w for t in titles for w in normalize_answer(t).split()} - english
    assert not invented & BLOCKLIST, invented & BLOCKLIST
    for a in corpus:
        sentences = split_sentences(a["text"])
        assert 2 <= len(sentences) <= 5, a  # 2–4 sentences; "is a novelist. She was born …" may split one in two
        assert a["title"] in sentences[0] or a["title"] in a["text"][:120], a
    total = sum(p.stat().st_size for p in WORLD.rglob("*") if p.is_file())
    assert total < 10e6, total
    # relations form chains: film -> director (person) -> birth city -> country -> capital
    film = next(e for e in world.entities.values() if e.kind == "film")
    city = world[world[film["director"]]["birth_city"]]
    assert world[world[city["country"]]["capital"]].kind == "city"


# --- the questions -------------------------------------------------------------------------
def test_question_kinds_and_split_sizes(questions):
    assert len(questions["test"]) >= 200 and 90 <= len(questions["dev"]) <= 110 and len(questions["train"]) >= 1200
    allq = [q for qs in questions.values() for q in qs]
    assert len({q["id"] for q in allq}) == len(allq)
    assert len({q["question"] for q in allq}) == len(allq)
    for split, qs in questions.items():
        kinds = Counter((q["type"], q["hops"]) for q in qs)
        assert kinds[("bridge", 2)] and kinds[("bridge", 3)] and kinds[("self-contained", 0)], (split, kinds)
        answers = Counter(q["answer"] for q in qs if q["kind"].startswith("same:"))
        assert answers["yes"] and answers["no"], split
        assert any(q["kind"].startswith("which:") for q in qs)
    # a noun phrase must not repeat its head ("the band behind the album the album X" once did)
    stutter = re.compile(r"\b(the \w+) \1\b", re.IGNORECASE)
    assert not [q["question"] for q in allq if stutter.search(q["question"])]


def test_no_bridge_entity_of_a_test_or_dev_question_appears_in_train(questions):
    train_entities = {e for q in questions["train"] for e in [*q["entities"], *q["supporting"], q["answer"]]}
    train_text = "\n".join(q["question"] for q in questions["train"])
    bridges = {b for split in ("dev", "test") for q in questions[split] for b in q["bridge"]}
    assert len(bridges) > 100
    assert not bridges & train_entities
    assert not [b for b in bridges if b in train_text]


def test_every_question_is_answerable_with_the_teachers_queries(questions):
    """Supporting articles come back from the real search tool, by exact title and among bm25's top 5
    for the bare title and for the teacher's rephrasings; the facts and the gold answer are in them."""
    index = get_index(WORLD / "corpus.jsonl")
    search = load_corpus(str(WORLD / "corpus.jsonl"))["search"]
    policy = Policy(read_world(WORLD), search)
    pos = {a.title: i for i, a in enumerate(index.articles)}
    checked: set[str] = set()
    for q in (q for qs in questions.values() for q in qs):
        if q["type"] == "self-contained":
            assert q["answer"] in q["solution"] and not q["supporting"]
            continue
        assert len(q["supporting"]) == q["hops"] >= 2
        for title in q["supporting"]:
            if title in checked:
                continue
            checked.add(title)
            text = search(title)
            assert text.startswith(index.articles[pos[title]].text[:40]), title
            for query in (title, *policy.rephrasings(title)):
                assert pos[title] in index.top(query, k=5), (query, title)
        facts = q["chain"] if q["type"] == "bridge" else [{"title": t, "value": v} for t, v in q["compare"]["values"].items()]
        for f in facts:
            assert normalize_answer(f["value"]) in normalize_answer(search(f["title"])), (q["id"], f)
        if q["type"] == "bridge":
            assert q["answer"] == q["chain"][-1]["value"]
            assert q["supporting"] == [c["title"] for c in q["chain"]] and q["bridge"] == q["supporting"][1:]
        else:
            c = q["compare"]
            vals = list(c["values"].values())
            if c["op"] == "same":
                assert q["answer"] == ("yes" if vals[0] == vals[1] else "no")
            else:
                num = {t: int(v.replace(",", "")) for t, v in c["values"].items()}
                assert q["answer"] == (min if c["op"] == "min" else max)(num, key=num.get)
    assert len(checked) > 1000


# --- the scripted teacher ------------------------------------------------------------------
def _round_trip(traj) -> None:
    back = parse_react(traj.question, traj.render_react())
    assert [(s.thought, s.action, s.argument, s.observation) for s in back.steps] == \
           [(s.thought, s.action, s.argument, s.observation) for s in traj.steps]
    msgs = traj.to_messages()
    assert msgs[0] == {"role": "user", "content": traj.question}
    assert all(m["content"].startswith(("Thought: ", "Observation: ")) for m in msgs[1:])


def test_shipped_trajectories_parse_score_and_show_the_real_tool(questions):
    trajs = list(read_trajectories(WORLD / "trajectories" / "train.jsonl", infer=False))
    assert len(trajs) >= 1000
    by_method = Counter(t.method for t in trajs)
    assert by_method["react"] and by_method["cot"] and by_method["reflexion"] >= 100, by_method
    noisy = Counter(s.noise for t in trajs for s in t.steps)
    assert noisy["none"] > 100 and noisy["random"] > 100
    search = load_corpus(str(WORLD / "corpus.jsonl"))["search"]
    gold = {q["id"]: q["answer"] for q in questions["train"]}
    gold_q = {q["id"]: q for q in questions["train"]}
    assert len({t.id for t in trajs}) == len(trajs)
    per_question = Counter(t.meta["qid"] for t in trajs)  # only 3-hop questions come round again
    assert all(n == 1 or gold_q[qid]["hops"] == 3 for qid, n in per_question.items())
    assert max(per_question.values()) <= MAX_PASSES
    tie_broken_elsewhere = []
    for t in trajs:
        _round_trip(t)
        assert t.em == 1.0 and exact_match(t.answer, gold[t.meta["qid"]])
        assert [s.action for s in t.steps].count("finish") == 1 and t.steps[-1].action == "finish"
        earlier: list[str] = []  # the tool's clean results so far: the pool "random" noise replays from
        for s in t.steps[:-1]:
            clean = search(s.argument)
            if s.noise == "clean" and s.observation != clean:  # only where articles tie for the top score
                assert s.observation in _tied_tops(s.argument), (t.id, s.argument)
                tie_broken_elsewhere.append((t.id, s.argument))
            elif s.noise == "clean":
                assert s.observation == clean, (t.id, s.argument)
            elif s.noise == "none":
                assert s.observation == "None"
            else:
                assert s.observation in earlier
            earlier.append(clean)
        if t.method == "cot":
            assert len(t.steps) == 1
        if t.method == "reflexion":
            at = [i for i, s in enumerate(t.steps) if "let me do a reflection" in s.thought.lower()]
            assert len(at) == 1 and t.reflections and t.reflections[0] in t.steps[at[0]].thought
            assert t.meta["reflection_step"] == at[0] and {s.trial for s in t.steps} == {0}  # one clean episode
    # the shipped file is regenerable: the same seed writes the same first trajectories
    seed = json.loads((WORLD / "manifest.json").read_text())["seed"]
    again, _ = ScriptedTeacher(WORLD, seed=seed).training_set(n=25, seed=seed)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in trajs[:25]]
    fresh = ScriptedTeacher(WORLD, seed=seed)  # and any one of them, alone, whatever was solved before
    second = next(t for t in reversed(trajs) if t.meta["seed"] != seed)  # a 3-hop question's second wording
    for t in (trajs[-1], next(t for t in reversed(trajs) if t.method == "reflexion"), second):
        noise = t.agent.noise
        method = "reflexion-flat" if t.method == "reflexion" else t.method
        assert fresh.solve(gold_q[t.meta["qid"]], method, noise, t.meta["seed"]).to_dict() == t.to_dict()
    thoughts = Counter(re.sub(r"[A-Z][a-z]+( [A-Z][a-z]+)*|\d[\d,]*", "X", t.steps[0].thought) for t in trajs
                       if t.method == "react")
    assert len(thoughts) >= 10  # the wording varies
    # Where articles tie for the top score (namesakes, for a first name alone: 23 of the 2,844 clean searches),
    # bm25s's top-k orders them by numpy's partition kernel, which is the CPU's: on an AVX2 CPU one of the 23
    # opens another namesake than on the AVX512 CPU that generated the data.
    assert tie_broken_elsewhere in ([], [("world-train-0551-reflexion-flat-s0", "Alkaird")]), tie_broken_elsewhere


def _tied_tops(query: str) -> list[str]:
    """The search results of every article that shares the top score for `query`."""
    import bm25s
    import Stemmer

    index = get_index(WORLD / "corpus.jsonl")
    tokens = bm25s.tokenize([query], stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False,
                            show_progress=False)[0]
    scores = index.bm25.get_scores(tokens)
    return [" ".join(split_sentences(index.articles[i].text)[:5]) for i in range(len(scores)) if scores[i] == scores.max()]


def test_teacher_methods_through_the_agent_loop(teacher, questions):
    dev = questions["dev"]
    bridge3 = next(q for q in dev if q["type"] == "bridge" and q["hops"] == 3)
    comp = next(q for q in dev if q["type"] == "comparison")
    selfq = next(q for q in dev if q["type"] == "self-contained")
    for q in (bridge3, comp):
        react = teacher.solve(q, "react", NoiseConfig("none", 0.5, seed=1))
        full = teacher.solve(q, "reflexion")
        flat = teacher.solve(q, "reflexion-flat", NoiseConfig("random", 0.5, seed=2))
        for t in (react, full, flat):
            _round_trip(t)
            assert t.em == 1.0, t.render_react()
        first = [s for s in full.steps if s.trial == 0]
        assert first[-1].action == "finish" and not exact_match(first[-1].argument, q["answer"])
        assert full.reflections and {s.trial for s in full.steps} == {0, 1}
        assert flat.method == "reflexion" and flat.reflections
    cot = teacher.solve(selfq, "cot")
    assert len(cot.steps) == 1 and cot.em == 1.0
    # the same seed writes the same trajectory
    assert teacher.solve(bridge3, "react", NoiseConfig("random", 0.5, seed=3)).to_dict() == \
           teacher.solve(bridge3, "react", NoiseConfig("random", 0.5, seed=3)).to_dict()


def test_teacher_as_a_model_prompted_fine_tuned_style_and_unknown_question(questions):
    t = load(str(WORLD))
    tools = Toolbox(load_corpus(str(WORLD / "corpus.jsonl")))
    q = questions["test"][0]
    for finetuned in (False, True):
        traj = Agent(t, tools, AgentConfig(method="react", finetuned=finetuned)).solve(q["question"], gold=q["answer"])
        assert traj.em == 1.0, traj.render_react()
    traj = Agent(t, tools, AgentConfig(method="react")).solve("Who wrote Hamlet?", gold="Shakespeare")
    assert traj.status == "failed" and "only knows the offline world" in traj.reason
