"""The trainer without training: templates, the loss mask token by token, data, config, card, bad input.

The masking test builds TRL's real `SFTTrainer` on the bundled SmolLM2 and the paper's released
trajectories, and reads back the labels TRL would train on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fireact_core.errors import ConfigError, FireActError, FormatError
from fireact_core.formats import read_trajectories
from fireact_core.training_rule import TrainingRule, training_messages
from fireact_core.trajectory import Step, Trajectory
from train import card
from train.config import TrainConfig, list_recipes, load_config, valid_keys
from train.data import DataSummary, Source, prepare, split_and_mix

HOTPOT = "finetune/alpaca_format/hotpotqa.json"
MULTI_CHAT = "finetune/gpt_format/multitask_multimethod.jsonl"


@pytest.fixture(scope="module")
def tokenizer():
    from train.sft import load_tokenizer

    return load_tokenizer("smollm2")


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _subset(shared: Path, rel: str, n: int, out: Path, *, skip: int = 0) -> Path:
    """The first n records of a released file (Alpaca JSON or chat JSONL), copied to a tmp file."""
    src = shared / rel
    if src.suffix == ".json":
        out.write_text(json.dumps(json.loads(src.read_text())[skip:skip + n]), encoding="utf-8")
    else:
        out.write_text("".join(src.read_text().splitlines(keepends=True)[skip:skip + n]), encoding="utf-8")
    return out


# --- templates ---------------------------------------------------------------------------------
CHATS = [
    [{"role": "user", "content": "Who wrote Hamlet?"}],
    [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Thought: t\nAction: search[x]"},
     {"role": "user", "content": "Observation: o <b>&</b>"},
     {"role": "assistant", "content": "Thought: done\nAction: finish[y]"}],
    [{"role": "system", "content": "sys"}, {"role": "user", "content": "Q\nA. a\nB. b"},
     {"role": "assistant", "content": "Thought: {{ not jinja }} %}\nAction: finish[B]"},
     {"role": "user", "content": "Observation: Episode finished, reward = True"}],
]


@pytest.mark.parametrize("messages", CHATS)
@pytest.mark.parametrize("gen", [False, True])
def test_training_template_renders_byte_identical_to_inference_template(tokenizer, messages, gen):
    from train.sft import generation_template, inference_template

    train = tokenizer.apply_chat_template(messages, chat_template=generation_template(), tokenize=False,
                                          add_generation_prompt=gen)
    infer = tokenizer.apply_chat_template(messages, chat_template=inference_template(), tokenize=False,
                                          add_generation_prompt=gen)
    assert train == infer
    first = messages[0]
    assert infer.startswith(f"<|im_start|>{first['role']}\n{first['content']}<|im_end|>\n")
    assert "You are a helpful" not in infer  # no default system prompt
    assert infer.endswith("<|im_start|>assistant\n") == gen


def test_training_template_continues_a_final_assistant_turn_like_inference(tokenizer):
    from train.sft import generation_template, inference_template

    msgs = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Thought: t\nAction:"}]
    a, b = (tokenizer.apply_chat_template(msgs, chat_template=t, tokenize=False, continue_final_message=True)
            for t in (generation_template(), inference_template()))
    assert a == b and a.endswith("<|im_start|>assistant\nThought: t\nAction:")


def test_template_passes_trl_checks(tokenizer):
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


# --- masking, token by token ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    """TRL's SFTTrainer on 3 HotpotQA ReAct + 3 multitask chat trajectories (no training)."""
    from train.sft import build

    tmp = tmp_path_factory.mktemp("mask")
    data = [str(_subset(shared_data, HOTPOT, 3, tmp / "h.json")),
            str(_subset(shared_data, MULTI_CHAT, 3, tmp / "m.jsonl"))]
    cfg = load_config(None, {"data": data, "max_length": 2048, "val_size": 0, "load_in_4bit": False,
                             "output_dir": str(tmp / "out"), "seed": 1})
    return build(cfg, log=lambda *_: None)


