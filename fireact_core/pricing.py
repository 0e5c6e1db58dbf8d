"""API prices in US dollars per million tokens, and the cost of one call.

Prices are OpenAI's published list prices (standard tier, no batch or cache discounts) as
of mid-2025; they change, so callers may pass their own table (`prices=` on the openai
backend, or `FIREACT_PRICES`, a JSON file `{"model": [input, output], ...}`). A model is
matched by the longest table key that its name starts with, so dated snapshots
(`gpt-4o-mini-2024-07-18`) take their family's price. Fine-tuned models (`ft:<base>:…`)
are billed at the fine-tuned rates of their base. A model not in the table (a local or
self-hosted one) costs nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from fireact_core.errors import ConfigError

Price = tuple[float, float]  # (input, output) dollars per 1M tokens

PRICES: dict[str, Price] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4-1106": (10.00, 30.00),
    "gpt-4-0125": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),  # the paper's teacher (gpt-4-0613)
    "gpt-4-32k": (60.00, 120.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-0613": (1.50, 2.00),
    "gpt-3.5-turbo-16k": (3.00, 4.00),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}

# Inference on a fine-tuned model, by base model.
FINETUNED_PRICES: dict[str, Price] = {
    "gpt-4.1": (3.00, 12.00),
    "gpt-4.1-mini": (0.80, 3.20),
    "gpt-4.1-nano": (0.20, 0.80),
    "gpt-4o": (3.75, 15.00),
    "gpt-4o-mini": (0.30, 1.20),
    "gpt-3.5-turbo": (3.00, 6.00),  # the paper's fine-tuned GPT-3.5
    "davinci-002": (12.00, 12.00),
    "babbage-002": (1.60, 1.60),
}


def _longest_prefix(table: Mapping[str, Price], model: str) -> Price | None:
    best = max((k for k in table if model == k or model.startswith(k + "-")), key=len, default=None)
    return table[best] if best is not None else None


def price_of(model: str, table: Mapping[str, Price] | None = None) -> Price | None:
    """(input, output) dollars per 1M tokens for `model`, or None when unknown.

    A caller's `table` is looked up first (exact name, then prefix), then the built-in tables.
    """
    if table:
        if model in table:
            return tuple(table[model])  # type: ignore[return-value]
        hit = _longest_prefix(table, model)
        if hit is not None:
            return tuple(hit)  # type: ignore[return-value]
    if model.startswith("ft:"):
        base = model.split(":")[1] if model.count(":") >= 1 else ""
        return _longest_prefix(FINETUNED_PRICES, base)
    return _longest_prefix(PRICES, model)


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int, table: Mapping[str, Price] | None = None) -> float:
    """Dollar cost of one call; 0.0 for a model with no known price."""
    price = price_of(model, table)
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def load_price_file(path: str | Path | None = None) -> dict[str, Price]:
    """Read a `{"model": [input, output]}` JSON file (default: `$FIREACT_PRICES`, if set)."""
    path = path or os.environ.get("FIREACT_PRICES")
    if not path:
        return {}
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"price file not found: {p}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected an object mapping model names to [input, output] prices")
    out: dict[str, Price] = {}
    for k, v in data.items():
        if not (isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v)):
            raise ConfigError(f"{p}: price of {k!r} must be [input, output] dollars per 1M tokens")
        out[str(k)] = (float(v[0]), float(v[1]))
    return out
