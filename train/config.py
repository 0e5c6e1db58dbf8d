"""Training configuration: one flat dataclass, YAML recipes in `train/recipes/`, `key=value` overrides.

A recipe is a YAML mapping whose keys are `TrainConfig` fields. `load_config("smollm2-135m-world",
["max_steps=20"])` reads the recipe, applies the overrides (values parsed as YAML, so
`target_modules=[q_proj,v_proj]` and `load_in_4bit=false` work) and validates the result. An
unknown key raises `ConfigError` listing the valid ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fireact_core.errors import ConfigError
from fireact_core.training_rule import TrainingRule

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass
class TrainConfig:
    """Everything one training run needs. Field comments are the documentation of the recipe keys."""

    recipe: str = ""  # the recipe's name (informational; written to the model card)
    base: str = DEFAULT_BASE  # Hub id or local folder of the base model
    # Inputs: paths, or {path, weight} mappings. weight 2 = every example twice, 0.5 = half of them.
    data: list[Any] = field(default_factory=list)
    data_dir: str | None = None  # where relative data paths are also looked for ($FIREACT_DATA, ../shared/data/fireact)
    # Which trajectories and steps are trained on (fireact_core.training_rule, the app's export rule too):
    keep: str = "all"  # all | em | rated | rated_or_em | rated_and_em (ratings and votes from an app export)
    min_rating: float | None = None  # with keep rated*: the mean rating needed (default: above 0; up=1, down=-1)
    include_failed: bool = False  # keep trajectories whose status is failed / step_limit
    bad_steps: str = "cut"  # cut: a trajectory ends before its first step raters labelled wrong | keep
    val_size: float = 0.05  # held-out validation share (< 1) or count (>= 1), split before weighting
    max_length: int = 1024  # tokens per example; longer ones are truncated (keep the start)
    # How the examples are rendered (fireact_core.prompt_formats, the agent's renderer): chat (the base's chat
    # template: ChatML, Gemma's turns) | alpaca (the FireAct paper's Alpaca text, Thought/Action/Observation inline).
    # Written into the adapter's fireact.json and card; the agent reads it back when it loads the adapter.
    prompt_format: str = "chat"
    # Loss on the whole text, the question and observations too (the paper's LoRA script: train_on_inputs=True).
    # Default: the agent's own tokens only.
    train_on_inputs: bool = False
    append_eos: bool = False  # alpaca: end each example with EOS (the paper's script did)

    # Model and adapter
    # Continue training this adapter (folder, Hub id or `default`) instead of a new one: its LoRA rank, alpha and
    # target modules replace the recipe's, and it must have been trained on `base`.
    init_adapter: str | None = None
    load_in_4bit: Any = "auto"  # true | false | auto (4-bit on CUDA, full precision elsewhere)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: Any = field(default_factory=lambda: ["q_proj", "v_proj"])  # list, or "all-linear"
    activation_checkpointing: bool = True  # TRL/transformers `gradient_checkpointing`
    cpu_threads: int = 0  # torch threads on CPU (0: every core); 1 is much faster on a CPU shared with other jobs
    dtype: str = "auto"  # auto (bf16 on CUDA, 4-bit and CPUs with native bf16; else fp32) | float32 | bfloat16 | float16

    # Optimisation
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    warmup_steps: float = 0.03  # < 1: a share of the training steps
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    group_by_length: bool = False  # batch examples of similar length (less padding; good on CPU)
    optim: str = "auto"  # auto: paged_adamw_8bit for 4-bit on CUDA, adamw_torch otherwise
    seed: int = 42

    # Bookkeeping
    output_dir: str = "runs/adapter"
    logging_steps: int = 10
    eval_steps: int | None = None  # None: evaluate at the end of each epoch
    save_steps: int = 200
    save_total_limit: int = 2
    keep_checkpoints: bool = False  # keep <output_dir>/checkpoints after a successful run
    report_to: Any = "none"  # none | trackio | wandb | tensorboard (or a list)
    resume_from_checkpoint: Any = None  # true (latest in output_dir) or a checkpoint folder
    # CPU: give the heap's freed pages back to the OS after every step. Peak memory 0.84x, time 1.45x on the
    # default recipe (bench/train_memory.py); for machines where the peak is close to the memory there is.
    trim_memory: bool = False
    check_lora_changed: bool = True  # fail when some LoRA tensor did not move (the avx512 trap)

    # After training
    merge: bool = False  # also write a merged full model to <output_dir>/merged
    eval_questions: int = 0  # agent EM on this many questions via `fireact eval` (0: skip)
    eval_task: str = ""  # task for the agent evaluation (default: the most common task in the data)
    eval_split: str = "dev"
    eval_args: str = ""  # extra `fireact eval` agent options, e.g. "--tools corpus --max-steps 8"
    push_to_hub: str | None = None  # user/name
    private: bool = False

    # Model card metadata
    license: str = "apache-2.0"
    datasets: list[str] = field(default_factory=list)  # Hub dataset ids for the card
    description: str = ""  # one paragraph for the card

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rule(self) -> TrainingRule:
        """The training-data rule these keys describe."""
        return TrainingRule(keep=self.keep, min_rating=self.min_rating, include_failed=self.include_failed,
                            bad_steps=self.bad_steps)


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """A recipe name (`smollm2-135m-world`) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    cand = RECIPES_DIR / f"{name}.yaml"
    if cand.exists():
        return cand
    raise ConfigError(f"unknown recipe {name!r}; available: {', '.join(list_recipes())} (or a path to a .yaml file)")