def _labelled_runs(labels: list[int]) -> list[list[int]]:
    runs, cur = [], []
    for t in labels:
        if t == -100:
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append(t)
    return [*runs, cur] if cur else runs


def test_only_the_agents_thought_action_and_end_of_turn_tokens_carry_loss(built):
    tok = built.tokenizer
    ds = built.trainer.train_dataset
    assert len(ds) == len(built.train) == 6
    by_question = {e.messages[0]["content"]: e for e in built.train}
    checked_obs = 0
    for row in ds:
        ids, labels = row["input_ids"], row["labels"]
        text = tok.decode(ids)
        example = next(e for q, e in by_question.items() if f"<|im_start|>user\n{q}<|im_end|>" in text)
        assistant = [m["content"] for m in example.messages if m["role"] == "assistant"]
        observations = [m["content"] for m in example.messages[1:] if m["role"] == "user"]
        # Each contiguous labelled span is exactly one assistant turn plus its <|im_end|>, in order.
        spans = [tok.decode(r) for r in _labelled_runs(labels)]
        assert spans == [f"{a}<|im_end|>" for a in assistant]
        assert tok.decode([t for t in labels if t != -100]) == "".join(f"{a}<|im_end|>" for a in assistant)
        # Labels are the input ids where set (no shift or corruption).
        assert all(lab in (-100, i) for i, lab in zip(ids, labels))
        # No Observation, question or role-header token is labelled.
        labelled_text = "".join(spans)
        for obs in observations:
            assert obs.startswith("Observation")
            assert obs not in labelled_text
            checked_obs += 1
        assert example.messages[0]["content"] not in labelled_text
        assert "<|im_start|>" not in labelled_text
    assert checked_obs >= 3  # CoT examples have none (their closing Observation is dropped)


def test_masking_on_a_real_trajectory_keeps_the_paper_text(built, shared_data):
    """The labelled text of the first HotpotQA record is its Thought/Action lines, nothing else."""
    rec = json.loads((shared_data / HOTPOT).read_text())[0]
    lines = [ln for ln in rec["output"].splitlines() if ln.startswith(("Thought", "Action"))]
    tok = built.tokenizer
    row = next(r for r in built.trainer.train_dataset if rec["instruction"] in tok.decode(r["input_ids"]))
    labelled = tok.decode([t for t in row["labels"] if t != -100])
    turns = ["\n".join(lines[i:i + 2]) for i in range(0, len(lines), 2)]
    assert labelled == "".join(f"{t}<|im_end|>" for t in turns)
    assert "Observation" not in labelled and "Badr Hari (born" not in labelled


