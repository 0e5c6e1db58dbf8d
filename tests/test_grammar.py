"""Format-constrained decoding: the ReAct turn grammar, and the scratchpad prompt format."""

from __future__ import annotations

import pytest

from fireact_core.agent import Agent
from fireact_core.backends.fake import FakeModel
from fireact_core.backends.grammar import BAD, DONE, OK, ActionGrammar, polar
from fireact_core.errors import ConfigError
from fireact_core.spec import AgentConfig, AgentSpec
from fireact_core.tools.base import Toolbox
from space.fakes import AppFakeModel

G = ActionGrammar.for_tools(["search", "lookup"])


@pytest.mark.parametrize("text, want", [
    ("", OK), ("Tho", OK), ("Thought:", OK), ("Thought: I need the architect", OK),
    ("Thought: x\n", OK), ("Thought: x\nAct", OK), ("Thought: x\nAction: se", OK), ("Thought: x\nAction: finish[", OK),
    ("Thought: x\nAction: search[Velmora Li", OK), ("Thought: x\nAction: search[Velmora Library]", DONE),
    ("Thought: x\nAction: finish[1978] and more", DONE),
    ("Answer: 12", BAD), ("Thought: x\nObservation:", BAD), ("Thought: x\nAction: google[", BAD),
    ("Thought: x\nAction: search[a\nb]", BAD), ("Thought: x\n\nAction:", BAD), (" Thought:", BAD),
])
def test_the_grammar_accepts_exactly_one_thought_line_and_one_action(text, want):
    assert G.check(text) == want


def test_prefix_cut_and_forced_continuations():
    g = ActionGrammar.for_tools(["search"], prefix="Thought: I know it\nAction:")
    assert g.check(" finish[Tessary]") == DONE and g.check(" lookup[") == BAD  # lookup is not a tool here
    assert g.cut(" finish[Tessary] trailing") == " finish[Tessary]"
    assert G.cut("Thought: a]b\nAction: search[q] x") == "Thought: a]b\nAction: search[q]"
    assert G.forced("") == "Thought:" and G.forced("Thought: x") == "\nAction: "
    assert G.forced("Thought: x\nAction: f") == "inish[" and G.forced("Thought: x\nAction: search[q") == "]"
    for generated in ("", "Thought: x", "Thought: x\nAction: f", "Thought: x\nAction: search[q"):
        assert G.check(generated + G.forced(generated)) in (OK, DONE)


def encyclopedia(query: str) -> str:
    """Look something up."""
    return f"Article about {query}."


def test_scratchpad_keeps_the_trial_in_one_growing_assistant_turn():
    model = FakeModel([" I should search.\nAction: search[Velmora Library]", " Found it.\nAction: finish[Idris Kallum]"])
    spec = AgentSpec(model="fake", method="react", prompt_format="scratchpad")
    t = Agent(model, Toolbox({"search": encyclopedia}), spec).solve("Who designed the Velmora Library?", gold="Idris Kallum")
    assert t.em == 1.0 and [s.action for s in t.steps] == ["search", "finish"]
    assert t.steps[0].thought == "I should search." and t.steps[1].thought == "Found it."
    first, second = model.calls
    assert first[-1] == {"role": "assistant", "content": "Thought:"}
    assert [m["role"] for m in second] == ["user", "assistant"]  # no Observation user turn
    assert second[-1]["content"] == ("Thought: I should search.\nAction: search[Velmora Library]\n"
                                     "Observation: Article about Velmora Library.\nThought:")
    assert t.agent.prompt_format == "scratchpad" and "scratchpad" in t.agent.key
    assert AgentSpec.from_dict(t.agent.to_dict()).prompt_format == "scratchpad"


def test_fine_tuned_agents_ignore_the_scratchpad_and_bad_formats_are_refused():
    model = FakeModel(["Thought: x\nAction: finish[y]"])
    Agent(model, None, AgentConfig(finetuned=True, prompt_format="scratchpad")).solve("q?")
    assert model.calls[0] == [{"role": "user", "content": "q?"}]
    with pytest.raises(ConfigError, match="prompt format"):
        AgentConfig(prompt_format="xml")


