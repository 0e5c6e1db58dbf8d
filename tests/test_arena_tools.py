"""The arena's search tool: the offline world, Wikipedia or Google, picked per battle, the same on both sides.

Against the local Wikipedia and SerpAPI stand-ins (`servers.py`): which tools are offered as working
(`SearchTools`), the questions that go with each, the tool in the agent record and its leaderboard key,
the store migration that gives older runs theirs, the handlers, and the app through `gradio_client`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from servers import FakeSerpAPI, FakeWikipedia, free_port

from fireact_core.errors import ConfigError, InputError
from fireact_core.spec import AgentSpec
from fireact_core.store import MIGRATIONS, Store
from fireact_core.trajectory import Step, Trajectory
from space.fakes import QUESTIONS, fake_config
from space.loading import SearchTools
from space.questions import QuestionBank, tool_examples
from space.raters import Rater
from space.runtime import Runtime
from space.state import ArenaOutputs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py lives at the repository root
    sys.path.insert(0, str(ROOT))
ME = Rater("anon:tools-test", "anon")
UI = ArenaOutputs.detached()  # the components the arena's {component: value} updates name
HOTPOT_Q = "Were Scott Derrickson and Ed Wood of the same nationality?"
PAGES = {"Scott Derrickson": "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and "
                             "producer. He lives in Los Angeles, California.",
         "Ed Wood": "Edward Davis Wood Jr. (October 10, 1924 – December 10, 1978) was an American filmmaker, actor, "
                    "and author."}
SERP = {"Scott Derrickson": {"answer_box": {"type": "organic_result", "answer": "American film director (Google)"}}}
WEB = {q.question for q in QUESTIONS if q.task in ("hotpotqa", "bamboogle")}
WORLD = {q.question for q in QUESTIONS if q.task == "world"}


def _dead_url() -> str:
    port = free_port()
    return f"http://127.0.0.1:{port}/w/api.php"


@pytest.fixture
def wiki(monkeypatch):
    with FakeWikipedia(PAGES) as w:
        monkeypatch.setenv("WIKIPEDIA_API_URL", w.url)
        yield w


@pytest.fixture
def serp(monkeypatch, tmp_path):
    with FakeSerpAPI(SERP) as s:
        monkeypatch.setenv("SERPAPI_BASE_URL", s.url)
        monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
        yield s


# --- which tools work here ------------------------------------------------------------------------
def test_the_owner_sets_the_default_and_a_bad_one_is_refused_at_start(monkeypatch):
    monkeypatch.delenv("FIREACT_TOOLS", raising=False)
    assert SearchTools(probes={}).default == "corpus"  # the offline world unless set
    monkeypatch.setenv("FIREACT_TOOLS", "wikipedia")
    assert SearchTools(probes={}).default == "wikipedia"
    monkeypatch.setenv("FIREACT_TOOLS", "bing")
    with pytest.raises(ConfigError, match="FIREACT_TOOLS must be one of corpus, wikipedia, google"):
        SearchTools(probes={})


def test_google_without_a_key_is_labelled_and_refused_and_offered_once_the_key_is_set(monkeypatch):
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    tools = SearchTools("google", probes={})
    labels = dict((v, k) for k, v in tools.choices())
    assert labels["google"] == "Google via SerpAPI — needs SERPAPI_API_KEY"
    assert labels["corpus"] == "Offline world (an invented encyclopedia)"
    assert tools.initial() == "corpus"  # the owner's default does not work here: a new page starts on one that does
    with pytest.raises(InputError, match="needs SERPAPI_API_KEY; pick another search tool"):
        tools.check("google")
    with pytest.raises(InputError, match="Unknown search tool 'bing'"):
        tools.check("bing")
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-test-key")
    assert tools.check("google") == "google" and tools.initial() == "google"
    assert dict((v, k) for k, v in tools.choices())["google"] == "Google via SerpAPI"


def test_wikipedia_is_probed_in_the_background_and_offered_once_it_answers(wiki):
    tools = SearchTools()
    assert tools.state("wikipedia").note == "checking…"  # never on a battle's path: the page says so meanwhile
    tools.wait_probes()
    assert tools.state("wikipedia").ready and tools.state("wikipedia").note == ""
    (probe,) = wiki.requests
    assert probe["query"]["meta"] == "siteinfo" and probe["path"] == "/w/api.php"
    assert tools.check("wikipedia") == "wikipedia"
    assert "Scott Derrickson (born July 16, 1966)" in tools("wikipedia").run("search", "Scott Derrickson").observation


def test_an_unreachable_wikipedia_is_shown_as_such_and_probed_again(monkeypatch):
    monkeypatch.setenv("WIKIPEDIA_API_URL", _dead_url())
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the Hub's setting says nothing about Wikipedia: the probe decides
    tools = SearchTools("wikipedia", retry_s=0.2)
    tools.state("wikipedia")
    tools.wait_probes()
    assert dict((v, k) for k, v in tools.choices())["wikipedia"] == "Wikipedia (ReAct's tool) — unreachable"
    with pytest.raises(InputError, match=r"Wikipedia .* cannot be reached .*Wikipedia API"):
        tools.check("wikipedia")
    assert tools.initial() == "corpus"
    with FakeWikipedia(PAGES) as w:  # the network is back: the next probe after retry_s finds it
        monkeypatch.setenv("WIKIPEDIA_API_URL", w.url)
        time.sleep(0.25)
        tools.state("wikipedia")
        tools.wait_probes()
        assert tools.state("wikipedia").ready and tools.initial() == "wikipedia"


def test_google_with_a_key_is_probed_at_serpapi_s_free_account_endpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-test-key")
    with FakeSerpAPI(SERP) as s:
        monkeypatch.setenv("SERPAPI_BASE_URL", s.url)
        tools = SearchTools(probes=None)
        tools.state("google")
        tools.wait_probes()
        assert tools.check("google") == "google" and [r["path"] for r in s.requests] == ["/account.json"]
    with FakeSerpAPI(SERP, api_key="another-key") as s:  # the key is refused: shown, and never echoed
        monkeypatch.setenv("SERPAPI_BASE_URL", s.url)
        tools = SearchTools(probes=None)
        tools.state("google")
        tools.wait_probes()
        assert dict((v, k) for k, v in tools.choices())["google"] == "Google via SerpAPI — not working"
        with pytest.raises(InputError, match=r"does not work here .*Invalid API key") as refused:
            tools.check("google")
        assert "serp-test-key" not in str(refused.value)
    with FakeSerpAPI(SERP, fault="exhausted") as s:
        monkeypatch.setenv("SERPAPI_BASE_URL", s.url)
        tools = SearchTools(probes=None)
        tools.state("google")
        tools.wait_probes()
        with pytest.raises(InputError, match="no searches left"):
            tools.check("google")
    monkeypatch.setenv("SERPAPI_BASE_URL", _dead_url().removesuffix("/w/api.php"))
    tools = SearchTools(probes=None)
    tools.state("google")
    tools.wait_probes()
    assert dict((v, k) for k, v in tools.choices())["google"] == "Google via SerpAPI — unreachable"


# --- the questions follow the tool ---------------------------------------------------------------
def test_examples_and_random_questions_follow_the_tool():
    bank = QuestionBank(list(QUESTIONS), notes=["bamboogle: not found"])
    assert {q[0] for q in tool_examples(bank, "corpus")[0]} == WORLD
    assert {q[0] for q in tool_examples(bank, "wikipedia")[0]} == WEB == {q[0] for q in tool_examples(bank, "google")[0]}
    assert {bank.random(tasks=("hotpotqa", "bamboogle")).question for _ in range(20)} == WEB
    world_only = QuestionBank([q for q in bank.questions if q.task == "world"], notes=["hotpotqa: not found"])
    samples, note = tool_examples(world_only, "wikipedia")
    assert samples == [] and "No HotpotQA or Bamboogle questions here yet (hotpotqa: not found)" in note
    assert world_only.random(tasks=("hotpotqa", "bamboogle")) is None


def test_with_the_paper_s_data_wikipedia_offers_hotpotqa_s_first_dev_question(shared_data, monkeypatch):
    from space.questions import load_question_bank

    monkeypatch.setenv("FIREACT_DATA", str(shared_data))
    bank = load_question_bank(tasks=(("world", "dev"), ("hotpotqa", "dev"), ("bamboogle", "test")), per_task=20)
    web, _ = tool_examples(bank, "wikipedia")
    assert [HOTPOT_Q] in web and {bank.lookup(q[0]).task for q in web} == {"hotpotqa", "bamboogle"}
    assert {bank.lookup(q[0]).task for q in tool_examples(bank, "corpus")[0]} == {"world"}


# --- the record and the key ----------------------------------------------------------------------
def test_the_tool_is_in_the_key_unless_it_is_the_offline_world():
    for tools in ("corpus", ""):  # "" : an old record that does not say
        assert AgentSpec(model="m", tools=tools).key == "m · react 2-shot"
        assert AgentSpec(model="m", adapter="a/b", finetuned=True, tools=tools).key == "m + a/b · fine-tuned"
    assert AgentSpec(model="m", tools="wikipedia").key == "m · react 2-shot · wikipedia"
    assert AgentSpec(model="m", adapter="a/b", finetuned=True, tools="google").key == "m + a/b · fine-tuned · google"


def _old_run(i: int, agent: dict, task: str = "world") -> Trajectory:
    return Trajectory(question=f"Old question {i}?", id=f"old{i}", task=task, gold="x", answer="x", em=1.0,
                      steps=[Step(thought="t", action="finish", argument="x")], agent=agent)


def test_migration_5_gives_old_runs_their_tool_and_no_leaderboard_entry_splits(tmp_path):
    from space.leaderboard import leaderboard_data

    path = tmp_path / "v4.duckdb"
    s = Store(path, migrations=[m for m in MIGRATIONS if m[0] <= 4])
    old_arena = _old_run(1, {"model": "fake:tuned", "finetuned": True, "method": "react"})  # no tools: before AgentSpec
    assert old_arena.agent.tools == ""
    s.save_run(old_arena, source="arena")
    s.save_run(_old_run(2, {"model": "fake:scripted", "method": "react", "exemplars": 2, "tools": "corpus"}),
               source="arena")
    wiki_old = _old_run(3, {"model": "fake:scripted", "method": "react", "exemplars": 2, "tools": "wikipedia"}, "hotpotqa")
    s._tx(lambda cur: s._insert_run(cur, wiki_old, source="import", key="fake:scripted · react 2-shot",
                                    battle_id=None))  # the key as it was computed before the tool was in it
    s.save_run(_old_run(4, {"model": "teacher", "tools": "wikipedia"}), source="import", agent_key="teacher")
    s.close()

    s = Store(path)
    assert s.version() == MIGRATIONS[-1][0] and s.version() >= 5
    keys = {r["id"]: r["agent_key"] for r in s._rows("SELECT id, agent_key FROM runs")}
    assert keys == {"old1": "fake:tuned · fine-tuned", "old2": "fake:scripted · react 2-shot",
                    "old3": "fake:scripted · react 2-shot · wikipedia", "old4": "teacher"}  # a label stays
    assert s.get_run("old1").agent.tools == "corpus"  # an arena run before the choice searched the world
    assert s.get_run("old1").steps == old_arena.steps and s.get_run("old3").agent.tools == "wikipedia"
    # new runs: the same agents with the world share the old entries; with Wikipedia, the old Wikipedia one
    for i, (model, tools, ft) in enumerate([("fake:tuned", "corpus", True), ("fake:scripted", "corpus", False),
                                            ("fake:scripted", "wikipedia", False)]):
        spec = AgentSpec(model=model, finetuned=ft, tools=tools, exemplars=0 if ft else 2)
        s.save_run(Trajectory(question=f"New {i}?", id=f"new{i}", gold="x", answer="y", em=0.0, agent=spec),
                   source="arena")
    table = leaderboard_data(s, rounds=10)["table"]
    assert sorted(zip(table["Agent"], table["Runs"])) == [
        ("fake:scripted · react 2-shot", 2), ("fake:scripted · react 2-shot · wikipedia", 2),
        ("fake:tuned · fine-tuned", 2), ("teacher", 1)]
    s.close()


# --- the handlers ---------------------------------------------------------------------------------
@pytest.fixture
def rt(tmp_path, wiki, serp):
    runtime = Runtime(fake_config(tmp_path / "app.duckdb", make_tools=SearchTools()))
    yield runtime
    runtime.store.close()


def _battle(rt: Runtime, tool: str | None, question: str = HOTPOT_Q, noise: str = "off", p: float = 0.5):
    from space.arena import battle_updates

    outs = list(battle_updates(rt, UI, question, "fake:scripted", "react", 2, "model:fake:tuned", noise, p, 0, False,
                               tool=tool, who=lambda: ME))
    return outs, outs[-1][UI.state]


def test_a_wikipedia_battle_searches_the_stand_in_on_both_sides_and_records_the_tool(rt, wiki):
    outs, st = _battle(rt, "wikipedia")
    assert "Both agents finished" in outs[-1][UI.status]
    trajs = [side.view.trajectory for side in st.sides]
    for t in trajs:
        assert t.agent.tools == "wikipedia" and t.answer == "yes" and t.em == 1.0  # gold from the bank
        assert t.steps[0].action == "search" and t.steps[0].observation.startswith("Scott Derrickson (born July 16")
        assert rt.store.get_run(t.id).agent.tools == "wikipedia"
    searches = [r for r in wiki.requests if r["query"].get("titles") == "Scott Derrickson"]
    assert len(searches) == 2  # one per side, the same tool
    keys = {r["agent_key"] for r in rt.store._rows("SELECT agent_key FROM runs")}
    assert keys == {"fake:tuned · fine-tuned · wikipedia",
                    "fake:scripted · react 2-shot · nearest · scratchpad · constrained · extractive · wikipedia"}
    assert all("· wikipedia" in outs[-1][side] for side in UI.sides)  # named on the (not blind) sides


def test_google_is_refused_without_a_key_and_searches_serpapi_with_one(rt, serp, monkeypatch):
    from space.arena import battle_updates

    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    with pytest.raises(InputError, match="needs SERPAPI_API_KEY"):
        list(battle_updates(rt, UI, HOTPOT_Q, "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, False,
                            tool="google", who=lambda: ME))
    assert rt.store.count("runs") == 0
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-test-key")
    _, st = _battle(rt, "google")
    for side in st.sides:
        t = side.view.trajectory
        assert t.agent.tools == "google" and t.steps[0].observation == "American film director (Google)"
    asked = [r["query"]["q"] for r in serp.requests if r["path"] == "/search.json"]
    assert asked in (["Scott Derrickson"], ["Scott Derrickson"] * 2)  # both sides at once, or the disk cache


def test_noise_wraps_the_web_tools_as_it_wraps_the_world(rt):
    _, st = _battle(rt, "wikipedia", noise="none", p=1.0)
    for side in st.sides:
        step = side.view.trajectory.steps[0]
        assert step.observation == "None" and step.noise == "none"


def test_an_unreachable_wikipedia_refuses_the_battle_and_the_page_starts_on_the_world(tmp_path, monkeypatch):
    from space.arena import random_question, tools_on_load

    monkeypatch.setenv("WIKIPEDIA_API_URL", _dead_url())
    runtime = Runtime(fake_config(tmp_path / "app.duckdb", make_tools=SearchTools("wikipedia")))
    try:
        runtime.cfg.make_tools.state("wikipedia")
        runtime.cfg.make_tools.wait_probes()
        with pytest.raises(InputError, match="cannot be reached"):
            _battle(runtime, "wikipedia")
        radio, examples, note = tools_on_load(runtime, "wikipedia")
        assert radio["value"] == "corpus" and ("Wikipedia (ReAct's tool) — unreachable", "wikipedia") in radio["choices"]
        assert {s[0] for s in examples["samples"]} == WORLD and note == ""
        assert random_question(runtime, "wikipedia") in WEB and random_question(runtime, "corpus") in WORLD
    finally:
        runtime.store.close()


# --- through gradio_client ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(tmp_path_factory):
    pytest.importorskip("gradio_client")
    from app import create_app

    tmp = tmp_path_factory.mktemp("tools-app")
    with pytest.MonkeyPatch.context() as mp, FakeWikipedia(PAGES) as w, FakeSerpAPI(SERP) as s:
        mp.setenv("WIKIPEDIA_API_URL", w.url)
        mp.setenv("SERPAPI_BASE_URL", s.url)
        mp.setenv("SERPAPI_API_KEY", "serp-test-key")
        mp.setenv("FIREACT_CACHE", str(tmp / "cache"))
        mp.setenv("FIREACT_TOOLS", "wikipedia")  # the owner's default
        demo = create_app(fake_config(tmp / "app.duckdb", make_tools=SearchTools()))
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", demo.fireact_runtime.store, w
        finally:
            demo.close()


def test_through_gradio_client_the_tool_picks_the_questions_and_runs_both_sides(app):
    from gradio_client import Client

    url, store, w = app
    c = Client(url, verbose=False, download_files=False, ssl_verify=False)
    assert {c.predict(api_name="/random_question") for _ in range(6)} <= WEB  # the owner's default: Wikipedia
    assert {c.predict("corpus", api_name="/random_question") for _ in range(6)} <= WORLD
    # nine inputs, as older clients send: the owner's default tool
    status, a, b, _ = c.predict(HOTPOT_Q, "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, False,
                                api_name="/battle")
    assert "Both agents finished" in status
    assert "Scott Derrickson (born July 16, 1966)" in a and "Scott Derrickson (born July 16, 1966)" in b
    assert sum(r["query"].get("titles") == "Scott Derrickson" for r in w.requests) == 2  # the stand-in, once a side
    status, a, b, _ = c.predict(HOTPOT_Q, "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, False,
                                None, "google", api_name="/battle")
    assert "American film director (Google)" in a and "American film director (Google)" in b
    with pytest.raises(Exception, match="altavista"):  # the radio refuses a tool it does not list
        c.predict(HOTPOT_Q, "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, False, None, "altavista",
                  api_name="/battle")
    tools = [r["t"] for r in store._rows("SELECT trajectory->>'$.agent.tools' AS t FROM runs ORDER BY created_at")]
    assert tools == ["wikipedia"] * 2 + ["google"] * 2


def test_random_noise_replays_observations_of_the_same_tool_only(rt):
    world = Trajectory(question="A world question?", id="world1", agent=AgentSpec(model="m", tools="corpus"),
                       steps=[Step(thought="t", action="search", argument="x", observation="An invented page.",
                                   noise="clean")])
    old = Trajectory(question="An old question?", id="old1", agent={"model": "m"},  # says no tool: the world's
                     steps=[Step(thought="t", action="search", argument="y", observation="An old page.", noise="clean")])
    rt.store.save_run(world, source="arena")
    rt.store.save_run(old, source="import")
    _battle(rt, "wikipedia")  # stores two Wikipedia observations
    assert set(rt.store.noise_pool(tools="corpus")) == {"An invented page.", "An old page."}
    assert set(rt.store.noise_pool(tools="wikipedia")) == {PAGES["Scott Derrickson"]}  # its first sentences
    assert len(rt.store.noise_pool()) == 4  # no tool given: every run, as before
    _, st = _battle(rt, "wikipedia", noise="random", p=1.0)
    for side in st.sides:
        step = side.view.trajectory.steps[0]
        assert step.noise == "random" and step.observation.startswith("Scott Derrickson (born")
