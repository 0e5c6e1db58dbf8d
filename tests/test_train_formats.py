"""The trainer in the paper's Alpaca text format, on a tiny Llama made by the test (tests/tiny_llama.py).

An adapter trained with `prompt_format: alpaca` records it (fireact.json, card) and is run in it when it
loads, with no format option given; its examples are the agent's own prompt text, token for token.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tiny_llama import make_tiny_llama

from fireact_core import prompt_formats as pf
from fireact_core.formats import read_trajectories, write_trajectories
from fireact_core.training_rule import TrainingRule
from train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = {"max_length": 384, "learning_rate": 5e-3, "per_device_train_batch_size": 2, "logging_steps": 1,
        "warmup_steps": 0, "lr_scheduler_type": "constant", "save_steps": 1000, "seed": 0, "val_size": 0,
        "target_modules": ["q_proj", "v_proj"], "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
        "cpu_threads": 1, "load_in_4bit": False, "activation_checkpointing": False, "dtype": "float32"}


@pytest.fixture(scope="module")
def world_file(tmp_path_factory) -> Path:
    """Eight finished ReAct trajectories of the offline world."""
    trajs = [t for t in itertools.islice(read_trajectories(ROOT / "data/world/trajectories/train.jsonl"), 200)
             if t.method == "react" and TrainingRule().why_dropped(t) is None][:8]
    out = tmp_path_factory.mktemp("data") / "world8.jsonl"
    write_trajectories(trajs, out, "trajectories")
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


def test_alpaca_examples_are_the_agents_prompt_ids_and_the_loss_is_on_the_agents_pieces(tiny, world_file):
    from transformers import AutoTokenizer

    from train.data import encode_segments

    tok = AutoTokenizer.from_pretrained(tiny)
    traj = next(iter(read_trajectories(world_file)))
    segs = TrainingRule().example(traj, "alpaca")
    ids, mask = encode_segments(tok, segs)
    text = "".join(s.text for s in segs)
    assert ids == tok(text, add_special_tokens=True)["input_ids"] and ids[0] == tok.bos_token_id and mask[0] == 0
    first_turn = pf.prompt("alpaca", traj.question, [], "")[0]["content"]
    assert text.startswith(first_turn + "Thought: ")
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == "".join(s.text for s in segs if s.agent)  # exactly the agent's pieces carry loss
    assert "Observation:" in trained and traj.steps[0].observation not in trained
    all_ids, all_mask = encode_segments(tok, segs, train_on_inputs=True, append_eos=True)
    assert all_ids == [*ids, tok.eos_token_id] and all_mask == [0] + [1] * (len(ids) - 1) + [1]


def test_an_adapter_trained_in_alpaca_is_loaded_back_in_alpaca_with_no_option(tiny, world_file, tmp_path):
    import torch

    from fireact_core.build import build_agent
    from fireact_core.options import spec_from_options
    from train import card
    from train.sft import build, save, train_run

    cfg = load_config(None, {**TINY, "base": str(tiny), "data": [str(world_file)], "max_steps": 3,
                             "prompt_format": "alpaca", "output_dir": str(tmp_path / "adapter")})
    run = build(cfg, log=lambda *a: None)
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if p.requires_grad}
    result = train_run(run)
    after = dict(run.trainer.model.named_parameters())
    assert before and all(not torch.equal(before[n], after[n].detach()) for n in before), "a trainable tensor froze"
    assert result["lora_tensors_changed"] == len(before)
    out = save(run, result)
    manifest = card.read_manifest(out)
    assert manifest["prompt_format"]["name"] == "alpaca" and manifest["prompt_format"]["bos"] is True
    readme = (out / "README.md").read_text()
    assert "`alpaca`" in readme and "| prompt_format | `alpaca` |" in readme

    spec = spec_from_options(["--adapter", str(out), "--tools", "none", "--max-steps", "1", "--max-tokens", "3"])
    assert spec.finetuned and spec.prompt_format == "alpaca" and spec.model.startswith("local:")
    agent = build_agent(spec)
    assert agent.format == "alpaca"
    t = agent.solve("Who designed the Velmora Library?")
    assert t.agent.prompt_format == "alpaca" and "· fine-tuned · alpaca" in t.agent.key
    assert len(t.steps) == 1 and json.loads(json.dumps(t.to_dict()))["agent"]["prompt_format"] == "alpaca"


def test_a_chat_adapter_on_a_base_without_chatml_markers_ends_its_turn_with_one_token_it_stops_at(
        tiny, world_file, tmp_path, monkeypatch):
    import torch
    from transformers import AutoTokenizer

    from fireact_core.backends.base import Completion
    from fireact_core.backends.local import LocalModel
    from train import card
    from train.sft import build, save, train_run

    base_tok = AutoTokenizer.from_pretrained(tiny)
    assert len(base_tok("<|im_end|>", add_special_tokens=False)["input_ids"]) > 1  # several plain pieces
    cfg = load_config(None, {**TINY, "base": str(tiny), "data": [str(world_file)], "max_steps": 2,
                             "output_dir": str(tmp_path / "chat-adapter")})
    run = build(cfg, log=lambda *a: None)
    assert run.info["added_tokens"] == ["<|im_start|>", "<|im_end|>"]
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if p.requires_grad}
    assert any("trainable_tokens" in n for n in before)  # the new rows train beside the LoRA
    result = train_run(run)
    after = dict(run.trainer.model.named_parameters())
    assert all(not torch.equal(before[n], after[n].detach()) for n in before), "a trainable tensor froze"
    out = save(run, {**result, **run.info})  # as main() does
    assert card.read_manifest(out)["added_tokens"] == ["<|im_start|>", "<|im_end|>"]
    assert card.read_manifest(out)["prompt_format"]["name"] == "chat"

    local = LocalModel.from_pretrained(str(tiny), quantize=False).load_adapter(str(out), name="chat")
    tok = local.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok("x<|im_end|>", add_special_tokens=False)["input_ids"][-1] == end and end in local._shared.end_ids
    prompt = local._shared.encode([{"role": "user", "content": "Who?"}])
    assert prompt[-3:-1] != [tok.unk_token_id] * 2 and tok.convert_tokens_to_ids("<|im_start|>") in prompt

    # The decode loop: the model's reply, then its end-of-turn token: it stops there, and the marker is not text.
    reply = tok("Thought: x\nAction: finish[Idris Kallum]", add_special_tokens=False)["input_ids"] + [end, 5, 6]
    calls = iter(reply)
    vocab = local._shared.model.get_input_embeddings().weight.shape[0]

    def forward(module, ids, cache, adapter):
        logits = torch.zeros(vocab)
        logits[next(calls)] = 1.0
        return logits

    monkeypatch.setattr(local._shared, "forward", forward)
    items = list(local.stream([{"role": "user", "content": "Who?"}], max_tokens=64))
    done = items[-1]
    assert isinstance(done, Completion) and done.finish_reason == "stop"
    assert done.text == "Thought: x\nAction: finish[Idris Kallum]"