def test_cuda_out_of_memory_suggests_batch_size_length_and_4bit(built, monkeypatch):
    import torch

    from train.sft import TrainingError, train_run

    def oom(**kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(built.trainer, "train", oom)
    with pytest.raises(TrainingError) as e:
        train_run(built)
    msg = str(e.value)
    assert "per_device_train_batch_size=2" in msg and "max_length=1024" in msg and "load_in_4bit=true" in msg


def test_adapter_base_mismatch_names_both(built, tmp_path):
    from peft import LoraConfig

    from fireact_core.models import check_adapter

    LoraConfig(r=4, target_modules=["q_proj"], base_model_name_or_path="meta-llama/Llama-2-7b-chat-hf"
               ).save_pretrained(str(tmp_path))
    with pytest.raises(ConfigError) as e:
        check_adapter(built.model.get_base_model(), tmp_path)
    assert "meta-llama/Llama-2-7b-chat-hf" in str(e.value) and "HuggingFaceTB/SmolLM2-135M-Instruct" in str(e.value)


# --- data --------------------------------------------------------------------------------------
def test_summary_counts_tasks_methods_lengths_and_truncation(shared_data, tmp_path, tokenizer):
    from train.sft import generation_template

    h = _subset(shared_data, HOTPOT, 6, tmp_path / "h.json")
    m = _subset(shared_data, MULTI_CHAT, 8, tmp_path / "m.jsonl")
    _, val, s = prepare([str(h), {"path": str(m), "weight": 2}], tokenizer=tokenizer,
                            template=generation_template(), max_length=200, val_size=0, seed=0)
    assert s.train == 6 + 16 and not val
    assert s.by_task["hotpotqa"] >= 6 and sum(s.by_task.values()) == s.train == sum(s.by_method.values())
    assert s.truncated == sum(n > 200 for n in s.lengths) and 0 < s.truncated < s.train
    assert sum(c for _, _, c in s.histogram()) == s.train
    assert s.actions["finish"] == s.train
    text = s.format()
    assert "by task:" in text and "by method:" in text and f"truncated at max_length=200: {s.truncated}" in text


def test_weights_and_validation_split_never_share_a_question():
    from train.data import TrainingExample

    def ex(q: str, src: str) -> TrainingExample:
        return TrainingExample([{"role": "user", "content": q}], "t", "react", src, q)

    a = [ex(f"a{i}", "a") for i in range(20)]
    b = [ex(f"b{i}", "b") for i in range(10)] + [ex("a3", "b")]  # the same question in both files
    train, val = split_and_mix([(Source("a", 0.5), a), (Source("b", 3), b)], 0.1, seed=0)
    vq = {e.question for e in val}
    assert len(val) == 2 + 1  # 10% of each source
    assert not vq & {e.question for e in train}
    free_a = sum(e.question not in vq for e in a)
    free_b = sum(e.question not in vq for e in b)
    assert sum(e.source == "a" for e in train) == round(0.5 * free_a)
    assert sum(e.source == "b" for e in train) == 3 * free_b
    again, _ = split_and_mix([(Source("a", 0.5), a), (Source("b", 3), b)], 0.1, seed=0)
    assert [e.question for e in again] == [e.question for e in train]  # seeded


def test_source_parsing():
    assert Source.parse("x.jsonl:2.5") == Source("x.jsonl", 2.5)
    assert Source.parse("C:dir/x.jsonl") == Source("C:dir/x.jsonl", 1.0)
    assert Source.parse({"path": "y.json", "weight": 0.5, "task": "hotpotqa"}).task == "hotpotqa"
    with pytest.raises(ConfigError):
        Source.parse({"file": "y.json"})
    with pytest.raises(ConfigError):
        Source.parse("x.jsonl:-1")


def test_reflexion_episode_trains_on_its_final_trial():
    steps = [Step(thought="a", action="search", argument="x", observation="o1", trial=0),
             Step(thought="wrong", action="finish", argument="bad", observation="Episode finished, reward = 0", trial=0),
             Step(thought="let me do a reflection", action="search", argument="y", observation="o2", trial=1),
             Step(thought="ok", action="finish", argument="good", observation="Episode finished, reward = 1", trial=1)]
    msgs = training_messages(Trajectory(question="Q?", steps=steps, method="reflexion"))
    # one view for the trainer and the teacher's files: the successful attempt, as in the released data
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[-1]["content"].endswith("finish[good]") and "finish[bad]" not in json.dumps(msgs)
    assert "search[x]" not in json.dumps(msgs) and msgs[1]["content"].startswith("Thought: let me do a reflection")


def test_app_duckdb_export_filtered_by_rating_and_em(tmp_path, tokenizer):
    from fireact_core.store import Store
    from train.sft import generation_template

    store = Store(tmp_path / "app.duckdb")
    for i in range(6):
        t = Trajectory(question=f"question {i}?", id=f"run{i}", gold="ans", answer="ans" if i < 4 else "nope",
                       em=1.0 if i < 4 else 0.0,
                       steps=[Step(thought="look", action="search", argument=f"t{i}", observation=f"page {i}"),
                              Step(thought="done", action="finish", argument="ans" if i < 4 else "nope")])
        store.save_run(t, source="arena", agent_key="m")
    store.rate("run0", "r1", source="arena", score=1)
    store.rate("run1", "r1", source="arena", score=-1)
    store.rate("run4", "r1", source="arena", score=1)
    out = tmp_path / "export.jsonl"
    n = store.export_training_set(out, "rated_or_em")
    store.close()
    assert n == 4  # run0, run2, run3 (EM, not rated down) and run4 (rated up)
    common = {"tokenizer": tokenizer, "template": generation_template(), "max_length": 256, "val_size": 0}
    _, _, everything = prepare([str(out)], **common)
    _, _, rated = prepare([str(out)], rule=TrainingRule(keep="rated", min_rating=1), **common)
    _, _, correct = prepare([str(out)], rule=TrainingRule(keep="em"), **common)
    assert (everything.train, rated.train, correct.train) == (4, 2, 3)
    assert rated.dropped == {"rating below 1": 2} and correct.dropped == {"em < 1": 1}


@pytest.mark.parametrize("content, where", [
    ("", ":"),  # empty file: named
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Thought: t\\nAction: '
     'finish[a]"}]}\n{"nonsense": 1}\n', ":2:"),
    ('[\n  {"instruction": "q", "output": "Thought: t\\nAction: finish[a]"},\n  {"instruction": "q2"}\n]', ":3:"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Thought: t\\nAction: '
     'finish[a]"}]}\n{broken json\n', ":2:"),
])
def test_bad_data_files_name_the_file_and_line(tmp_path, tokenizer, content, where):
    from train.sft import generation_template

    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(FormatError) as e:
        prepare([str(bad)], tokenizer=tokenizer, template=generation_template(), max_length=256, val_size=0)
    assert f"{bad}{where}" in str(e.value)


