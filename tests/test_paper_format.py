"""The paper's own formats: the Alpaca text its fine-tuned Llamas ran in, its few-shot ReAct prompt as
raw text, its 500-question HotpotQA dev subset, and the published adapters' table.

A tiny randomly initialised Llama and its tokenizer are made by the test (tests/tiny_llama.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from tiny_llama import make_tiny_llama

from fireact_core.agent import Agent, Finished
from fireact_core.backends.base import Completion, Message
from fireact_core.backends.fake import FakeModel
from fireact_core.build import build_agent
from fireact_core.errors import ConfigError
from fireact_core.known_adapters import KNOWN, adapter_format
from fireact_core.noise import NoiseConfig
from fireact_core.options import spec_from_options
from fireact_core.spec import AgentSpec
from fireact_core.tools.base import Toolbox

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
          "\n\n### Instruction:\n{question}\n\n### Response:\n")
Q = "Who designed the Velmora Library?"


def encyclopedia(query: str) -> str:
    """Look something up."""
    return f"The {query} was designed by Idris Kallum."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "base")


class Recorder:
    """A model that records what it is given and delegates to another (`accepts_text` as the inner one)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.calls = inner, inner.name, []
        self.accepts_text = getattr(inner, "accepts_text", False)

    def session(self) -> Recorder:
        return self

    def stream(self, messages: Sequence[Message], **kw) -> Iterator[str | Completion]:
        self.calls.append([dict(m) for m in messages])
        return self.inner.stream(messages, **kw)


def test_an_alpaca_agents_first_prompt_is_the_papers_template_as_text_and_as_ids_with_bos(tiny):
    from fireact_core.backends.local import LocalModel
    from fireact_core.models import load_base

    model, tokenizer = load_base(str(tiny))
    local = LocalModel.from_model(model, tokenizer, name="local:tiny", quantize=False)
    rec = Recorder(local)
    spec = AgentSpec(model="local:tiny", finetuned=True, prompt_format="alpaca", tools="none", max_steps=1,
                     max_tokens=4)
    build_agent(spec, rec, tools=Toolbox({"search": encyclopedia})).solve(Q)
    want = ALPACA.format(question=Q) + "Thought:"
    assert rec.calls[0] == [{"role": "text", "content": want}]
    ids = local._shared.encode(rec.calls[0])
    assert ids[0] == tokenizer.bos_token_id == tokenizer.convert_tokens_to_ids("<s>")
    assert ids == [tokenizer.bos_token_id, *tokenizer(want, add_special_tokens=False)["input_ids"]]
    assert tokenizer.decode(ids, skip_special_tokens=True) == want


def test_a_scripted_paper_format_output_runs_through_the_loop_and_parses():
    fake = FakeModel([" I need to search Velmora Library.\nAction: search[Velmora Library]\nObservation: made up",
                      " The architect is Idris Kallum.\nAction: finish[Idris Kallum]"])
    fake.accepts_text = True  # as the local backend: the raw text goes as it is
    spec = AgentSpec(model="fake", finetuned=True, prompt_format="alpaca", tools="none")
    t = Agent(fake, Toolbox({"search": encyclopedia}), spec).solve(Q, gold="Idris Kallum")
    assert [(s.action, s.argument) for s in t.steps] == [("search", "Velmora Library"), ("finish", "Idris Kallum")]
    assert t.em == 1.0 and t.agent.prompt_format == "alpaca" and "fine-tuned · alpaca" in t.agent.key
    assert fake.calls[1] == [{"role": "text", "content": ALPACA.format(question=Q) + (
        "Thought: I need to search Velmora Library.\nAction: search[Velmora Library]\n"
        "Observation: The Velmora Library was designed by Idris Kallum.\nThought:")}]
    assert "prompt_sent_as" not in t.meta


