"""The app and the CLI do not assume SmolLM2: an adapter goes onto the base its adapter_config.json
names (when that base is offered), listings leave out adapters for other bases, and what the
fine-tuned agent chose to do (a one-step answer or a ReAct search) is on its trajectory, in the
arena's result row and on the leaderboard (EM by chosen method)."""

from __future__ import annotations

import json

import pytest

from fireact_core.errors import InputError
from fireact_core.options import spec_from_options
from fireact_core.spec import AgentSpec
from fireact_core.store import Store
from fireact_core.trajectory import Step, Trajectory, observed_method
from space import choices
from space.leaderboard import leaderboard_data
from space.render import render_summary

SMOL, GEMMA, LLAMA = "HuggingFaceTB/SmolLM2-135M-Instruct", "google/gemma-3-270m", "meta-llama/Llama-2-7b-hf"


def _adapter(folder, base: str | None):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base} if base else {}))
    return folder


@pytest.fixture
def adapters(tmp_path, monkeypatch):
    d = tmp_path / "adapters"
    made = {"default": _adapter(d / "default", SMOL), "gem": _adapter(d / "gem", GEMMA),
            "llama": _adapter(d / "llama", LLAMA), "old": _adapter(d / "old", None)}
    monkeypatch.setattr(choices, "ADAPTERS_DIR", d)
    monkeypatch.setattr(choices, "DEFAULT_ADAPTER", made["default"])
    monkeypatch.setattr(choices, "offered_bases", lambda: {SMOL: "smollm2", GEMMA: "gemma3"})
    monkeypatch.delenv("FIREACT_OPENAI_FT_MODELS", raising=False)
    return made


def test_an_adapter_goes_onto_the_base_its_config_names(adapters):
    listed = dict((v, label) for label, v in choices.default_finetuned_choices())
    assert f"adapter:{adapters['gem']}" in listed and "(on gemma3)" in listed[f"adapter:{adapters['gem']}"]
    assert f"adapter:{adapters['old']}" in listed  # no base recorded: the default base, as before
    assert f"adapter:{adapters['llama']}" not in listed  # refused where the list is built
    assert choices.parse_finetuned(f"adapter:{adapters['gem']}") == ("gemma3", str(adapters["gem"]))
    assert choices.parse_finetuned(str(adapters["default"])) == ("smollm2", str(adapters["default"]))
    assert choices.parse_finetuned("someone/x") == ("smollm2", "someone/x")  # a typed Hub id: the default base
    with pytest.raises(InputError, match="Llama-2-7b-hf"):
        choices.parse_finetuned(str(adapters["llama"]))  # a typed folder: refused before anything loads
    choices.check_model("gemma3", list)  # an offered base is a model the app runs
    with pytest.raises(InputError):
        choices.parse_finetuned("on:llama:x/y")


def test_the_hub_listing_keeps_only_bases_the_app_loads(adapters, monkeypatch):
    from train import hub

    found = [hub.HubAdapter("a/small", SMOL, 10), hub.HubAdapter("g/gem", GEMMA, 5),
             hub.HubAdapter("m/big", LLAMA, 99), hub.HubAdapter("n/none", None, 1)]
    monkeypatch.setattr(hub, "discover", lambda **kw: found)
    monkeypatch.setattr(choices, "online", lambda: True)
    assert choices.hub_adapter_choices() == [("Hub: a/small (10↓)", "adapter:a/small"),
                                             ("Hub: g/gem (5↓) (on gemma3)", "on:gemma3:g/gem")]
    assert choices.parse_finetuned("on:gemma3:g/gem") == ("gemma3", "g/gem")
    listed = [choices.FinetunedChoice.parse(v) for _, v in choices.hub_adapter_choices()]  # typed where it comes in
    assert listed == [choices.FinetunedChoice(adapter="a/small"), choices.FinetunedChoice(adapter="g/gem", base="gemma3")]
    assert [c.value for c in listed] == ["adapter:a/small", "on:gemma3:g/gem"]