def test_missing_data_file_says_where_it_looked(tokenizer):
    from train.sft import generation_template

    with pytest.raises(FormatError) as e:
        prepare(["nowhere/none.jsonl"], tokenizer=tokenizer, template=generation_template(), max_length=256)
    assert "nowhere/none.jsonl" in str(e.value) and "looked in" in str(e.value)


def test_no_data_is_a_config_error(tokenizer):
    with pytest.raises(ConfigError, match="--data"):
        prepare([], tokenizer=tokenizer, template="", max_length=256)


# --- config ------------------------------------------------------------------------------------
def test_every_bundled_recipe_loads_and_names_its_data():
    names = list_recipes()
    assert {"paper-llama2-7b-hotpotqa", "smollm2-135m-world", "smollm2-360m-multitask"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.recipe == name and cfg.data and cfg.base
    paper = load_config("paper-llama2-7b-hotpotqa")
    assert paper.load_in_4bit is True and paper.lora_r == 8 and paper.target_modules == ["q_proj", "v_proj"]
    assert load_config("smollm2-360m-multitask").base == "HuggingFaceTB/SmolLM2-360M-Instruct"


def test_overrides_are_parsed_as_yaml():
    cfg = load_config("smollm2-135m-world", ["lora_r=4", "target_modules=[q_proj, v_proj]", "load_in_4bit=false",
                                             "learning_rate=3e-4", "eval_steps=null", "data=[a.jsonl, b.json:2]"])
    assert (cfg.lora_r, cfg.target_modules, cfg.load_in_4bit, cfg.learning_rate) == (4, ["q_proj", "v_proj"], False,
                                                                                      3e-4)
    assert cfg.data == ["a.jsonl", "b.json:2"] and cfg.eval_steps is None


def test_unknown_recipe_key_lists_the_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config("smollm2-135m-world", ["lora_rank=4"])
    assert "'lora_rank'" in str(e.value) and "lora_r" in str(e.value) and "max_length" in str(e.value)
    bad = tmp_path / "r.yaml"
    bad.write_text("base: x\nepochs: 3\n")
    with pytest.raises(ConfigError, match=r"'epochs'.*valid keys: recipe, base"):
        load_config(str(bad))


def test_unknown_recipe_lists_recipes_and_bad_values_are_rejected():
    with pytest.raises(ConfigError, match="smollm2-135m-world"):
        load_config("no-such-recipe")
    with pytest.raises(ConfigError, match="load_in_4bit"):
        load_config(None, ["load_in_4bit=maybe"])
    with pytest.raises(ConfigError, match="lora_r"):
        load_config(None, ["lora_r=0"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["lora_r"])


def test_cli_reports_unknown_key_without_a_traceback(capsys):
    from fireact_core.cli import main

    assert main(["train", "--recipe", "smollm2-135m-world", "--set", "bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err and "valid keys:" in err and "Traceback" not in err
    assert main(["train", "--list"]) == 0
    assert "smollm2-135m-world" in capsys.readouterr().out


def test_cli_dry_run_prints_the_summary(shared_data, tmp_path, capsys):
    from fireact_core.cli import main

    h = _subset(shared_data, HOTPOT, 5, tmp_path / "h.json")
    assert main(["train", "--data", str(h), "--set", "val_size=0", "--set", "max_length=128", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "training examples: 5" in out and "by task:   hotpotqa 5" in out


# --- card --------------------------------------------------------------------------------------
def test_model_card_metadata_and_manifest(tmp_path):
    cfg = TrainConfig(recipe="smollm2-135m-world", base="smollm2", datasets=["hotpotqa/hotpot_qa"], license="mit",
                      output_dir=str(tmp_path))
    summary = DataSummary(train=10, val=2, by_task={"hotpotqa": 6, "mmlu": 4}, by_method={"react": 7, "cot": 3},
                          actions={"search": 9, "finish": 10}, lengths=[100, 200, 300], max_length=256, truncated=1)
    results = {"steps": 5, "eval_loss": 1.25, "train_loss": 2.0,
               "agent_eval": {"task": "world", "split": "dev", "questions": 5, "em": 0.4, "f1": 0.5,
                              "mean_steps": 3.2, "command": "fireact eval ..."}}
    card.write(tmp_path, cfg=cfg, summary=summary, results=results, base_id="HuggingFaceTB/SmolLM2-135M-Instruct",
               four_bit=True)
    meta = card.read_metadata(tmp_path / "README.md")
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "peft"
    assert {"fireact", "agent", "react", "lora", "qlora"} <= set(meta["tags"])
    assert meta["datasets"] == ["hotpotqa/hotpot_qa"] and meta["license"] == "mit"
    text = (tmp_path / "README.md").read_text()
    assert "validation loss (agent tokens) | 1.2500" in text and "EM on 5 world dev questions | 40.0" in text
    assert "truncated at max_length=256: 1" in text and "| lora_r | `8` |" in text
    assert "fireact train --recipe smollm2-135m-world" in text
    m = card.read_manifest(tmp_path)
    assert m["format_version"] == 1 and m["prompt_format"]["template"] == "chatml"
    assert m["methods"] == ["cot", "react"] and m["tasks"] == ["hotpotqa", "mmlu"] and m["actions"] == ["finish", "search"]
    assert m["eval"]["eval_loss"] == 1.25 and m["training"]["quantization"] == "nf4-double-quant"


def test_released_files_read_by_the_trainer_agree(shared_data):
    """Alpaca and chat copies of the same trajectory give the same training conversation."""
    alpaca = next(iter(read_trajectories(shared_data / HOTPOT)))
    chat = next(iter(read_trajectories(shared_data / "finetune/gpt_format/hotpotqa.jsonl")))
    assert training_messages(alpaca) == training_messages(chat)
    assert training_messages(alpaca)[-1]["content"].startswith("Thought:")  # the closing Observation is dropped


def test_fireact_error_is_the_base_of_training_errors():
    from train.hub import HubError
    from train.openai_ft import OpenAIError
    from train.sft import TrainingError

    assert all(issubclass(c, FireActError) for c in (HubError, OpenAIError, TrainingError))
    assert "output_dir" in valid_keys()


def test_agent_eval_after_training_goes_through_fireact_eval(tmp_path):
    """The optional post-training evaluation, with the fake model standing in for the adapter's agent."""
    import shlex

    from fireact_core.tasks import load_task
    from train.after import agent_eval, eval_spec

    try:
        dev = load_task("world", "dev")
    except FireActError as e:
        pytest.skip(f"the offline world is not generated here: {e}")
    gold = dev.examples[0].answer
    cfg = load_config(None, {"eval_questions": 2, "eval_task": "world", "eval_split": "dev",
                             "eval_args": f"--model fake:{shlex.quote(gold)} --tools none"})
    spec = eval_spec(cfg, tmp_path)  # the recipe's options, parsed once into the record the evaluation takes
    assert (spec.model, spec.adapter, spec.tools) == (f"fake:{gold}", str(tmp_path), "none")
    res = agent_eval(cfg, spec, DataSummary(by_task={"world": 3}), tmp_path)
    assert (res["task"], res["split"], res["questions"]) == ("world", "dev", 2)
    assert res["em"] == (1.0 if dev.examples[1].answer == gold else 0.5)
    assert len((tmp_path / "eval_trajectories.jsonl").read_text().splitlines()) == 2
    assert res["command"].startswith("fireact eval --task world --split dev --limit 2")
    from fireact_core.options import spec_from_options  # the command a person reruns is the same agent

    assert spec_from_options(shlex.split(res["command"])[8:]) == spec


def test_trim_memory_hands_freed_heap_pages_back_after_every_step():
    """With `trim_memory` (off by default: 1.45x slower), the memory watch calls glibc's malloc_trim after each step."""
    import sys

    from train.callbacks import malloc_trim, memory_watch

    assert load_config("smollm2-135m-world").trim_memory is False
    if sys.platform.startswith("linux"):
        assert malloc_trim() is not None
    calls: list[int] = []
    watch = memory_watch(trim=True)
    watch.trim = calls.append
    for _ in range(3):
        watch.on_step_end(None, None, None)
    assert calls == [0, 0, 0]
    assert memory_watch(trim=False).trim is None


def test_a_meta_filter_splits_one_file_by_kind_of_question(tokenizer):
    """`{path, meta: {hops: 3}}` keeps the 3-hop trajectories; a list keeps any of its values."""
    from train.sft import generation_template

    template = generation_template()
    world = "data/world/trajectories/train.jsonl"
    hops = [t.meta["hops"] for t in read_trajectories(Path(__file__).parents[1] / world)]
    train, val, s = prepare([{"path": world, "meta": {"hops": 3}}, {"path": world, "meta": {"hops": [0, 2]},
                                                                   "weight": 0.5}],
                            tokenizer=tokenizer, template=template, max_length=768, val_size=0, seed=0)
    three, rest = hops.count(3), len(hops) - hops.count(3)
    assert s.by_source == {f"{world} [hops=3]": {"examples": three, "weight": 1.0},
                           f"{world} [hops=[0, 2]]": {"examples": rest, "weight": 0.5}}
    assert len(train) == three + round(0.5 * rest) and not val
    assert f"{world} [hops=3]: {three:,} read, weight 1" in s.format()
    with pytest.raises(ConfigError, match="no trajectory matches meta"):
        prepare([{"path": world, "meta": {"hops": 7}}], tokenizer=tokenizer, template=template, max_length=768)
    with pytest.raises(ConfigError, match="meta is a mapping"):
        Source.parse({"path": world, "meta": "hops=3"})
    assert Source("x", meta={"hops": [2, 3]}).selects({"hops": 3, "type": "bridge"})
    assert not Source("x", meta={"hops": 3}).selects({})
