"""The arena's two sides as `AgentSpec`s, made from the form's values where they come in."""

from dataclasses import replace

from fireact_core.errors import InputError
from fireact_core.known_adapters import resolved
from fireact_core.methods import METHODS
from fireact_core.spec import CONSTRAINABLE_KINDS, AgentSpec
from space.choices import DEFAULT_PROMPTING, Prompting, parse_finetuned

NO_CONSTRAINT = ("Constrained decoding needs a local model, so the prompted agent (an API model) "
                 "runs this setup without it.")


def side_specs(p_model: str, p_method: str, p_shots: float, f_choice: str,
               prompting: str | None = DEFAULT_PROMPTING) -> tuple[AgentSpec, AgentSpec, str]:
    """Both sides' specs from the arena's form (the prompted model, method, exemplars and prompting setup; the
    fine-tuned choice), and a note for the status ('' when none). Bad values raise `InputError`."""
    if not p_model:
        raise InputError("choose a prompted model")
    if p_method not in METHODS:
        raise InputError(f"choose a method: {', '.join(METHODS)}")
    prompted = AgentSpec(role="prompted", model=p_model, method=p_method, exemplars=int(p_shots or 0),
                         **Prompting.parse(prompting).spec_fields())
    note = ""
    # An API model (openai:...) cannot decode under a grammar. The constraint is dropped, with a note
    # in the status, rather than the battle refused: the default setup is constrained, and an API
    # model still gets the rest of it (the format and the exemplars). The key then says what ran.
    if prompted.constrained and prompted.kind not in CONSTRAINABLE_KINDS:
        prompted, note = replace(prompted, constrained=False, extractive=False), NO_CONSTRAINT
    f_model, adapter = parse_finetuned(f_choice)
    tuned = resolved(AgentSpec(role="finetuned", model=f_model, adapter=adapter, finetuned=True, exemplars=0))
    return prompted, tuned, note