def test_a_fine_tuned_choice_is_a_typed_value_its_string_gives_back():
    FC = choices.FinetunedChoice
    for c in (FC(adapter="/x/loop-1"), FC(adapter="o/n", base="local:meta-llama/Llama-2-7b-hf"), FC(model="openai:ft:a:b")):
        assert FC.parse(c.value) == c  # a base may hold ":" (local:<id>), a repo id not
    assert FC.parse("someone/x") is None and FC.parse("ft:gpt-4o-mini:org::abc") is None  # typed by a visitor


def test_the_cli_puts_an_adapter_on_its_base(adapters):
    assert spec_from_options(["--adapter", str(adapters["gem"])]).model == "gemma3"
    assert spec_from_options(["--adapter", str(adapters["old"])]).model == "smollm2"
    assert spec_from_options(["--adapter", "none"]).model == "smollm2"
    assert spec_from_options(["--model", "smollm2", "--adapter", str(adapters["gem"])]).model == "smollm2"  # as told


def _run(actions: list[str], *, method: str = "react", finetuned: bool = True, em: float = 1.0, i: int = 0):
    steps = [Step(thought="t", action=a, argument="x", observation="o") for a in actions]
    return Trajectory(question=f"q{i}?", steps=steps, id=f"r{i}", method=method, gold="x", answer="x", em=em,
                      agent=AgentSpec(model="smollm2", adapter="/a/tuned" if finetuned else None, finetuned=finetuned,
                                      method=method))


def test_the_chosen_method_is_observed_recorded_and_counted(tmp_path):
    assert observed_method(_run(["finish"])) == "answer"  # finish[...] first, no search
    assert observed_method(_run(["", "finish"])) == "answer"  # an invalid step is not a search
    assert observed_method(_run(["search", "finish"])) == "react"
    assert observed_method(_run(["finish"], method="cot", finetuned=False)) == "cot"
    assert observed_method(Trajectory(question="q")) is None
    old = _run(["search", "finish"]).to_dict()
    del old["chosen_method"]  # a record from before the field
    assert Trajectory.from_dict(old).chosen_method == "react"
    assert 'data-chosen="answer"' in render_summary(_run(["finish"])) and "one-step answer" in render_summary(
        _run(["finish"]))
    store = Store(tmp_path / "app.duckdb")
    try:
        for i, (acts, em) in enumerate([(["finish"], 1.0), (["finish"], 0.0), (["search", "finish"], 1.0)]):
            store.save_run(_run(acts, em=em, i=i), source="arena")
        rows = {r["id"]: r["chosen_method"] for r in store.runs_table()}
        assert rows == {"r0": "answer", "r1": "answer", "r2": "react"}
        table = leaderboard_data(store, rounds=10)["em_by_method"].to_dict("records")
        key = "smollm2 + tuned · fine-tuned"
        assert table == [{"agent": key, "method": "answer", "runs": 2, "em": 0.5},
                         {"agent": key, "method": "react", "runs": 1, "em": 1.0}]
    finally:
        store.close()


def test_the_arena_shows_what_each_side_chose(tmp_path):
    from space.arena import battle_updates
    from space.fakes import fake_config
    from space.raters import Rater
    from space.runtime import Runtime
    from space.state import ArenaOutputs

    rt, ui = Runtime(fake_config(tmp_path / "app.duckdb")), ArenaOutputs.detached()
    try:
        outs = list(battle_updates(rt, ui, "What is the capital of France?", "fake:scripted", "cot", 2, "model:fake:tuned",
                                   "off", 0.5, 0, False, who=lambda: Rater("anon:x", "anon")))
        st = outs[-1][ui.state]
        prompted, tuned = (s.view.trajectory for s in st.sides)
        assert (prompted.chosen_method, tuned.chosen_method) == ("cot", "react")  # the fake fine-tuned side searches
        assert 'data-chosen="react"' in outs[-1][ui.sides[1]] and 'data-chosen="cot"' in outs[-1][ui.sides[0]]
    finally:
        rt.store.close()