def test_constrained_decoding_is_refused_for_a_model_that_cannot_do_it():
    with pytest.raises(ConfigError, match="constrained decoding needs a local model"):
        Agent(FakeModel([]), None, AgentConfig(constrained=True)).solve("q?")
    assert "constrained" in AgentSpec(model="smollm2", constrained=True).key
    assert "constrained" not in AgentSpec(model="smollm2").key


def test_a_reply_that_repeats_the_scratchpads_thought_key_is_read_once():
    """Chat APIs answer a final assistant turn with a fresh reply, often opening with its own `Thought:`."""
    model = FakeModel(["Thought: I know it.\nAction: finish[Idris Kallum]"])
    t = Agent(model, None, AgentConfig(method="react", prompt_format="scratchpad")).solve("Who?", gold="Idris Kallum")
    assert t.steps[0].thought == "I know it." and t.em == 1.0


def test_the_record_counts_the_exemplars_the_prompt_really_holds():
    asked = AgentSpec(model="fake", method="react", exemplars=6)  # the default set has 2 ReAct exemplars
    t = Agent(FakeModel([]), None, asked).solve("q?")
    assert t.agent.exemplars == 2 and "react 2-shot" in t.agent.key
    world = Agent(FakeModel([]), None, AgentSpec(model="fake", method="react", exemplars=6, prompts="world")).solve("q?")
    assert world.agent.exemplars == 6


SOURCE = "Who designed the Velmora Library?\nVelmora Library is a library in Tessary, designed by Idris Kallum in 1978."
X = ActionGrammar.for_tools(["search"], source=SOURCE, question="Was the Velmora Library designed by Idris Kallum?")


@pytest.mark.parametrize("text, want", [
    ("Thought: x\nAction: search[Velmora Li", OK), ("Thought: x\nAction: search[velmora library]", DONE),
    ("Thought: x\nAction: search[Idris Kallum]", DONE), ("Thought: x\nAction: finish[Tessary]", DONE),
    ("Thought: x\nAction: finish[no]", DONE), ("Thought: x\nAction: finish[ye", OK), ("Thought: x\nAction: finish[1978]", DONE),
    ("Thought: x\nAction: finish[42]", DONE),  # a number (an arithmetic answer) is never in the text
    ("Thought: x\nAction: search[Velmora Li]", BAD),  # a copy ends at a word's end
    ("Thought: x\nAction: search[elmora", BAD),  # and starts at a word's start
    ("Thought: x\nAction: finish[Paris", BAD), ("Thought: x\nAction: search[no]", BAD),  # yes/no only answer
    ("Thought: x\nAction: search[]", BAD), ("Thought: x\nAction: search[ Tessary", BAD),
    ("Thought: x\nAction: search[Tessary, designed", OK),  # a span may cross punctuation, as the text does
])
def test_extractive_decoding_copies_each_argument_from_the_question_and_observations(text, want):
    assert X.check(text) == want
    assert G.check(text) in (OK, DONE)  # the plain grammar takes every one of them


def test_extractive_forced_continuations_stay_inside_the_source():
    for generated in ("Thought: x\nAction: search[", "Thought: x\nAction: search[Velm", "Thought: x\nAction: finish[",
                      "Thought: x\nAction: search[Idris Kallum"):
        text = generated
        for _ in range(10):  # forcing alone completes the argument and closes it
            if X.check(text) == DONE:
                break
            assert X.check(text) == OK, text
            text += X.forced(text)
        assert X.check(text) == DONE, text
    assert X.forced("Thought: x\nAction: search[Velm") == "ora"


def test_yes_and_no_answer_only_a_yes_or_no_question():
    wh = ActionGrammar.for_tools(["search"], source=SOURCE, question=SOURCE.split("\n")[0])
    assert wh.check("Thought: x\nAction: finish[no]") == BAD and wh.check("Thought: x\nAction: finish[Tessary]") == DONE
    assert wh.check("Thought: x\nAction: finish[") == OK and wh.forced("Thought: x\nAction: finish[") == "who"
    assert polar("Were Gogal Pictures and Daralt House founded in the same year?") and polar("  is it?")
    assert not polar("Who is the founder?") and not polar("Island in Brothufo: is it a novel?")


