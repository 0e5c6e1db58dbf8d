"""The one JSONL reader: records with their line numbers, and errors that name the file and line.

Records end at `\\n` only: `str.splitlines()` would also split at U+2028, U+0085, ... which
`json.dumps(ensure_ascii=False)` leaves unescaped inside strings (a model's text can hold them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fireact_core.errors import FormatError


def iter_jsonl(path: str | Path, *, text: str | None = None, torn_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record) for each non-blank line of a JSONL file (or of `text`, read from it).

    Invalid JSON raises `FormatError` naming `path:line`; with `torn_tail`, an invalid last line
    that ends without a newline (a write that was interrupted) is skipped with a note on stderr.
    """
    p = Path(path)
    if text is None:
        text = p.read_text(encoding="utf-8")
    lines = text.split("\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            if torn_tail and n == len(lines):
                print(f"{p}:{n}: ignoring a torn last line", file=sys.stderr)
                return
            raise FormatError(f"invalid JSON: {e.msg} (column {e.colno})", path=str(p), line=n) from None
        yield n, rec
