"""Training data: read any mix of trajectory files, filter, split, weight, and summarise.

Inputs are whatever `fireact_core.formats.read_trajectories` reads (the paper's Alpaca JSON,
chat JSONL, our trajectory JSONL, and the app's DuckDB export, which is trajectory JSONL with
its ratings, votes and step labels beside each trajectory, `evidence`). Which trajectories and which of their steps are
trained on, and the one training view of a Reflexion episode, is `fireact_core.training_rule`'s
`TrainingRule`, the rule the app's export applies too. Each kept trajectory becomes what the
fine-tuned agent sees at inference, rendered by `fireact_core.prompt_formats` (the agent's renderer):
in `chat`, the question alone as the user turn, then assistant `Thought/Action` turns and user
`Observation` turns; in `alpaca`, the paper's Alpaca text with the steps inline, tokenised as the
agent's prompt is (the whole text at once, with BOS), the loss on the agent's own pieces.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError, FormatError
from fireact_core.formats import read_trajectories
from fireact_core.metrics import normalize_answer
from fireact_core.paths import HOME as ROOT  # the folder holding data/
from fireact_core.tasks import data_dirs
from fireact_core.training_rule import TrainingRule

Messages = list[dict[str, str]]


@dataclass
class Source:
    """One input file and its sampling weight (2 = every example twice, 0.5 = half of them)."""

    path: str
    weight: float = 1.0
    task: str | None = None  # overrides the inferred task in the summary
    method: str | None = None
    # Keeps only trajectories whose `meta` has these values (a list: any of them), e.g. {hops: 3}:
    # one file can then be weighted by kind of question without writing a filtered copy of it.
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, item: Any) -> Source:
        """A path, `path:weight`, or a mapping `{path, weight, task, method, meta}`."""
        if isinstance(item, dict):
            unknown = set(item) - {"path", "weight", "task", "method", "meta"}
            if "path" not in item or unknown:
                raise ConfigError("a data entry is a path or a mapping with keys path, weight, task, method, meta; "
                                  f"got {item!r}")
            meta = item.get("meta") or {}
            if not isinstance(meta, dict):
                raise ConfigError(f"{item['path']}: meta is a mapping of trajectory meta keys to values, not {meta!r}")
            src = cls(str(item["path"]), float(item.get("weight", 1.0)), item.get("task"), item.get("method"),
                      dict(meta))
        elif isinstance(item, (str, Path)):
            path, sep, w = str(item).rpartition(":")
            try:
                src = cls(path, float(w)) if sep and path else cls(str(item))
            except ValueError:
                src = cls(str(item))
        else:
            raise ConfigError(f"a data entry is a path or a mapping, not {item!r}")
        if src.weight < 0:
            raise ConfigError(f"{src.path}: the weight must be >= 0, not {src.weight}")
        return src

    def selects(self, meta: dict[str, Any]) -> bool:
        """Whether a trajectory with this `meta` passes the source's `meta` filter."""
        for key, want in self.meta.items():
            allowed = want if isinstance(want, list) else [want]
            if key not in meta or meta[key] not in allowed:
                return False
        return True

    @property
    def name(self) -> str:
        """The source as the summary names it: its path, and its filter when it has one."""
        if not self.meta:
            return self.path
        return f"{self.path} [" + ", ".join(f"{k}={v}" for k, v in self.meta.items()) + "]"


@dataclass
class TrainingExample:
    messages: Messages  # the chat (`chat` format); empty in a raw-text format
    task: str
    method: str
    source: str
    question: str
    actions: list[str] = field(default_factory=list)  # tool names the agent used
    segments: list[Any] = field(default_factory=list)  # raw-text formats: `prompt_formats.Segment`s


def encode_segments(tokenizer: Any, segments: list[Any], *, train_on_inputs: bool = False,
                    append_eos: bool = False) -> tuple[list[int], list[int]]:
    """(input ids, loss mask) of a raw-text example: the whole text tokenised at once with the tokenizer's BOS, as
    the local backend encodes the agent's prompt; a token carries loss when it starts inside an agent piece (every
    token but BOS with `train_on_inputs`, the paper's choice). `append_eos` ends it with EOS, which carries loss."""
    text = "".join(s.text for s in segments)
    owner, pos = [False] * len(text), 0
    for s in segments:
        owner[pos:pos + len(s.text)] = [s.agent] * len(s.text)
        pos += len(s.text)
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    ids, mask = list(enc["input_ids"]), []
    for (start, end), special in zip(enc["offset_mapping"], enc["special_tokens_mask"], strict=True):
        mask.append(int(not special and end > start and (train_on_inputs or owner[start])))
    if append_eos and tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
        mask.append(1)
    return ids, mask


