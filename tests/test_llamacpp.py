"""llama.cpp as the local backend's engine (`backends.llamacpp`) on the real bundled SmolLM2 GGUF and adapter.

Needs `llama-cpp-python` (`make llama-cpp`); skipped with the reason where it is not importable.
The engine's choice (`FIREACT_ENGINE`) is checked without it.
"""

from __future__ import annotations

import copy
import re

import pytest

from fireact_core import models
from fireact_core.backends import llamacpp
from fireact_core.backends.base import complete
from fireact_core.errors import ConfigError

torch = pytest.importorskip("torch")

Q = [{"role": "user", "content": "What is the capital of France?"}]
WORLD_Q = "In what year was the singer of the band Broken Giatan born?"
needs_llama_cpp = pytest.mark.skipif(llamacpp.why_unavailable() is not None,
                                     reason=f"{llamacpp.why_unavailable()}; `make llama-cpp` installs it")


@pytest.fixture(scope="module")
def loaded():
    return models.load_base()


@pytest.fixture(scope="module")
def cpp(loaded):
    """The bundled base with the bundled adapter, decoded by llama.cpp (`FIREACT_ENGINE=auto`)."""
    from fireact_core.backends.local import LocalModel

    model, tokenizer = copy.deepcopy(loaded[0]), loaded[1]
    mp = pytest.MonkeyPatch()
    mp.setenv("FIREACT_ENGINE", "auto")
    view = LocalModel.from_model(model, tokenizer, name="smollm2", gguf=models.gguf_source(None)).load_adapter("default")
    view.warm_up()  # the engine is decided while FIREACT_ENGINE=auto
    mp.undo()
    return view


def test_the_engine_is_chosen_by_fireact_engine(monkeypatch):
    monkeypatch.delenv("FIREACT_ENGINE", raising=False)
    assert llamacpp.engine_choice() == "auto"
    monkeypatch.setenv("FIREACT_ENGINE", "Llama.cpp")
    assert llamacpp.engine_choice() == "llama.cpp"
    monkeypatch.setenv("FIREACT_ENGINE", "vllm")
    with pytest.raises(ConfigError, match=re.escape("FIREACT_ENGINE='vllm' is not one of auto, torch, llama.cpp")):
        llamacpp.engine_choice()


def test_a_base_from_its_gguf_knows_the_file_and_a_safetensors_base_does_not(tmp_path):
    gguf = models.gguf_source(None)
    assert gguf is not None and gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.is_file()
    (tmp_path / "config.json").write_text("{}")
    assert models.gguf_source(str(tmp_path)) is None  # a folder of safetensors: its weights are not the GGUF's


def test_torch_decodes_when_asked_or_when_there_is_no_gguf(loaded, monkeypatch):
    from fireact_core.backends.local import LocalModel

    model, tokenizer = loaded
    monkeypatch.setenv("FIREACT_ENGINE", "torch")
    view = LocalModel.from_model(model, tokenizer, name="smollm2", gguf=models.gguf_source(None))
    assert view.engine.startswith("torch int4") and view._shared.cpp_why == "FIREACT_ENGINE=torch"
    monkeypatch.setenv("FIREACT_ENGINE", "llama.cpp")
    no_gguf = LocalModel.from_model(model, tokenizer, name="smollm2")
    with pytest.raises(ConfigError, match=re.escape("FIREACT_ENGINE=llama.cpp, but llama.cpp cannot decode smollm2")):
        no_gguf.warm_up()
    monkeypatch.setenv("FIREACT_ENGINE", "auto")
    quiet = LocalModel.from_model(model, tokenizer, name="smollm2")
    assert quiet.engine.startswith("torch int4") and quiet._shared.cpp_why  # auto falls back and says why


@needs_llama_cpp
def test_llama_cpp_decodes_the_adapter_as_torch_does(cpp):
    """The converted LoRA (q/k rows permuted, scaling folded into B) moves llama.cpp's logits as PEFT moves torch's."""
    assert cpp.engine.startswith("llama.cpp") and cpp.with_adapter(None).engine.startswith("llama.cpp")
    sh = cpp._shared
    ids = sh.encode([{"role": "user", "content": WORLD_Q}])
    with torch.inference_mode():
        ref = sh.model(input_ids=torch.tensor([ids])).logits[0, -1].float()  # fp32 base + adapter
        sh._activate(None)
        plain = sh.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        sh._activate("default")
    got, evaluated = sh.decoder("default").context.logits(ids)
    base_got, _ = sh.decoder(None).context.logits(ids)
    assert evaluated == len(ids)
    cos = torch.nn.functional.cosine_similarity
    assert cos(got, ref, dim=0) > 0.99 and int(got.argmax()) == int(ref.argmax())
    assert cos(base_got, plain, dim=0) > 0.99
    # the adapter moved llama.cpp's logits the way it moved torch's
    assert cos(got - base_got, ref - plain, dim=0) > 0.8
    assert (got - base_got).abs().max() > 1.0


@needs_llama_cpp
def test_a_short_prompt_runs_on_llama_cpp_a_long_one_it_does_not_hold_on_torch(cpp):
    done = complete(cpp, Q, max_tokens=8)
    assert done.engine.startswith("llama.cpp") and done.prefill_s > 0 and done.decode_s > 0
    long = [{"role": "user", "content": "Say yes. " * 300}]  # a few-shot prompt's length
    assert len(cpp._shared.encode(long)) > llamacpp.PREFILL_MAX
    session = cpp.session()
    assert complete(session, long, max_tokens=4).engine.startswith("torch int4")
    more = [*long, {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "Again?"}]
    assert complete(session, more, max_tokens=4).engine.startswith("torch int4")  # llama.cpp does not hold it
    assert complete(session, Q, max_tokens=4).engine.startswith("llama.cpp")  # one session, a short prompt