def test_a_chat_api_gets_the_same_text_as_one_user_message_and_the_record_says_so():
    fake = FakeModel(["Thought: I know.\nAction: finish[Idris Kallum]"])
    t = Agent(fake, None, AgentSpec(model="fake", finetuned=True, prompt_format="alpaca", tools="none")).solve(Q)
    assert fake.calls[0] == [{"role": "user", "content": ALPACA.format(question=Q) + "Thought:"}]
    assert t.answer == "Idris Kallum" and "user message" in t.meta["prompt_sent_as"]


def test_prompts_paper_gives_the_papers_react_prompt_verbatim_as_raw_text(shared_data, monkeypatch):
    monkeypatch.setenv("FIREACT_DATA", str(shared_data))
    prompt = (shared_data / "prompts" / "react_hotpotqa_google.txt").read_text(encoding="utf-8")
    spec = spec_from_options(["--model", "fake", "--adapter", "none", "--prompts", "paper", "--tools", "none"])
    assert spec.prompt_format == "text" and not spec.finetuned
    fake = FakeModel([" I need to search.\nAction: search[Velmora Library]", " Done.\nAction: finish[Idris Kallum]"])
    fake.accepts_text = True
    t = Agent(fake, Toolbox({"search": encyclopedia}), spec).solve(Q, task="hotpotqa")
    assert fake.calls[0] == [{"role": "text", "content": prompt + Q + "\n" + "Thought:"}]
    assert fake.calls[1][0]["content"].startswith(prompt + Q + "\nThought: I need to search.\nAction: search[Velmora")
    assert t.agent.exemplars == prompt.count("Episode finished") == 4 and t.agent.prompts == "paper"
    strategy = (shared_data / "prompts" / "react_strategyqa_google.txt").read_text(encoding="utf-8")
    fake2 = FakeModel([])
    Agent(fake2, None, spec).solve("Is water wet?", task="strategyqa")
    assert fake2.calls[0][0]["content"] == strategy + "Is water wet?\nThought:"  # as a user message: a chat model
    with pytest.raises(ConfigError, match="verbatim for ReAct"):
        Agent(FakeModel([]), None, AgentSpec(model="fake", prompts="paper", method="cot")).solve(Q)


def test_prompts_paper_without_the_data_says_where_it_looked(monkeypatch, tmp_path):
    import fireact_core.tasks as tasks

    monkeypatch.setattr(tasks, "data_dirs", lambda data_dir=None: [tmp_path])
    with pytest.raises(ConfigError, match="FIREACT_DATA"):
        Agent(FakeModel([]), None, AgentSpec(model="fake", prompts="paper"))


def test_the_published_adapters_run_in_alpaca_from_the_table_with_their_source_quoted():
    assert set(KNOWN) == {"forestai/fireact_llama_2_7b_lora", "forestai/fireact_llama_2_13b_lora",
                          "forestai/fireact_codellama_7b_lora", "forestai/fireact_codellama_13b_lora",
                          "forestai/fireact_codellama_34b_lora", "forestai/fireact_llama_2_7b"}
    for entry in KNOWN.values():
        assert entry.prompt_format == "alpaca" and "generation.py" in entry.source and "### Response" in entry.quote
    spec = spec_from_options(["--model", "local:meta-llama/Llama-2-7b-chat-hf", "--adapter",
                              "forestai/fireact_llama_2_7b_lora"])
    assert spec.finetuned and spec.prompt_format == "alpaca"
    assert spec_from_options(["--adapter", "forestai/fireact_llama_2_7b_lora"]).model == \
        "local:meta-llama/Llama-2-7b-chat-hf"  # no --model: the base the authors trained it on
    forced = spec_from_options(["--model", "local:x", "--adapter", "forestai/fireact_llama_2_7b_lora",
                                "--prompt-format", "chat"])
    assert forced.prompt_format == "chat"
    full = spec_from_options(["--model", "local:forestai/fireact_llama_2_7b", "--finetuned", "--adapter", "none"])
    assert full.prompt_format == "alpaca"