def resolve_path(path: str, data_dir: str | None = None) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute():
        if p.exists():
            return p
        raise FormatError("file not found", path=str(p))
    tried = []
    # the working folder and the repository (recipes name `data/world/...`), then the data folders
    for d in dict.fromkeys([Path.cwd(), ROOT, *data_dirs(data_dir), *data_dirs()]):
        cand = d / p
        if cand.exists():
            return cand
        tried.append(str(d))
    raise FormatError(f"file not found (looked in {', '.join(dict.fromkeys(tried))}; set data_dir or FIREACT_DATA)",
                      path=str(path))


def load_source(src: Source, *, data_dir: str | None = None, rule: TrainingRule | None = None,
                prompt_format: str = "chat") -> tuple[list[TrainingExample], Counter]:
    """Read one file into examples under `rule` (default: every finished trajectory), rendered in `prompt_format`;
    also return why others were dropped."""
    rule = rule or TrainingRule()
    path = resolve_path(src.path, data_dir)
    examples, dropped = [], Counter()
    for traj in read_trajectories(path):
        if src.meta and not src.selects(traj.meta or {}):
            continue
        why = rule.why_dropped(traj)
        if why:
            dropped[why] += 1
            continue
        steps = rule.steps(traj)
        rendered = rule.example(traj, prompt_format)
        chat = prompt_format == "chat"
        examples.append(TrainingExample(rendered if chat else [], src.task or traj.task or "unknown",
                                        src.method or traj.method or "unknown", str(src.path), traj.question,
                                        [s.action for s in steps if s.action], [] if chat else rendered))
    if not examples and not dropped:
        if src.meta:
            raise ConfigError(f"{path}: no trajectory matches meta {src.meta}")
        raise FormatError("no trajectories in the file", path=str(path))
    if not examples:
        reasons = ", ".join(f"{n} {why}" for why, n in dropped.items())
        raise ConfigError(f"{path}: no trajectory left after filtering ({reasons})")
    return examples, dropped


def _qkey(q: str) -> str:
    return normalize_answer(q)


def split_and_mix(groups: list[tuple[Source, list[TrainingExample]]], val_size: float, seed: int
                  ) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """Hold out `val_size` of each source, then weight the rest; no validation question is trained on."""
    rng = random.Random(seed)
    total = sum(len(ex) for _, ex in groups)
    train_parts, val = [], []
    for src, items in groups:
        items = items[:]
        rng.shuffle(items)
        n = len(items)
        n_val = round(val_size * n) if val_size < 1 else round(val_size * n / max(total, 1))
        if val_size > 0 and n_val == 0 and n >= 2:
            n_val = 1
        n_val = min(n_val, n - 1)
        val += items[:n_val]
        train_parts.append((src, items[n_val:]))
    held = {_qkey(e.question) for e in val}
    train: list[TrainingExample] = []
    for src, items in train_parts:
        items = [e for e in items if _qkey(e.question) not in held]
        whole, frac = divmod(src.weight, 1.0)
        for _ in range(int(whole)):
            train += items
        train += rng.sample(items, round(frac * len(items)))
    rng.shuffle(train)
    return train, val