@needs_llama_cpp
def test_sessions_reuse_the_context_and_interleaved_ones_stay_correct(cpp):
    q2 = [{"role": "user", "content": "Name a colour."}]
    alone = [complete(cpp, m, max_tokens=12).text for m in (Q, q2)]
    a, b = cpp.session(), cpp.session()
    streams = [a.stream(Q, max_tokens=12), b.stream(q2, max_tokens=12)]
    texts = ["", ""]
    live = [True, True]
    while any(live):  # token by token, alternating: each call re-prefills what the other displaced
        for i, s in enumerate(streams):
            if live[i]:
                item = next(s, None)
                if item is None:
                    live[i] = False
                elif isinstance(item, str):
                    texts[i] += item
    assert texts == alone
    # a session's next turn prefills only what follows the cached prompt
    turn = [*Q, {"role": "assistant", "content": alone[0]}, {"role": "user", "content": "And of Italy?"}]
    cpp.forget()
    session = cpp.session()
    first = complete(session, Q, max_tokens=12)
    second = complete(session, turn, max_tokens=12)
    n_q, n_turn = len(cpp._shared.encode(Q)), len(cpp._shared.encode(turn))
    assert first.prefill_tokens == n_q and second.prefill_tokens == n_turn - n_q  # the prompt's keys/values kept
    cpp.forget()
    again = complete(cpp.session(), turn, max_tokens=12)
    assert again.prefill_tokens == n_turn and again.text == second.text  # as a fresh encoding


@needs_llama_cpp
def test_the_fine_tuned_agent_answers_a_world_question_on_llama_cpp_and_under_a_grammar(cpp):
    from fireact_core.build import build_agent
    from fireact_core.spec import AgentSpec

    plain = AgentSpec(finetuned=True, exemplars=0, tools="corpus")
    traj = build_agent(plain, cpp).solve(WORLD_Q, gold="1978")
    assert traj.status == "finished" and traj.answer == "1978" and traj.em == 1.0  # as on torch (bench/battle.py)
    assert traj.meta["engine"].startswith("llama.cpp") and len(traj.steps) >= 2  # it searched
    held = AgentSpec(finetuned=True, exemplars=0, tools="corpus", constrained=True, extractive=True)
    traj = build_agent(held, cpp).solve(WORLD_Q, gold="1978")
    assert traj.status == "finished" and traj.meta["engine"].startswith("llama.cpp")
    assert all(s.error is None for s in traj.steps)  # every turn well formed under the grammar
    assert traj.answer and traj.answer in " ".join([WORLD_Q] + [s.observation or "" for s in traj.steps])  # copied


@needs_llama_cpp
def test_an_adapter_llama_cpp_cannot_take_decodes_on_torch_and_says_why(loaded, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from fireact_core.backends.local import LocalModel

    model, tokenizer = copy.deepcopy(loaded[0]), loaded[1]
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True,
                                                  init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "dora")
    monkeypatch.setenv("FIREACT_ENGINE", "auto")
    base = LocalModel.from_model(peft_model.unload(), tokenizer, name="smollm2", gguf=models.gguf_source(None))
    dora = base.load_adapter(str(tmp_path / "dora"), "dora")
    assert base.engine.startswith("llama.cpp")
    assert dora.engine.startswith("torch float32")
    assert "DoRA" in base._shared.cpp.refused["dora"]
    assert complete(dora, Q, max_tokens=4).engine.startswith("torch float32")


@needs_llama_cpp
def test_fireact_run_decodes_on_llama_cpp_by_default_where_it_is_installed(monkeypatch, capsys):
    """The factory's path (`fireact run`, `eval`, `serve` and the app load models through it): the
    bundled base is known to come from its GGUF, so `auto` picks llama.cpp with no option given."""
    import json

    from fireact_core.cli import main

    monkeypatch.setenv("FIREACT_ENGINE", "auto")
    assert main(["run", WORLD_Q, "--json"]) == 0
    traj = json.loads(capsys.readouterr().out)
    assert traj["meta"]["engine"].startswith("llama.cpp") and traj["answer"] == "1978"


@needs_llama_cpp
def test_contexts_beyond_the_cap_are_dropped_and_one_still_decoding_stays_valid(cpp, monkeypatch):
    engine, plain = cpp._shared.cpp, cpp.with_adapter(None)
    want = {v.adapter: complete(v, Q, max_tokens=10).text for v in (cpp, plain)}
    monkeypatch.setattr(llamacpp, "MAX_CONTEXTS", 1)
    engine.close()  # as a fresh engine: no contexts yet
    stream = cpp.session().stream(Q, max_tokens=10)
    text = next(stream)  # the adapter's context is decoding this reply...
    assert complete(plain, Q, max_tokens=10).text == want[None]  # ...when the plain base's takes the only place
    assert list(engine.contexts) == [None]
    text += "".join(x for x in stream if isinstance(x, str))
    assert text == want["default"]  # the dropped context finished its reply
    assert complete(cpp, Q, max_tokens=10).text == want["default"]  # a new context, the converted LoRA reused
    assert list(engine.contexts) == ["default"] and list(engine.loras) == ["default"]