def test_an_adapter_with_no_manifest_runs_in_the_bases_format_and_says_how_to_choose(tmp_path, capsys):
    from fireact_core.options import format_notice

    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x/y"}))
    spec = spec_from_options(["--model", "local:x/y", "--adapter", str(folder)])
    assert spec.prompt_format == "chat" and adapter_format(str(folder))[0] is None
    note = format_notice(SimpleNamespace(prompt_format=None), spec)
    assert "--prompt-format" in note and "no fireact.json" in note
    assert format_notice(SimpleNamespace(prompt_format="alpaca"), spec) is None
    (folder / "fireact.json").write_text(json.dumps({"prompt_format": {"name": "alpaca", "template": "alpaca"}}))
    assert spec_from_options(["--model", "local:x/y", "--adapter", str(folder)]).prompt_format == "alpaca"
    (folder / "fireact.json").write_text(json.dumps({"prompt_format": {"template": "chatml"}}))  # before names
    assert spec_from_options(["--model", "local:x/y", "--adapter", str(folder)]).prompt_format == "chat"


def test_eval_order_paper_is_the_papers_500_dev_questions_in_its_order(shared_data):
    from fireact_core.tasks import load_task, paper_order

    task = load_task("hotpotqa", "dev", data_dir=shared_data)
    subset = paper_order(task)
    idx = list(range(len(task)))
    random.Random(233).shuffle(idx)
    assert len(task) == 7405 and len(subset) == 500 and subset[0] is task.examples[idx[0]]
    # The first questions of the authors' released Llama-2-7B LoRA run on HotpotQA dev (anchen1011/FireAct,
    # trajs/hotpotqa_dev_0_500_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json), in file order:
    released = [6238, 3824, 3188, 3543, 7026, 1720, 4525, 3395, 5123]
    positions = [subset.index(task.examples[i]) for i in released]
    assert positions == sorted(positions) and positions[-1] < 500
    assert task.examples[6238].question == "Who created the show with Wendy Schaal doing the voice of Francine?"


def test_eval_order_paper_from_the_command_line(shared_data, tmp_path, capsys):
    from fireact_core.cli import main

    out = tmp_path / "t.jsonl"
    rc = main(["eval", "--task", "hotpotqa", "--order", "paper", "--limit", "2", "--data-dir", str(shared_data),
               "--model", "fake:x", "--tools", "none", "--out", str(out), "--no-progress"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    from fireact_core.tasks import load_task, paper_order

    want = [e.question for e in paper_order(load_task("hotpotqa", "dev", data_dir=shared_data))[:2]]
    assert [r["question"] for r in rows] == want
    assert "the paper order" in capsys.readouterr().err


def test_the_arena_passes_raw_text_through_to_a_model_that_takes_it():
    from space.runner import Battle, agent_events

    fake = FakeModel(["Thought: I know.\nAction: finish[Idris Kallum]"])
    fake.accepts_text = True
    spec = AgentSpec(model="fake", finetuned=True, prompt_format="alpaca", tools="none")
    done = [ev for ev in agent_events(spec, Battle(Q, gold=None, noise=NoiseConfig()), fake, None)
            if isinstance(ev, Finished)]
    assert fake.calls[0] == [{"role": "text", "content": ALPACA.format(question=Q) + "Thought:"}]
    assert "prompt_sent_as" not in done[0].trajectory.meta


def test_fireact_run_json_records_the_format_and_the_notice_for_an_adapter_that_does_not_say(tmp_path, capsys):
    from fireact_core.cli import main

    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x/y"}))
    assert main(["run", Q, "--model", "fake:Idris Kallum", "--adapter", str(folder), "--tools", "none", "--json"]) == 0
    out, err = capsys.readouterr()
    t = json.loads(out)
    assert t["agent"]["prompt_format"] == "chat" and "--prompt-format" in err
    assert "--prompt-format" in t["meta"]["prompt_format_note"]
    (folder / "fireact.json").write_text(json.dumps({"prompt_format": {"name": "alpaca"}}))
    assert main(["run", Q, "--model", "fake:Idris Kallum", "--adapter", str(folder), "--tools", "none", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["agent"]["prompt_format"] == "alpaca" and "--prompt-format" not in err