def test_the_extractive_agent_copies_from_its_own_trial_only():
    model = AppFakeModel([" Search it.\nAction: search[Velmora Library]", " Done.\nAction: finish[Idris Kallum]"])
    spec = AgentSpec(model="fake", prompt_format="scratchpad", constrained=True, extractive=True)
    t = Agent(model, Toolbox({"search": encyclopedia}), spec).solve("Who designed the Velmora Library?")
    first, second = (c for c in model.constraints if c is not None)
    assert first.source == "who designed the velmora library?"
    assert second.source == "who designed the velmora library? article about velmora library."
    assert t.agent.extractive and t.agent.key.endswith("· scratchpad · constrained · extractive")
    assert AgentSpec.from_dict(t.agent.to_dict()).extractive
    with pytest.raises(ConfigError, match="extractive"):
        AgentSpec(model="smollm2", extractive=True)  # it is constrained decoding, or nothing


def test_a_character_split_over_tokens_is_allowed_only_where_any_character_is():
    assert G.admits_partial("Thought: caf") and G.admits_partial("Thought: x\nAction: search[caf")
    assert not G.admits_partial("Thought: x\nAction: ") and not G.admits_partial("Thought: x\nAction: se")
    assert not G.admits_partial("Tho") and not G.admits_partial("Thought: x\nAction: search[q]")
    ascii_only = ActionGrammar.for_tools(["search"], source="Velmora Library")
    assert not ascii_only.admits_partial("Thought: x\nAction: search[Vel")
    assert ActionGrammar.for_tools(["search"], source="Café Velmora").admits_partial("Thought: x\nAction: search[Caf")


class _ByteTokens:
    """A byte-level vocabulary in the shape `pick_valid` uses (decode, tokenizer, end ids, lock)."""

    VOCAB = (b"Thought:", b" x", b"\n", b"Action: ", b"\xc3", b"\xa9", b"search", b"[", b"]", b"q")
    EOS = len(VOCAB)

    def __init__(self) -> None:
        import threading

        self.end_ids, self.lock = {self.EOS}, threading.Lock()

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.VOCAB[i] for i in ids if i != self.EOS).decode("utf-8", errors="replace")

    def tokenizer(self, text: str, add_special_tokens: bool = False) -> dict:
        data, ids = text.encode(), []
        while data:
            i = max((i for i, t in enumerate(self.VOCAB) if data.startswith(t)), key=lambda i: len(self.VOCAB[i]))
            ids.append(i)
            data = data[len(self.VOCAB[i]):]
        return {"input_ids": ids}


def _logits(*order: int):
    import torch

    x = torch.zeros(_ByteTokens.EOS + 1)
    for rank, token in enumerate(order):
        x[token] = 10.0 - rank
    return x


def test_constrained_decoding_never_starts_a_character_inside_the_actions_name():
    # Found in a reproduction run: after "Action: " SmolLM2's likeliest token was the first byte of
    # a two-byte character; taking it left no valid continuation, and decoding crashed.
    from fireact_core.backends.grammar import pick_valid

    sh, head = _ByteTokens(), [0, 1, 2, 3]  # "Thought: x\nAction: "
    token, text = pick_valid(_logits(4, 5, 8), head, sh, G, top_k=3)
    assert token == 6 and text == "Thought: x\nAction: search"  # none fits: the grammar's own "search" is forced
    token, text = pick_valid(_logits(4, 9), [0, 1, 4], sh, G, top_k=2)
    assert token == 4  # inside the Thought a split character waits for its next byte
    token, text = pick_valid(_logits(8, 9), [*head, 4, 5], sh, G, top_k=2)  # broken already: "Action: é"
    assert token == sh.EOS and text == "Thought: x\nAction: é"  # the turn ends; the agent reads a malformed action
