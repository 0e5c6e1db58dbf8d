"""Secrets out of text: the value of every secret-looking environment variable becomes `[redacted]`.

A variable is secret-looking when its name ends in KEY, TOKEN, SECRET or PASSWORD and its value
has at least 8 characters. The agent applies this to what leaves it (failure reasons, tool
errors and observations), the store to everything it writes, and the app to what it shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace the value of every secret-looking environment variable (…KEY/…TOKEN/…SECRET) in `text`."""
    env = os.environ if env is None else env
    for name, value in env.items():
        if value and len(value) >= 8 and _SECRET_NAME.search(name.upper()) and value in text:
            text = text.replace(value, "[redacted]")
    return text
