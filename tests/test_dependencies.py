"""The three installable parts declare what they import (pyproject.toml), and requirements.txt is their union.

- `dependencies`: the agent library alone. Every third-party import at the top of a `fireact_core` module
  is one of them, except the local backend's modules (loaded only through the local model kinds' loader
  strings), whose top-level imports are the `local` extra's, and the store's (the app's, `app` extra).
  An import inside a function reaches an extra and must be declared in one of them.
- `train`: everything `train/` imports; `app`: everything `space/` and `app.py` import; the world generator
  (`worldgen/`, a development package) needs nothing beyond the library's own.
- requirements.txt (what a Space installs) names the same distributions with the same versions.
Import names map to distributions through `importlib.metadata.packages_distributions()` (the installed
environment's own record), so `yaml` is PyYAML and `Stemmer` is PyStemmer.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
OURS = {"fireact_core", "space", "train", "worldgen", "app"}
# Imported inside `try: ... except ImportError` with a fallback: used when present, never required.
# psutil: fireact_core/base_fit.py, available RAM (else /proc/meminfo). llama_cpp: backends/llamacpp.py decodes with
# it where it is installed (`make llama-cpp` compiles it: PyPI has it as source only, so no extra or
# requirements.txt asks for it), else torch does.
OPTIONAL = {"psutil", "llama_cpp"}
# fireact_core modules that belong to an extra's layer (their top-level imports are that extra's).
PART_OF = {"fireact_core/backends/local.py": "local", "fireact_core/backends/quant.py": "local",
           "fireact_core/backends/feeds.py": "local", "fireact_core/backends/llamacpp.py": "local",
           "fireact_core/backends/shared.py": "local",
           "fireact_core/store": "app"}
# Where pyproject.toml and requirements.txt may differ, and why.
PIN_ONLY_IN_REQUIREMENTS = {"torch": "torch==2.13.0"}  # a Space pins one ZeroGPU supports; the extra gives the minimum
ONLY_IN_REQUIREMENTS = {"httpx"}  # the tests' and benchmarks' HTTP client (also gradio's); no part imports it


def _requirements(specs: list[str]) -> list[Requirement]:
    return [Requirement(s) for s in specs]


def _closure(extra: str | None) -> set[str]:
    """Distribution names (canonical) that `fireact[extra]` installs (`None`: the library alone)."""
    todo, seen, names = [extra] if extra else [], set(), {canonicalize_name(r.name) for r in
                                                          _requirements(PROJECT["dependencies"])}
    while todo:
        part = todo.pop()
        if part in seen:
            continue
        seen.add(part)
        for req in _requirements(PROJECT["optional-dependencies"][part]):
            if canonicalize_name(req.name) == "fireact":
                todo += sorted(req.extras)
            else:
                names.add(canonicalize_name(req.name))
    return names


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Third-party top-level names imported at module level, and inside functions or classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    for node in tree.body:  # module level, including the bodies of `if`/`try` there
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            top |= _names(sub)
    every = set().union(*(_names(n) for n in ast.walk(tree)))
    keep = lambda names: {n for n in names if n not in sys.stdlib_module_names and n not in OURS}  # noqa: E731
    return keep(top), keep(every - top)


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        return {node.module.split(".")[0]}
    return set()


def _distributions(name: str) -> set[str]:
    found = importlib.metadata.packages_distributions().get(name)
    assert found, f"no installed distribution provides the import {name!r}"
    return {canonicalize_name(d) for d in found}


def _undeclared(files: list[Path], top_allowed: dict[Path, set[str]], lazy_allowed: set[str]) -> list[str]:
    missing = []
    for path in files:
        top, lazy = _imports(path)
        for names, allowed, where in ((top, top_allowed[path], "at module level"), (lazy, lazy_allowed, "in a function")):
            for name in sorted(names - OPTIONAL):
                if not _distributions(name) & allowed:
                    missing.append(f"{path.relative_to(ROOT)} imports {name} {where}")
    return missing


def _part(path: Path) -> str | None:
    rel = path.relative_to(ROOT).as_posix()
    return next((extra for prefix, extra in PART_OF.items() if rel == prefix or rel.startswith(prefix + "/")), None)


def test_the_library_declares_what_its_modules_import():
    files = sorted((ROOT / "fireact_core").rglob("*.py"))
    every_extra = set().union(*(_closure(e) for e in PROJECT["optional-dependencies"]))
    top_allowed = {f: _closure(_part(f)) for f in files}
    missing = _undeclared(files, top_allowed, every_extra)
    assert not missing, "add these to pyproject.toml's dependencies (or an extra):\n" + "\n".join(missing)


def _library_parts_used(path: Path) -> list[Path]:
    """The files of the library's extra layers (`PART_OF`: the local backend, the store) that `path` imports."""
    used = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        for name in names:
            if name.startswith("fireact_core."):
                module = ROOT / Path(*name.split("."))
                files = sorted(module.rglob("*.py")) if module.is_dir() else [module.with_suffix(".py")]
                used += [f for f in files if f.is_file() and _part(f) is not None]
    return used


