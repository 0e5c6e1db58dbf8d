"""The local backend on the real SmolLM2-135M-Instruct: streaming, stops, continuation, KV reuse, adapters."""

from __future__ import annotations

import copy
import threading

import pytest

from fireact_core import models
from fireact_core.backends.base import Completion, Model, complete
from fireact_core.errors import ConfigError

torch = pytest.importorskip("torch")

Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def loaded():
    return models.load_base()


@pytest.fixture(scope="module")
def fast(loaded):
    """The default configuration on CPU: fp32 prefill, int8 decode."""
    from fireact_core.backends.local import LocalModel

    model, tokenizer = loaded
    return LocalModel.from_model(model, tokenizer, name="smollm2")


@pytest.fixture(scope="module")
def exact(loaded):
    """fp32 everywhere (shares the weights with `fast`)."""
    from fireact_core.backends.local import LocalModel

    model, tokenizer = loaded
    return LocalModel.from_model(model, tokenizer, name="smollm2-fp32", quantize=False)


@pytest.fixture(scope="module")
def paris(exact):
    """The fp32 greedy reply to Q, computed once."""
    return run(exact, Q)[1]


def run(model, messages, **kw):
    items = list(model.stream(messages, stop=kw.pop("stop", ()), max_tokens=kw.pop("max_tokens", 24)))
    assert isinstance(items[-1], Completion) and all(isinstance(x, str) for x in items[:-1])
    return items[:-1], items[-1]


def test_protocol_and_streaming_deltas_join_to_the_text(fast):
    assert isinstance(fast, Model) and isinstance(fast.session(), Model)
    deltas, done = run(fast, Q)
    assert done.text.strip() and "".join(deltas) == done.text
    assert len(deltas) > 3  # streamed piece by piece, not in one block
    assert done.prompt_tokens == done.prefill_tokens == len(fast._shared.encode(Q))
    assert done.finish_reason == "stop" and 0 < done.completion_tokens < 24  # ended at <|im_end|>
    assert "Paris" in done.text


