"""ZeroGPU: the `spaces.GPU` decorator on ZeroGPU hardware, nothing elsewhere."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable


def gpu_decorator() -> Callable[[Callable], Callable] | None:
    """`spaces.GPU` on ZeroGPU hardware; None elsewhere (`spaces` is imported only if installed)."""
    if not os.environ.get("SPACES_ZERO_GPU") or importlib.util.find_spec("spaces") is None:
        return None
    import spaces

    return functools.partial(spaces.GPU, duration=120)