def test_the_trainer_and_the_app_declare_what_they_import():
    """Their own imports, and those of the library's extra layers they use (`fireact loop` reads the store)."""
    for extra, files in (("train", sorted((ROOT / "train").rglob("*.py"))),
                         ("app", [ROOT / "app.py", *sorted((ROOT / "space").rglob("*.py"))]),
                         (None, sorted((ROOT / "worldgen").rglob("*.py")))):  # the generator: the library's own
        allowed = _closure(extra)
        files = sorted({*files, *(f for path in files for f in _library_parts_used(path))})
        missing = _undeclared(files, dict.fromkeys(files, allowed), allowed)
        assert not missing, f"add these to pyproject.toml's {extra or 'dependencies'}:\n" + "\n".join(missing)


def test_the_library_stays_small():
    """The agent library alone pulls no model runtime, web framework or database."""
    core = _closure(None)
    assert not core & {"torch", "transformers", "gradio", "duckdb", "trl", "bitsandbytes", "datasets", "pandas"}, core
    assert _closure("local") > core and _closure("train") > _closure("local") and _closure("app") > _closure("train")


def test_requirements_txt_is_the_union_of_the_parts():
    listed = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            listed[canonicalize_name(req.name)] = req
    declared = {}
    for spec in [*PROJECT["dependencies"], *(s for e in PROJECT["optional-dependencies"].values() for s in e)]:
        req = Requirement(spec)
        if canonicalize_name(req.name) != "fireact":
            declared[canonicalize_name(req.name)] = req
    assert set(listed) - ONLY_IN_REQUIREMENTS == set(declared), (sorted(set(listed) - set(declared)),
                                                                 sorted(set(declared) - set(listed)))
    differ = {n for n in declared if (listed[n].specifier, listed[n].extras, listed[n].marker and str(listed[n].marker))
              != (declared[n].specifier, declared[n].extras, declared[n].marker and str(declared[n].marker))}
    assert differ == set(PIN_ONLY_IN_REQUIREMENTS), sorted(differ)
    for name, pin in PIN_ONLY_IN_REQUIREMENTS.items():
        assert str(listed[name]) == pin and declared[name].specifier.contains(pin.split("==")[1])


def test_the_library_imports_without_its_extras():
    """Every library module outside the extras' layers imports with the extras' packages hidden."""
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in sorted((ROOT / "fireact_core").rglob("*.py")) if _part(p) is None]
    hidden = ["torch", "transformers", "peft", "gguf", "gradio", "duckdb", "trl", "datasets", "pandas", "pyarrow",
              "huggingface_hub", "bitsandbytes", "numpy"]
    code = ("import sys, importlib\n"
            f"for name in {hidden!r}: sys.modules[name] = None  # `import name` raises ImportError\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(len(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]


def test_a_local_model_without_the_local_extra_is_a_clear_error():
    code = ("import sys\n"
            "for name in ('torch', 'transformers'): sys.modules[name] = None\n"
            "from fireact_core.factory import load_model\n"
            "from fireact_core.errors import ConfigError\n"
            "try:\n    load_model('smollm2')\nexcept ConfigError as e:\n    print(e)\n"
            "print(type(load_model('fake')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    error, fake = out.stdout.strip().splitlines()
    assert "fireact[local]" in error and "'smollm2'" in error and "transformers" in error, error
    assert fake  # the fake model still loads


def test_a_command_without_its_extra_names_the_install(tmp_path):
    """`fireact loop` on an install without the trainer's extra: one line naming it, no traceback."""
    code = ("import sys\nsys.modules['duckdb'] = None\n"
            "from fireact_core.cli import main\n"
            f"raise SystemExit(main(['loop', '--db', {str(tmp_path / 'app.duckdb')!r}, '--recipe', 'smollm2-135m-world']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "fireact loop: error: the package 'duckdb' is not installed: pip install 'fireact[train]'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "app.duckdb").exists()
