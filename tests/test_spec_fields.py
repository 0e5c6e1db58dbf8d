"""One field per concept: the agent's options are its record's fields; one method (the agent's) and the choice
observed from the steps; one list of model kinds; one adapters folder; cost summed once (by the agent)."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

# At collection, as every test module's imports: a test that puts bench/ on sys.path (bench/compare.py does)
# would make a later `import train` find bench/train.py.
import space.choices
import train.loop
from fireact_core import models
from fireact_core.agent import Agent, Finished
from fireact_core.backends.base import Completion
from fireact_core.backends.fake import FakeModel
from fireact_core.errors import FormatError
from fireact_core.noise import NoiseConfig
from fireact_core.options import add_agent_args, spec_argv, spec_from_options
from fireact_core.spec import ADAPTER_KINDS, LOCAL_KINDS, MODEL_KINDS, AgentSpec
from fireact_core.trajectory import FORMAT_VERSION, Step, Trajectory

# A value other than the default for each field the CLI sets, and the flags that set it.
NOT_DEFAULT = {"method": (["--method", "cot"], "cot"), "finetuned": (["--finetuned"], True),
               "max_steps": (["--max-steps", "4"], 4), "max_tokens": (["--max-tokens", "9"], 9),
               "trials": (["--trials", "2"], 2), "exemplars": (["--exemplars", "0"], 0),
               "noise": (["--noise", "random", "--p", "0.25", "--seed", "7"], NoiseConfig("random", 0.25, 7)),
               "prompt_format": (["--prompt-format", "scratchpad"], "scratchpad"),
               "constrained": (["--constrained"], True),
               "extractive": (["--extractive"], True), "prompts": (["--prompts", "world"], "world"),
               "model": (["--model", "fake:x"], "fake:x"), "adapter": (["--adapter", "some/repo"], "some/repo"),
               "tools": (["--tools", "wikipedia"], "wikipedia")}


def test_every_field_of_the_spec_but_the_arenas_role_is_an_option_with_the_fields_default():
    parser = argparse.ArgumentParser()
    add_agent_args(parser)
    dests = {a.dest for a in parser._actions}
    for f in dataclasses.fields(AgentSpec):
        if f.name == "noise":
            assert {"noise", "p", "seed"} <= dests
        elif f.name != "role":
            assert f.name in dests and f.metadata["help"], f"AgentSpec.{f.name} has no option"
    assert set(NOT_DEFAULT) == {f.name for f in dataclasses.fields(AgentSpec)} - {"role"}
    base = ["--model", "fake", "--adapter", "none"]
    # No option given: the record's own defaults (the model and adapter aside: the CLI picks them).
    assert spec_from_options(base).to_dict() == AgentSpec(model="fake").to_dict()
    for name, (flags, value) in NOT_DEFAULT.items():
        extra = ["--constrained"] if name == "extractive" else []
        spec = spec_from_options([*base, *extra, *flags])
        assert getattr(spec, name) == value, (name, getattr(spec, name))
    with pytest.raises(Exception, match="max-steps"):
        spec_from_options([*base, "--max-steps", "0"])  # a field's minimum is the option's


def test_a_spec_turns_back_into_the_options_that_rebuild_it():
    """Code passes `AgentSpec`s; `spec_argv` writes the command a person reruns, and it is the same agent."""
    base = ["--model", "fake", "--adapter", "none"]
    for name, (flags, _) in NOT_DEFAULT.items():
        spec = spec_from_options([*base, *(["--constrained"] if name == "extractive" else []), *flags])
        assert spec_from_options(spec_argv(spec)) == spec, name
    noisy = dataclasses.replace(AgentSpec(model="fake", adapter="runs/x", finetuned=True, prompt_format="chat"),
                                noise=NoiseConfig(mode="random", p=0.25, seed=3), max_steps=4)
    argv = spec_argv(noisy)
    at = argv.index("--noise")
    assert argv[:4] == ["--model", "fake", "--adapter", "runs/x"] and argv[at:at + 4] == ["--noise", "random", "--p", "0.25"]
    assert spec_from_options(argv) == noisy


def test_the_method_is_the_agents_and_the_choice_is_read_from_the_steps():
    shared = AgentSpec(model="m", method="react")
    t = Trajectory(question="q?", agent=shared, method="cot", steps=[Step(action="finish", argument="x")])
    assert t.method == t.agent.method == "cot" and shared.method == "react"  # a copy: the given spec is not edited
    assert t.chosen_method == "cot"
    t.method = "react"
    assert t.agent.method == "react" and t.chosen_method == "answer"  # one finish step, no search
    t.steps.insert(0, Step(action="search", argument="y"))
    assert t.chosen_method == "react"
    d = json.loads(json.dumps(t.to_dict()))
    assert (d["method"], d["chosen_method"], d["agent"]["method"], d["format_version"]) == ("react", "react", "react", 3)
    assert Trajectory.from_dict(d) == t
    with pytest.raises(FormatError, match="unknown method"):
        t.method = "guess"


def test_a_format_2_record_whose_method_and_agent_disagree_reads_as_its_own_method():
    """A released CoT record converted before format 3: method `cot`, its agent `react`, chosen `answer`."""
    old = {"question": "q?", "method": "cot", "chosen_method": "answer", "format_version": 2,
           "agent": {"model": "unknown", "method": "react", "noise": {"mode": "off", "p": 0.5, "seed": 0}},
           "steps": [{"thought": "t", "action": "finish", "argument": "x"}]}
    t = Trajectory.from_dict(old)
    assert (t.method, t.agent.method, t.chosen_method) == ("cot", "cot", "cot") and FORMAT_VERSION == 3
    assert t.agent.key == "unknown · cot 2-shot"
    v3 = {**t.to_dict(), "method": "react"}  # format 3: the top-level method is a copy, the agent's is read
    assert Trajectory.from_dict(v3).method == "cot"


def test_one_list_of_model_kinds():
    from fireact_core.factory import MODEL_LOADERS

    assert set(MODEL_LOADERS) == set(MODEL_KINDS) == {"smollm2", "gemma3", "local", "openai", "fake"}
    assert LOCAL_KINDS == ("smollm2", "gemma3", "local") and ADAPTER_KINDS == ("smollm2", "gemma3", "local", "fake")
    assert [AgentSpec(model=m).kind for m in ("gemma3", "local:x", "openai:gpt-4o-mini", "fake:y")] == \
        ["local", "local", "openai", "fake"]


def test_one_adapters_folder():
    assert models.DEFAULT_ADAPTER.parent == models.ADAPTERS_DIR == space.choices.ADAPTERS_DIR == train.loop.ADAPTERS_DIR
    assert space.choices.DEFAULT_ADAPTER == models.default_adapter() == train.loop.DEFAULT_ADAPTER


class PricedModel(FakeModel):
    """A fake API model that bills each call."""

    def stream(self, messages, **kw):  # type: ignore[no-untyped-def]
        for item in super().stream(messages, **kw):
            yield dataclasses.replace(item, cost_usd=0.25) if isinstance(item, Completion) else item


def test_the_cost_is_summed_once_by_the_agent_also_in_the_arena():
    from space.runner import Battle, agent_events

    replies = ["Thought: a\nAction: search[x]", "Thought: b\nAction: finish[y]"]
    spec = AgentSpec(model="fake", tools="none", exemplars=0)
    assert Agent(PricedModel(list(replies)), None, spec).solve("q?").cost_usd == 0.5
    events = agent_events(spec, Battle("q?", noise=NoiseConfig()), PricedModel(list(replies)), None)
    done = [ev for ev in events if isinstance(ev, Finished)]
    assert done[0].trajectory.cost_usd == 0.5