def test_max_tokens_ends_with_length(fast):
    deltas, done = run(fast, [{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=5)
    assert done.finish_reason == "length" and done.completion_tokens == 5 and "".join(deltas) == done.text


def test_stop_strings_are_cut_and_never_streamed(exact, paris):
    full = paris
    stop = full.text[9:16]  # a stop string that spans token boundaries
    assert len(stop.strip()) >= 5
    deltas, done = run(exact, Q, stop=["\nObservation:", stop])
    expected = full.text[: full.text.find(stop)]
    assert done.text == expected and "".join(deltas) == expected and done.finish_reason == "stop"
    assert all(stop not in d for d in deltas)


def test_chatml_rendering_and_assistant_continuation(exact, paris):
    sh = exact._shared
    prefix = "The capital of"
    ids = sh.encode([*Q, {"role": "assistant", "content": prefix}])
    text = sh.tokenizer.decode(ids)
    assert text == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nThe capital of"
    assert sh.tokenizer.decode(sh.encode(Q)).endswith("<|im_end|>\n<|im_start|>assistant\n")
    full = paris
    assert full.text.startswith(prefix)
    _, more = run(exact, [*Q, {"role": "assistant", "content": prefix}])
    assert prefix + more.text == full.text  # greedy: continuing the turn gives the same reply


def test_session_reuses_keys_values_and_matches_a_fresh_encoding(fast):
    model = fast  # int8 decode: the case where the cache must be cropped back to fp32 keys/values
    session = model.session()
    first = complete(session, Q, max_tokens=16)
    turn2 = [*Q, {"role": "assistant", "content": first.text}, {"role": "user", "content": "And of Germany?"}]
    _, reused = run(session, turn2, max_tokens=16)
    _, fresh = run(model, turn2, max_tokens=16)
    assert reused.text == fresh.text and reused.text.strip()
    assert reused.prompt_tokens == fresh.prompt_tokens == fresh.prefill_tokens
    assert reused.prefill_tokens < reused.prompt_tokens - first.prompt_tokens + 2  # only the new turn
    turn3 = [*turn2, {"role": "assistant", "content": reused.text}, {"role": "user", "content": "Thanks."}]
    _, third = run(session, turn3, max_tokens=4)
    assert third.prefill_tokens < third.prompt_tokens / 2


def step_vs_fp32(shared, messages, adapter=None):
    """(quantised step logits, fp32 logits) for the last prompt token, both after an fp32 prefill."""
    from transformers import DynamicCache

    ids = shared.encode(messages)
    ref_cache, cache = DynamicCache(config=shared.model.config), DynamicCache(config=shared.model.config)
    ref = shared.forward(shared.model, ids, ref_cache, adapter)
    shared.forward(shared.model, ids[:-1], cache, adapter)
    got = shared.forward(shared.decoder(adapter), ids[-1:], cache, adapter)
    assert cache.get_seq_length() == len(ids)
    return got, ref


def close(got, ref) -> bool:
    return int(got.argmax()) == int(ref.argmax()) and float(torch.corrcoef(torch.stack([got, ref]))[0, 1]) > 0.99


def test_quantised_step_tracks_the_fp32_model(fast, exact):
    from fireact_core.backends.quant import Int4Linear, QuantLlama

    assert fast.quantized and not exact.quantized
    fast.warm_up()
    assert isinstance(fast._shared.fast, QuantLlama) and all(isinstance(m, Int4Linear) for m in fast._shared.fast.layers[0][2::4][:1])
    got, ref = step_vs_fp32(fast._shared, Q)
    assert close(got, ref)
    top = ref.topk(3).indices
    assert torch.allclose(got[top], ref[top], rtol=0.05, atol=0.3)  # the top logits are recomputed in fp32


def test_concurrent_sessions_share_one_model(fast):
    questions = ["Name a colour.", "What is the capital of Italy?"]
    alone = [complete(fast, [{"role": "user", "content": q}], max_tokens=6).text for q in questions]
    together: dict[int, str] = {}

    def worker(i: int) -> None:
        together[i] = complete(fast.session(), [{"role": "user", "content": questions[i]}], max_tokens=6).text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [together[i] for i in range(len(questions))] == alone


def test_two_adapters_on_one_base_switch_without_reload(loaded, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from fireact_core.backends.local import LocalModel
    from fireact_core.backends.shared import _FastDecoder

    model, tokenizer = copy.deepcopy(loaded[0]), loaded[1]  # adapters are injected into the base in place
    folders = {}
    for i, name in enumerate(["a", "b"]):
        torch.manual_seed(i)
        config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
        peft_model = get_peft_model(model, config)
        peft_model.save_pretrained(tmp_path / name)
        model = peft_model.unload()
        folders[name] = str(tmp_path / name)

    base = LocalModel.from_model(model, tokenizer, name="smollm2")  # the quantised fast path
    plain = complete(base, Q, max_tokens=4).text
    quantised = base._shared.fast
    monkeypatch.setattr(models, "load_base", lambda *a, **k: pytest.fail("the base was reloaded"))
    a = base.load_adapter(folders["a"], "a")
    b = base.load_adapter(folders["b"], "b")
    assert sorted(base.adapters) == ["a", "b"] and a.name == "smollm2+a"
    out_a, out_b = complete(a, Q, max_tokens=4).text, complete(b, Q, max_tokens=4).text
    assert len({plain, out_a, out_b}) == 3  # each adapter really changes the model
    assert complete(a, Q, max_tokens=4).text == out_a  # switching back
    assert complete(base.with_adapter(None), Q, max_tokens=4).text == plain
    assert base.with_adapter("b")._shared is base._shared and base._shared.fast is quantised  # nothing rebuilt
    with pytest.raises(ConfigError, match="not loaded"):
        base.with_adapter("c")
    # Each LoRA, run beside the 4-bit base, tracks the fp32 PeftModel with that adapter active.
    for name in ("a", "b"):
        assert isinstance(base._shared.decoder(name), _FastDecoder)  # not the fp32 fallback
        got, ref = step_vs_fp32(base._shared, Q, name)
        assert close(got, ref), name
    got_plain, _ = step_vs_fp32(base._shared, Q, None)
    assert not torch.allclose(got_plain, got, atol=1.0)


def test_factory_options_are_checked():
    from fireact_core.backends.local import load

    with pytest.raises(ConfigError, match="unknown option"):
        load("", tempature=0.5)


def test_growing_cache_layer_keeps_one_dtype_and_its_contents_across_growth():
    import torch

    from fireact_core.backends.quant import GrowingLayer

    layer = GrowingLayer()
    k0, v0 = torch.randn(1, 3, 200, 8), torch.randn(1, 3, 200, 8)  # a prefill: fp32 keys and values
    layer.update(k0, v0)
    steps = []
    for _ in range(250):  # decode steps past the first buffer (2 x 200): the quantised step's values are bf16
        k, v = torch.randn(1, 3, 1, 8), torch.randn(1, 3, 1, 8).bfloat16()
        keys, values = layer.update(k, v)
        steps.append((k, v))
    assert keys.dtype == values.dtype == torch.float32
    assert keys.shape[-2] == values.shape[-2] == 450 == layer.get_seq_length()
    assert torch.equal(keys[..., :200, :], k0) and torch.equal(values[..., :200, :], v0)
    assert torch.equal(keys[..., -1:, :], steps[-1][0]) and torch.equal(values[..., -1:, :], steps[-1][1].float())
    layer.crop(-50)
    assert layer.get_seq_length() == 400 and torch.equal(layer.values[..., :200, :], v0)


def test_completion_times_prefill_and_decode_and_names_the_engine(fast, exact):
    _, done = run(fast, Q, max_tokens=6)
    assert done.prefill_s > 0 and done.decode_s > 0  # bench/battle.py splits a battle's model time by these
    assert fast.engine.startswith(fast._shared.fast.kind) and "thread" in fast.engine
    assert exact.engine.startswith("torch float32")


def test_quantised_step_gives_the_same_logits_whether_the_cache_has_room_or_must_grow(fast):
    from fireact_core.backends.quant import GrowingLayer, new_cache

    sh = fast._shared
    fast.warm_up()
    ids = sh.encode(Q)
    roomy, full = new_cache(sh.model.config), new_cache(sh.model.config)
    for cache in (roomy, full):
        sh.forward(sh.model, ids, cache, None)
    for layer in full.layers:  # no room left: the step's direct write gives way to a growing update
        assert isinstance(layer, GrowingLayer)
        layer.buffers = tuple(b[..., :layer.length, :] for b in layer.buffers)
    with torch.inference_mode():
        for token in (ids[-1], 42, 7):
            a, b = sh.fast.step(token, roomy, None), sh.fast.step(token, full, None)
            assert torch.equal(a, b)
    assert roomy.get_seq_length() == full.get_seq_length() == len(ids) + 3
    assert torch.equal(roomy.layers[3].keys, full.layers[3].keys)
    assert full.layers[0].buffers[0].shape[-2] > len(ids) + 3  # it grew


def test_an_agent_on_the_local_backend_records_its_engine(fast):
    from fireact_core.agent import Agent
    from fireact_core.spec import AgentSpec

    traj = Agent(fast, None, AgentSpec(method="cot", max_tokens=8)).solve("What is the capital of France?")
    assert traj.meta["engine"] == fast.engine and "int4" in traj.meta["engine"]  # `fireact run/eval` on CPU


def test_an_adapter_the_fast_path_cannot_run_falls_back_to_fp32_and_says_so(loaded, tmp_path):
    from peft import LoraConfig, get_peft_model

    from fireact_core.backends.local import LocalModel
    from fireact_core.backends.shared import _FastDecoder

    model, tokenizer = copy.deepcopy(loaded[0]), loaded[1]
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(tmp_path / "dora")
    base = LocalModel.from_model(peft_model.unload(), tokenizer, name="smollm2")
    dora = base.load_adapter(str(tmp_path / "dora"), "dora")
    text = complete(dora, Q, max_tokens=4).text
    assert dora.engine.startswith("torch float32") and not isinstance(base._shared.decoder("dora"), _FastDecoder)
    assert base.engine.startswith("torch int4")  # the plain base keeps the fast path
    assert text and text != complete(base, Q, max_tokens=4).text  # the DoRA adapter really ran
