"""Owner-offered Hub bases and the paper's published adapters, with no network and no large weights.

A tiny random Llama (tests/tiny_llama.py) is served by the Hub stand-in under the id an owner
offers (`meta-llama/Llama-2-7b-chat-hf`), and a LoRA adapter in the published adapters' layout
(peft 0.4.0's `adapter_config.json` recording a local path, a pickled `adapter_model.bin`, r=8 on
q_proj/v_proj) under `forestai/fireact_llama_2_7b_lora`. 4-bit loading is checked as the keyword
arguments it builds: no test here has a CUDA GPU.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer
from huggingface_hub import constants, hf_api
from tiny_llama import RECORDED_BASE, hub_files, make_tiny_llama, make_tokenizer, save_published_adapter

from fireact_core import adapters, base_fit, models
from fireact_core.errors import ConfigError, InputError
from space import choices

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
LLAMA = "meta-llama/Llama-2-7b-chat-hf"
ADAPTER = "forestai/fireact_llama_2_7b_lora"
# meta-llama/Llama-2-7b-chat-hf's config.json (the fields the size depends on)
LLAMA2_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
             "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False, "torch_dtype": "float16"}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The tiny Llama (in a folder named like the real one), its published-layout adapter, and an
    adapter made for a different tiny Llama (hidden size 32, 3 layers)."""
    root = tmp_path_factory.mktemp("llama")
    tok = make_tokenizer()
    base = make_tiny_llama(root / "Llama-2-7b-chat-hf", tokenizer=tok)
    other = make_tiny_llama(root / "other", hidden=32, layers=3, tokenizer=tok)
    return {"base": base, "adapter": save_published_adapter(base, root / "fireact_llama_2_7b_lora"),
            "other": other, "wrong": save_published_adapter(other, root / "wrong")}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Online against the Hub stand-in, in this process (huggingface_hub read its endpoint at import)."""
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr(hf_api.api, "endpoint", server.url)  # the module's HfApi (peft's file_exists)
        yield server


@pytest.fixture
def offered(monkeypatch):
    monkeypatch.setenv("FIREACT_BASES", f"Llama 2 7B chat={LLAMA}")
    monkeypatch.delenv("FIREACT_LOAD_4BIT", raising=False)
    monkeypatch.delenv("FIREACT_BASE_ALIASES", raising=False)
    choices.offered_bases.cache_clear()
    yield
    choices.offered_bases.cache_clear()


def _weights(server: HubServer) -> list[str]:
    return [p for p in server.paths("GET") if p.endswith((".safetensors", ".bin"))]


# --- 4-bit, memory, gated ---------------------------------------------------------------------------
def test_four_bit_is_nf4_with_double_quantisation_and_refused_without_cuda(monkeypatch, caplog):
    kw = base_fit.load_kwargs
    four = kw("cuda", load_4bit=True)
    q = four["quantization_config"]
    assert (q.load_in_4bit, q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant) == (True, "nf4", True)
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and four["dtype"] == torch.bfloat16
    assert four["device_map"] == {"": "cuda"}
    assert kw("cuda") == {"dtype": torch.bfloat16} and kw("cpu") == {"dtype": torch.float32}
    with pytest.raises(ConfigError, match="4-bit NF4 loading needs a CUDA GPU"):
        kw("cpu", load_4bit=True)
    from fireact_core.backends import local

    with pytest.raises(ConfigError, match="needs a CUDA GPU"):  # refused before anything loads
        local.load("nobody/anything:4bit", device="cpu")
    # the app: a `:4bit` entry is its own spec (its own leaderboard entry); FIREACT_LOAD_4BIT without CUDA is ignored
    monkeypatch.setenv("FIREACT_BASES", f"{LLAMA}, big=meta-llama/Llama-2-13b-chat-hf:4bit, smollm2")
    monkeypatch.setattr(choices, "_cuda", lambda: False)
    monkeypatch.setenv("FIREACT_LOAD_4BIT", "1")
    with caplog.at_level(logging.WARNING, logger="fireact.app"):
        got = choices.owner_bases()
    assert got == [(LLAMA, LLAMA, f"local:{LLAMA}"),
                   ("big", "meta-llama/Llama-2-13b-chat-hf", "local:meta-llama/Llama-2-13b-chat-hf:4bit")]
    assert "no CUDA GPU" in caplog.text
    monkeypatch.setattr(choices, "_cuda", lambda: True)
    assert next(s for *_, s in choices.owner_bases()) == f"local:{LLAMA}:4bit"
    monkeypatch.setenv("FIREACT_BASES", "=x/y")
    with pytest.raises(ConfigError, match="FIREACT_BASES"):
        choices.owner_bases()


def test_parameter_counts(made):
    config = json.loads((made["base"] / "config.json").read_text())
    from transformers import AutoModelForCausalLM

    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(made["base"]).parameters())
    assert base_fit.estimate_parameters(config) == real
    assert base_fit.parameter_count(made["base"], config) == (real, "safetensors headers")
    assert base_fit.estimate_parameters(LLAMA2_7B) == 6_738_415_616  # Llama-2-7B's published count


def test_a_base_too_large_is_refused_with_the_numbers_before_any_weight_downloads(hub, monkeypatch):
    hub.add_files(LLAMA, {"config.json": json.dumps(LLAMA2_7B).encode(), "model-00001-of-00002.safetensors": b"x"})
    monkeypatch.setattr(base_fit, "available_memory", lambda device: (8 * base_fit.GIB, "available RAM"))
    with pytest.raises(ConfigError) as err:
        models.load_base(LLAMA, device="cpu")
    msg = str(err.value)
    assert "6.74 B parameters (estimated from config.json)" in msg and "25.1 GiB in float32" in msg
    assert "8.0 GiB of available RAM" in msg and "4-bit" in msg
    assert _weights(hub) == []  # only config.json was read
    # with the checkpoint's index, counted from it; on a GPU in bf16 or 4-bit
    index = {"metadata": {"total_size": 2 * 6_738_415_616}, "weight_map": {}}
    hub.add_files(LLAMA, {"model.safetensors.index.json": json.dumps(index).encode()})
    gpu = (12 * base_fit.GIB, "free GPU memory on cuda")
    with pytest.raises(ConfigError, match=r"\(safetensors index \(float16 checkpoint\)\) take 12.6 GiB in bfloat16"):
        base_fit.check_fits(LLAMA, LLAMA, LLAMA2_7B, device="cuda", dtype="torch.bfloat16", four_bit=False,
                            available=gpu)
    need = base_fit.check_fits(LLAMA, LLAMA, LLAMA2_7B, device="cuda", dtype="torch.bfloat16", four_bit=True,
                               available=gpu)
    assert 3.5 * base_fit.GIB < need.bytes < 3.7 * base_fit.GIB  # ~3.6 GiB: 7B in NF4, embeddings in bf16
    monkeypatch.setenv("FIREACT_SKIP_MEMORY_CHECK", "1")
    base_fit.check_fits(LLAMA, LLAMA, LLAMA2_7B, device="cpu", dtype="float32", four_bit=False, available=gpu)


class GatedHub(HubServer):
    """The stand-in with gated repositories: 401 without a token, 403 for a token not granted access,
    `X-Error-Code: GatedRepo` either way (what the Hub answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.gated: set[str] = set()

    def handle(self, method, path, query, raw, token):  # type: ignore[override]
        repo = next((r for r in self.gated if path.startswith((f"/{r}/", f"/api/models/{r}"))), None)
        if repo is not None:
            status = 401 if token is None else 403
            return self._json({"error": f"Access to model {repo} is restricted."}, status, "GatedRepo")
        return super().handle(method, path, query, raw, token)


def test_a_gated_base_says_it_needs_a_token_and_the_licence(monkeypatch, tmp_path):
    with GatedHub() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
        server.add_files(LLAMA, {"config.json": json.dumps(LLAMA2_7B).encode()})
        server.gated.add(LLAMA)
        with pytest.raises(ConfigError) as err:
            models.load_base(LLAMA, device="cpu")
        assert "HF_TOKEN" in str(err.value) and "licence" in str(err.value) and LLAMA in str(err.value)
        assert _weights(server) == []


# --- which adapter goes on which base -----------------------------------------------------------
def test_recorded_paths_aliases_and_shapes(made, monkeypatch):
    config = json.loads((made["base"] / "config.json").read_text())
    assert adapters.same_base(RECORDED_BASE, LLAMA, config)[0]  # a local copy of the base, by its folder name
    assert adapters.same_base("C:\\models\\llama-2-7b-chat-hf", LLAMA, config)[0]
    assert adapters.same_base("llama-2-7b-chat-hf", LLAMA, config)[0]  # a bare folder name
    assert not adapters.same_base("someone/llama-2-7b-chat-hf", LLAMA, config)[0]  # another repo, not a copy
    ok, why = adapters.same_base("/srv/ckpt/llama2-7b", LLAMA, config)
    assert not ok and "FIREACT_BASE_ALIASES='/srv/ckpt/llama2-7b=meta-llama/Llama-2-7b-chat-hf'" in why
    monkeypatch.setenv("FIREACT_BASE_ALIASES", f"/srv/ckpt/llama2-7b/={LLAMA}, /x/a=b/c")
    assert adapters.aliases() == {"/srv/ckpt/llama2-7b": LLAMA, "/x/a": "b/c"}
    assert adapters.same_base("/srv/ckpt/llama2-7b", LLAMA, config) == (True, f"by the alias /srv/ckpt/llama2-7b = {LLAMA}")
    assert models.canonical_base("/srv/ckpt/llama2-7b") == LLAMA
    assert not adapters.same_base("meta-llama/Llama-2-13b-chat-hf", LLAMA, config)[0]  # another Hub id, unreadable
    # a recorded base whose config can be read: the same architecture and sizes is the same base
    assert adapters.same_base(str(made["base"]), "someone/tiny-llama", config)[0]
    ok, why = adapters.same_base(str(made["other"]), LLAMA, config)
    assert not ok and "hidden size 32, 3 layers" in why and "hidden size 64, 2 layers" in why
    # the tensors: the published layout read from the pickle, checked against a config
    shapes = adapters.lora_shapes(str(made["adapter"]))
    assert shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] == (8, 64)
    assert adapters.shape_problems_config(shapes, config) == []
    problems = adapters.shape_problems_config(adapters.lora_shapes(str(made["wrong"])), config)
    assert "model.layers.0.self_attn.q_proj takes 32 inputs, but the base's hidden size is 64" in problems
    assert "model.layers.2.self_attn.q_proj is on layer 2, but the base has 2 layers" in problems
    monkeypatch.setenv("FIREACT_BASE_ALIASES", "no equals sign")
    with pytest.raises(ConfigError, match="FIREACT_BASE_ALIASES"):
        adapters.aliases()