@dataclass
class DataSummary:
    """What goes into training: counts, token lengths, truncation. Printed before training, kept in the card."""

    train: int = 0
    val: int = 0
    by_task: dict[str, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)  # action name -> uses in the training set
    lengths: list[int] = field(default_factory=list)  # tokens per training example
    max_length: int = 0
    truncated: int = 0
    agent_tokens: int = 0  # tokens that carry loss, before truncation

    def histogram(self, bins: int = 8) -> list[tuple[int, int, int]]:
        if not self.lengths:
            return []
        lo, hi = min(self.lengths), max(self.lengths)
        width = max(1, -(-(hi - lo + 1) // bins))
        counts = Counter((n - lo) // width for n in self.lengths)
        return [(lo + i * width, lo + (i + 1) * width - 1, counts.get(i, 0)) for i in range(bins) if lo + i * width <= hi]

    def format(self) -> str:
        lines = [f"training examples: {self.train:,}   validation: {self.val:,}"]
        for name, path in self.by_source.items():
            lines.append(f"  {name}: {path['examples']:,} read, weight {path['weight']:g}")
        if self.dropped:
            lines.append("  dropped: " + ", ".join(f"{n} ({why})" for why, n in self.dropped.items()))
        lines.append("by task:   " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_task.items())))
        lines.append("by method: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_method.items())))
        if self.lengths:
            s = sorted(self.lengths)
            lines.append(f"tokens per example: min {s[0]}, median {s[len(s) // 2]}, max {s[-1]}, "
                         f"total {sum(s):,} ({self.agent_tokens:,} on the agent's turns)")
            top = max(c for _, _, c in self.histogram())
            for lo, hi, c in self.histogram():
                lines.append(f"  {lo:>6}-{hi:<6} {'#' * max(1 if c else 0, round(30 * c / top)):<30} {c}")
        lines.append(f"truncated at max_length={self.max_length}: {self.truncated:,} of {self.train:,}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "lengths"}
        d["histogram"] = self.histogram()
        if self.lengths:
            d["mean_tokens"] = round(sum(self.lengths) / len(self.lengths), 1)
        return d


def token_lengths(tokenizer: Any, examples: list[TrainingExample], template: str, *, train_on_inputs: bool = False,
                  append_eos: bool = False) -> tuple[list[int], int]:
    """Tokens per example under the training template (or as raw text), and the number of loss-carrying tokens."""
    lengths, agent = [], 0
    for e in examples:
        if e.segments:
            ids, mask = encode_segments(tokenizer, e.segments, train_on_inputs=train_on_inputs, append_eos=append_eos)
            lengths.append(len(ids))
            agent += sum(mask)
            continue
        out = tokenizer.apply_chat_template(e.messages, chat_template=template, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        lengths.append(len(out["input_ids"]))
        agent += sum(out["assistant_masks"])
    return lengths, agent


def prepare(sources: list[Any], *, tokenizer: Any, template: str, max_length: int, val_size: float = 0.05,
            seed: int = 42, data_dir: str | None = None, rule: TrainingRule | None = None, prompt_format: str = "chat",
            train_on_inputs: bool = False, append_eos: bool = False
            ) -> tuple[list[TrainingExample], list[TrainingExample], DataSummary]:
    """Read, filter (`rule`), render (`prompt_format`), split and weight every source; summarise the training set."""
    if not sources:
        raise ConfigError("no training data: pass --data FILE (repeatable) or set `data` in the recipe")
    groups, dropped, by_source = [], Counter(), {}
    for item in sources:
        src = Source.parse(item)
        ex, why = load_source(src, data_dir=data_dir, rule=rule, prompt_format=prompt_format)
        groups.append((src, ex))
        dropped.update(why)
        by_source[src.name] = {"examples": len(ex), "weight": src.weight}
    train, val = split_and_mix(groups, val_size, seed)
    if not train:
        raise ConfigError("no training examples left after the validation split and the weights")
    lengths, agent = token_lengths(tokenizer, train, template, train_on_inputs=train_on_inputs, append_eos=append_eos)
    summary = DataSummary(
        train=len(train), val=len(val), by_task=dict(Counter(e.task for e in train)),
        by_method=dict(Counter(e.method for e in train)), by_source=by_source, dropped=dict(dropped),
        actions=dict(Counter(a for e in train for a in e.actions)),
        lengths=lengths, max_length=max_length, truncated=sum(n > max_length for n in lengths), agent_tokens=agent)
    return train, val, summary


def to_dataset(examples: list[TrainingExample], tokenizer: Any = None, *, train_on_inputs: bool = False,
               append_eos: bool = False) -> Any:
    """A `datasets.Dataset` for `SFTTrainer`: one `messages` column (chat), or pre-tokenised `input_ids` with
    `assistant_masks` (raw text: TRL folds the mask into the labels, -100 where it is 0)."""
    from datasets import Dataset

    if examples and examples[0].segments:
        rows = []
        for e in examples:
            ids, mask = encode_segments(tokenizer, e.segments, train_on_inputs=train_on_inputs, append_eos=append_eos)
            rows.append({"input_ids": ids, "assistant_masks": mask})
        return Dataset.from_list(rows)
    return Dataset.from_list([{"messages": e.messages} for e in examples])
