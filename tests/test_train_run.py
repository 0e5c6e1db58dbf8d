"""Tiny real training runs on the bundled SmolLM2-135M and the paper's HotpotQA trajectories.

- LoRA on unquantised weights (bf16 where the CPU multiplies it natively) through `main()`: the loss drops, every LoRA tensor moves, the adapter
  folder is complete, it is pushed to a local Hub, and it loads and generates;
- 4-bit NF4 QLoRA on CPU with the avx512_bf16 guard: the same checks;
- the guard matters: without it, a `generate` before training freezes the LoRA weights.

The runs use one CPU thread: on a machine whose cores are shared with other jobs, two
OpenMP threads spin-wait on each other and are several times slower than one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hub_server import TOKEN, HubServer

from train import qlora_guard
from train.config import load_config

HOTPOT = "finetune/alpaca_format/hotpotqa.json"
REPO = "tester/fireact-tiny"


def _hotpot(shared: Path, n: int, out: Path) -> str:
    out.write_text(json.dumps(json.loads((shared / HOTPOT).read_text())[:n]), encoding="utf-8")
    return str(out)


TINY = {"max_length": 256, "learning_rate": 2e-3, "per_device_train_batch_size": 2, "logging_steps": 1,
        "warmup_steps": 0, "lr_scheduler_type": "constant", "save_steps": 1000, "seed": 0,
        "target_modules": ["q_proj", "v_proj"], "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
        "cpu_threads": 1}


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    """`main()` with LoRA on unquantised weights for 5 steps on 8 trajectories (2 held out), pushing to a local Hub."""
    from huggingface_hub import constants

    from train.sft import main

    tmp = tmp_path_factory.mktemp("lora")
    cfg = load_config(None, {**TINY, "data": [_hotpot(shared_data, 8, tmp / "h.json")], "val_size": 2,
                             "max_steps": 5, "load_in_4bit": False, "activation_checkpointing": False,
                             "output_dir": str(tmp / "adapter"), "push_to_hub": REPO,
                             "datasets": ["hotpotqa/hotpot_qa"]})
    lines: list[str] = []
    with HubServer() as hub, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", hub.url)
        mp.setenv("HF_TOKEN", TOKEN)
        mp.setattr(constants, "HF_HUB_OFFLINE", False)  # the Hub client only; models still load offline
        result = main(cfg, log=lambda *a: lines.append(" ".join(map(str, a))))
        yield {"result": result, "out": Path(cfg.output_dir), "hub": hub, "log": "\n".join(lines), "cfg": cfg}


def test_lora_loss_drops_and_every_lora_tensor_changes(trained):
    r = trained["result"]
    assert r["steps"] == 5 and len(r["losses"]) == 5
    assert r["losses"][-1] < r["losses"][0] - 0.1
    assert r["lora_tensors_changed"] == 2 * 2 * 30  # q and v, A and B, 30 layers; main() raises if any stayed put
    assert r["eval_loss"] > 0 and r["tokens_per_s"] > 0
    assert "resumed_at_step" not in r
    if sys.platform.startswith("linux"):
        assert r["peak_rss_gb"] > 0.1  # the peak resident memory lands in the result (and the card)
    assert "training examples: 6   validation: 2" in trained["log"]
    # bf16 base weights on a CPU that multiplies bf16 natively (about 2x fp32), fp32 elsewhere; LoRA stays fp32.
    from train.device import cpu_bf16

    assert r["base_dtype"] == ("bfloat16" if cpu_bf16() else "float32")
    assert r["lora_dtype"] == "float32"


def test_adapter_folder_is_complete(trained):
    from fireact_core.models import chat_template

    out = trained["out"]
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "fireact.json", "tokenizer.json",
            "chat_template.jinja"} <= names
    assert "checkpoints" not in names and "training_args.bin" not in names
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (out / "chat_template.jinja").read_text() == chat_template()
    from train.card import read_manifest, read_metadata

    meta = read_metadata(out / "README.md")
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "peft"
    assert {"fireact", "agent", "react", "lora", "qlora"} <= set(meta["tags"])
    assert meta["datasets"] == ["hotpotqa/hotpot_qa"]
    assert read_manifest(out)["tasks"] == ["hotpotqa"]
    assert "validation loss (agent tokens)" in (out / "README.md").read_text()


def test_push_uploads_the_folder_bytes_to_the_hub(trained):
    r, hub, out = trained["result"], trained["hub"], trained["out"]
    assert r["hub_url"] == f"{hub.url}/{REPO}" and "hub_error" not in r
    files = hub.repos[REPO]["files"]
    local = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert set(files) == set(local)
    for name, data in local.items():
        assert files[name] == data, name
    assert hub.paths("POST")[:2] == ["/api/repos/create", "/api/validate-yaml"]
    assert any(p.endswith("/commit/main") for p in hub.paths("POST"))
    assert all(req["token"] == TOKEN for req in hub.requests if req["method"] == "POST" and "validate" not in
               req["path"])


def test_discovery_lists_the_pushed_adapter(trained, monkeypatch):
    from huggingface_hub import constants

    from train.hub import discover

    hub = trained["hub"]
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    found = discover()
    assert [a.repo_id for a in found] == [REPO]
    assert found[0].base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert found[0].summary.startswith("A FireAct language agent")


def test_saved_adapter_loads_and_generates(trained):
    import torch

    from fireact_core.models import load_adapter, load_base

    model, tok = load_base("smollm2", device="cpu")
    torch.set_num_threads(1)  # load_base takes every core; see the module docstring
    peft_model = load_adapter(model, trained["out"], name="tiny")
    msgs = [{"role": "user", "content": "Which magazine was started first, Arthur's Magazine or First for Women?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = peft_model.generate(**ids, max_new_tokens=8, do_sample=False)
        with peft_model.disable_adapter():
            base_logits = peft_model(**ids).logits[0, -1]
        tuned_logits = peft_model(**ids).logits[0, -1]
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip()
    assert not torch.allclose(base_logits, tuned_logits)  # the adapter is active


# --- 4-bit on CPU -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qlora(shared_data, tmp_path_factory):
    """4-bit NF4 QLoRA through build() + train_run(), 3 steps; kept for the guard test."""
    from train.sft import build, train_run

    tmp = tmp_path_factory.mktemp("qlora")
    cfg = load_config(None, {**TINY, "data": [_hotpot(shared_data, 4, tmp / "h.json")], "val_size": 0,
                             "max_length": 160, "max_steps": 3, "load_in_4bit": True,
                             "activation_checkpointing": True, "output_dir": str(tmp / "adapter")})
    run = build(cfg, log=lambda *_: None)
    return run, train_run(run)


def test_qlora_cpu_path_trains_with_the_guard(qlora):
    run, r = qlora
    assert run.four_bit and run.device == "cpu"
    modules = qlora_guard.linear4bit_modules(run.trainer.model)
    assert len(modules) == 30 * 7 and run.guarded == len(modules)
    assert all(m.support_avx512bf16_for_cpu is False for m in modules)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in modules)
    assert r["losses"][-1] < r["losses"][0]
    assert r["lora_tensors_changed"] == 30 * 4  # q and v, A and B


@pytest.mark.skipif(not qlora_guard.cpu_has_avx512_bf16(), reason="this CPU lacks avx512_bf16: bitsandbytes never repacks")
def test_without_the_guard_a_generate_before_training_freezes_lora(qlora):
    """Turn the guard off, generate once, and a training step leaves LoRA weights unchanged; the guard repairs it."""
    import torch

    run, _ = qlora
    model, trainer = run.trainer.model, run.trainer
    layers = qlora_guard.linear4bit_modules(model)
    for layer in layers:
        layer.support_avx512bf16_for_cpu = True  # bitsandbytes' default on this CPU
    batch = next(iter(trainer.get_train_dataloader()))
    model.eval()
    with torch.no_grad():
        model.generate(input_ids=batch["input_ids"][:1, :16], max_new_tokens=2, do_sample=False)
    assert any(getattr(layer.weight.quant_state, "packing_format_for_cpu", False) for layer in layers)

    def step() -> list[str]:
        model.train()
        params = [p for n, p in model.named_parameters() if p.requires_grad]
        before = qlora_guard.lora_snapshot(model)
        opt = torch.optim.SGD(params, lr=1.0)
        model(**{k: batch[k] for k in ("input_ids", "labels")}).loss.backward()
        opt.step()
        opt.zero_grad()
        return qlora_guard.unchanged_lora(model, before)

    frozen = step()
    assert frozen, "expected the repacked 4-bit layers to cut LoRA off from its gradients"
    assert qlora_guard.guard_cpu_4bit(model) == len(layers)
    assert not any(getattr(layer.weight.quant_state, "packing_format_for_cpu", False) for layer in layers)
    assert step() == []


@pytest.mark.slow
def test_resume_from_the_last_checkpoint(shared_data, tmp_path):
    """Train 2 steps keeping checkpoints, then resume to 3: the step count continues."""
    from train.sft import main

    data = [_hotpot(shared_data, 4, tmp_path / "h.json")]
    base = {**TINY, "data": data, "val_size": 0, "max_length": 128, "load_in_4bit": False,
            "activation_checkpointing": False, "output_dir": str(tmp_path / "a"), "save_steps": 2,
            "keep_checkpoints": True}
    first = main(load_config(None, {**base, "max_steps": 2}), log=lambda *_: None)
    assert first["steps"] == 2 and (tmp_path / "a" / "checkpoints" / "checkpoint-2").is_dir()
    second = main(load_config(None, {**base, "max_steps": 3, "resume_from_checkpoint": True}), log=lambda *_: None)
    assert second["steps"] == 3 and second["losses"][:2] == first["losses"] and len(second["losses"]) == 3
    assert second["resumed_at_step"] == 2  # its time and tokens/s cover step 3 alone
    assert os.path.isdir(tmp_path / "a" / "checkpoints" / "checkpoint-3")


def test_merge_writes_a_full_model_that_matches_the_adapter(trained):
    import torch
    from transformers import AutoModelForCausalLM

    from fireact_core.models import load_adapter, load_base
    from train.after import merge

    target = merge(trained["cfg"], trained["out"])
    assert (target / "config.json").is_file() and not (target / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    model, tok = load_base("smollm2", device="cpu")
    torch.set_num_threads(1)
    peft_model = load_adapter(model, trained["out"], name="tiny")
    ids = tok("Thought: I need to search for the magazine.\nAction: search[", return_tensors="pt")
    with torch.no_grad():
        a = merged(**ids).logits[0].flatten()
        b = peft_model(**ids).logits[0].flatten()
        with peft_model.disable_adapter():
            base = peft_model(**ids).logits[0].flatten()
    sim = torch.nn.functional.cosine_similarity
    assert sim(a, b, dim=0) > 0.999  # bf16 rounding only
    assert (a - b).abs().mean() < (b - base).abs().mean()  # closer to the adapter than to the bare base


def test_training_continues_an_adapter_from_its_own_weights(tmp_path):
    """`init_adapter`: the run starts from the adapter's LoRA weights (its rank and modules, not the recipe's),
    moves every one of them, and the card and manifest say what it continued."""
    import torch
    from safetensors.torch import load_file

    from fireact_core.models import default_adapter
    from train.sft import build, main

    prior = default_adapter()
    world = {"path": str(Path(__file__).parents[1] / "data/world/trajectories/train.jsonl"), "meta": {"hops": 3},
             "weight": 0.01}
    cfg = load_config(None, {**TINY, "data": [world], "val_size": 0, "max_length": 128, "max_steps": 2,
                             "lora_r": 4, "load_in_4bit": False, "activation_checkpointing": False,
                             "init_adapter": str(prior), "output_dir": str(tmp_path / "next")})
    saved = load_file(str(prior / "adapter_model.safetensors"))
    run = build(cfg, log=lambda *_: None)
    start = {n: p for n, p in run.model.named_parameters() if p.requires_grad}
    assert len(start) == len(saved) == 7 * 2 * 30  # the prior adapter's 7 modules, not the recipe's q and v
    for name, param in start.items():
        key = name.replace(".default", "")
        assert torch.equal(param.detach().to(saved[key].dtype), saved[key]), name

    result = main(cfg, log=lambda *_: None)
    assert result["lora_tensors_changed"] == len(saved)  # main() raises if any stayed put
    manifest = json.loads((tmp_path / "next" / "fireact.json").read_text())
    assert manifest["training"]["lora"]["r"] == 8 and len(manifest["training"]["lora"]["target_modules"]) == 7
    prior_manifest = json.loads((prior / "fireact.json").read_text())["training"]
    assert manifest["training"]["continued_from"] == {"adapter": str(prior), "recipe": prior_manifest["recipe"],
                                                      "examples": prior_manifest["examples"],
                                                      "steps": prior_manifest["steps"]}
    readme = (tmp_path / "next" / "README.md").read_text()
    assert f"Training continued from the adapter `{prior}`" in readme and "| lora_r | `8` |" in readme


def test_continuing_an_adapter_of_another_base_or_one_not_there_is_refused_by_name(tmp_path):
    from fireact_core.errors import ConfigError
    from fireact_core.models import default_adapter
    from train.sft import build

    cfg = load_config(None, {**TINY, "data": ["data/world/trajectories/train.jsonl:0.01"], "val_size": 0,
                             "load_in_4bit": False, "init_adapter": str(default_adapter("gemma3")),
                             "output_dir": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="was trained on base model 'google/gemma-3-270m'"):
        build(cfg, log=lambda *_: None)
    missing = load_config(None, {**cfg.to_dict(), "init_adapter": "runs/no-such-stage-1"})
    with pytest.raises(ConfigError, match=r"init_adapter 'runs/no-such-stage-1' is not an adapter folder under .*"
                                          r"train it first"):
        build(missing, log=lambda *_: None)