def _check_keys(keys: Any, where: str) -> None:
    known = set(valid_keys())
    bad = [k for k in keys if k not in known]
    if bad:
        raise ConfigError(f"{where}: unknown key{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
                          f"valid keys: {', '.join(valid_keys())}")


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`["lora_r=16", "data=[a.json, b.jsonl]"]` → {"lora_r": 16, "data": ["a.json", "b.jsonl"]}."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected key=value; valid keys: {', '.join(valid_keys())}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key] = raw
    _check_keys(out, "--set")
    return out


def load_config(recipe: str | None = None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Read a recipe (or start from the defaults), apply overrides, validate."""
    values: dict[str, Any] = {}
    if recipe:
        path = recipe_path(recipe)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of keys to values")
        _check_keys(data, str(path))
        values.update(data)
        values.setdefault("recipe", path.stem)
    if isinstance(overrides, dict):
        _check_keys(overrides, "overrides")
        values.update(overrides)
    else:
        values.update(parse_overrides(overrides))
    cfg = TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    validate(cfg)
    return cfg


_TYPES = {f.name: str(f.type) for f in fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """YAML reads `3e-4` as a string; numeric keys take numbers written any way."""
    kind = _TYPES[key].split(" |")[0]
    if isinstance(value, str) and kind in ("float", "int"):
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, not {value!r}") from None
        return int(number) if kind == "int" and number.is_integer() else number
    return value


def validate(cfg: TrainConfig) -> None:
    """Raise `ConfigError` for values that cannot work."""
    cfg.rule()  # an unknown keep mode or bad_steps value raises here
    if cfg.prompt_format not in ("chat", "alpaca"):
        raise ConfigError(f"prompt_format must be chat or alpaca (scratchpad and text are prompting formats), "
                          f"not {cfg.prompt_format!r}")
    if cfg.load_in_4bit not in (True, False, "auto"):
        raise ConfigError(f"load_in_4bit must be true, false or auto, not {cfg.load_in_4bit!r}")
    if cfg.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ConfigError(f"dtype must be auto, float32, bfloat16 or float16, not {cfg.dtype!r}")
    for name in ("lora_r", "lora_alpha", "max_length", "per_device_train_batch_size", "gradient_accumulation_steps"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, not {v!r}")
    if not (isinstance(cfg.val_size, (int, float)) and cfg.val_size >= 0):
        raise ConfigError(f"val_size must be a share below 1 or a count, not {cfg.val_size!r}")
    if not isinstance(cfg.data, list):
        cfg.data = [cfg.data]
    if isinstance(cfg.target_modules, str) and cfg.target_modules != "all-linear":
        cfg.target_modules = [m.strip() for m in cfg.target_modules.split(",") if m.strip()]
    if cfg.push_to_hub is not None and cfg.push_to_hub.count("/") != 1:
        raise ConfigError(f"push_to_hub must be user/name, not {cfg.push_to_hub!r}")