def test_the_published_adapter_loads_on_its_base_and_a_wrong_one_is_named(made, monkeypatch):
    from fireact_core.backends.base import complete
    from fireact_core.backends.local import LocalModel

    base = LocalModel.from_pretrained(str(made["base"]), quantize=False)
    msgs = [{"role": "user", "content": "Question: Which country is Adav in?"}]
    plain = complete(base, msgs, max_tokens=8).text
    tuned = base.load_adapter(str(made["adapter"]), name="fireact")  # records /home/…/llama-2-7b-chat-hf
    assert complete(tuned, msgs, max_tokens=8).text != plain  # the adapter is active (B is not zero)
    assert complete(base, msgs, max_tokens=8).text == plain  # the base view is unchanged
    # an adapter made for another Llama, aliased onto this one by mistake: its shapes give it away
    monkeypatch.setenv("FIREACT_BASE_ALIASES", f"{RECORDED_BASE}={made['base']}")
    wrong = made["wrong"]
    conf = json.loads((wrong / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == RECORDED_BASE
    with pytest.raises(ConfigError) as err:
        base.load_adapter(str(wrong), name="wrong")
    msg = str(err.value)
    assert f"adapter {str(wrong)!r} is not an adapter for" in msg and "takes 32 inputs in the adapter, 64 in the base" in msg
    assert "wrong" not in base.adapters
    monkeypatch.delenv("FIREACT_BASE_ALIASES")
    with pytest.raises(ConfigError, match=r"was trained on base model .* but the loaded base is"):
        base.load_adapter(str(save_published_adapter(made["base"], made["base"].parent / "elsewhere",
                                                     recorded_base="/srv/ckpt/llama2-7b")), name="elsewhere")


# --- the arena and the CLI, with the stand-in Hub serving both ---------------------------------
def test_the_arena_offers_the_owners_base_and_loads_the_published_adapter_on_it(made, hub, offered, monkeypatch):
    from fireact_core.backends.base import complete
    from space.loading import CachedLoader

    hub.add_files(LLAMA, hub_files(made["base"]))
    hub.add_files(ADAPTER, hub_files(made["adapter"]))
    spec = f"local:{LLAMA}"
    assert ("Llama 2 7B chat (local base model)", spec) in choices.default_prompted_choices()
    choices.check_model(spec, list)  # offered: a visitor may pick it on either side
    with pytest.raises(InputError, match="not a model this app offers"):
        choices.check_model("local:meta-llama/Llama-2-13b-chat-hf", list)
    assert _weights(hub) == []
    # typed on the fine-tuned side: its adapter_config.json (a local path) puts it on the Llama base
    assert choices.parse_finetuned(ADAPTER) == (spec, ADAPTER)
    assert _weights(hub) == []  # nothing but small JSON files so far
    # listed: a Hub adapter whose card names the same path goes on the offered base
    from train import hub as train_hub

    found = [train_hub.HubAdapter(ADAPTER, RECORDED_BASE, 7), train_hub.HubAdapter("x/y", "/srv/other-model", 1)]
    monkeypatch.setattr(train_hub, "discover", lambda **kw: found)
    listed = choices.hub_adapter_choices()
    assert listed == [(f"Hub: {ADAPTER} (7↓) (on {spec})", f"on:{spec}:{ADAPTER}")]
    assert choices.parse_finetuned(listed[0][1]) == (spec, ADAPTER)
    # loaded as the arena loads a side: the base once, the adapter onto it
    loader = CachedLoader()
    tuned, prompted = loader(spec, ADAPTER), loader(spec, None)
    fetched = _weights(hub)
    assert f"/{ADAPTER}/resolve/main/adapter_model.bin" in fetched and any(LLAMA in p for p in fetched)
    msgs = [{"role": "user", "content": "Question: Which country is Adav in?"}]
    assert complete(tuned, msgs, max_tokens=6).text != complete(prompted, msgs, max_tokens=6).text
    # an adapter whose base is not offered is refused when typed, before its weights download
    hub.add_files("someone/gemma-adapter", {"adapter_config.json": json.dumps({"base_model_name_or_path": "google/gemma-2-2b"}).encode()})
    with pytest.raises(InputError, match="google/gemma-2-2b, a base this app does not load"):
        choices.parse_finetuned("someone/gemma-adapter")
    assert not [p for p in hub.paths("GET") if "gemma-adapter" in p and p.endswith((".bin", ".safetensors"))]


RUN_TIMEOUT = 600


def test_fireact_run_with_the_published_adapter_from_the_hub(made, tmp_path):
    """The CLI, started online against the stand-in (a fresh process: huggingface_hub reads its endpoint at import)."""
    with HubServer() as server:
        server.add_files(LLAMA, hub_files(made["base"]))
        server.add_files(ADAPTER, hub_files(made["adapter"]))
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
               "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        env.pop("HF_HUB_CACHE", None)
        r = subprocess.run([sys.executable, "-m", "fireact_core.cli", "run", "Which country is Adav in?",
                            "--model", f"local:{LLAMA}", "--adapter", ADAPTER, "--json", "--max-steps", "2",
                            "--max-tokens", "12"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
        assert r.returncode == 0, r.stderr[-3000:]
        traj = json.loads(r.stdout[r.stdout.index("{"):])
        assert (traj["agent"]["model"], traj["agent"]["adapter"]) == (f"local:{LLAMA}", ADAPTER)
        assert traj["agent"]["finetuned"] is True and traj["steps"]
        # no format option given: the known-adapters table runs the paper's adapter in its Alpaca text format
        assert traj["agent"]["prompt_format"] == "alpaca", traj["agent"]
        assert f"/{ADAPTER}/resolve/main/adapter_model.bin" in server.paths("GET")
