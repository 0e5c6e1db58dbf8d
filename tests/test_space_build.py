"""What a Space builds from, held together (the parts of `make space-check` that need no fresh venv).

- README.md's front matter: `sdk_version` is requirements.txt's exact gradio pin (the builder installs
  `gradio[oauth]==<sdk_version>` whatever requirements.txt says); every installed requirement's
  `Requires-Python` (and its dependencies') admits `python_version`, as does pyproject's; torch is pinned
  to a version ZeroGPU supports and the Makefile installs that same pin; the default base is preloaded.
- The file set: everything the app imports is in it (so the Space starts), nothing from tests/bench/docs.
- The default base as safetensors (written from the bundled GGUF) served by the Hub stand-in byte for byte.
- The file set, deployed to the stand-in and staged as it arrived, started as `python app.py` with a Space's environment against the stand-in Hub:
  its first page, the OAuth routes a Space's login needs, and the start-up probe at `HF_ENDPOINT`.
"""

from __future__ import annotations

import ast
import http.client
import importlib.util
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from hub_server import HubServer
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from fireact_core.models import BUNDLED_ID
from space.manifest import ROOT, ZEROGPU_PYTHON, ZEROGPU_TORCH, front_matter, requirement_pins, space_files


def _load_space_check():  # by its path: bench/ on sys.path would shadow the `train` package with bench/train.py
    spec = importlib.util.spec_from_file_location("space_check", ROOT / "bench" / "space_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


space_check = _load_space_check()

META = front_matter(ROOT)
PINS = requirement_pins(ROOT)


def _requirements() -> list[Requirement]:
    out = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def test_sdk_version_is_the_exact_gradio_pin_and_spaces_is_required():
    assert str(META["sdk"]) == "gradio" and META["app_file"] == "app.py" and META["hf_oauth"] is True
    assert "gradio" in PINS and str(META["sdk_version"]) == PINS["gradio"]
    gradio = next(r for r in _requirements() if r.name == "gradio")
    assert "oauth" in gradio.extras  # the login button on a Space (hf_oauth: true)
    assert any(r.name == "spaces" for r in _requirements())


def test_every_installed_requirement_admits_the_front_matters_python():
    python = str(META["python_version"])
    assert re.fullmatch(r"3\.\d+", python) and Version(python) >= Version("3.11")
    assert python in ZEROGPU_PYTHON  # the Space may run on ZeroGPU hardware
    seen: dict[str, str | None] = {}
    todo = [r.name for r in _requirements() if r.marker is None or r.marker.evaluate()]
    while todo:  # the requirements and, transitively, what they require (as installed here)
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            seen[key] = None  # not installed here (e.g. `spaces`): nothing to read
            continue
        seen[key] = dist.metadata.get("Requires-Python")
        for dep in dist.requires or []:
            req = Requirement(dep)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    refusing = {k: v for k, v in seen.items() if v and not SpecifierSet(v).contains(python, prereleases=True)}
    assert refusing == {}
    assert {"trl", "transformers", "gradio", "torch"} <= {k for k, v in seen.items() if v}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(project).contains(python) and SpecifierSet(project).contains("3.11")
    assert not SpecifierSet(project).contains("3.10")  # trl, transformers, numpy, pandas and duckdb need 3.11


def test_torch_is_pinned_to_a_zerogpu_version_and_the_makefile_installs_that_pin():
    assert PINS["torch"] in ZEROGPU_TORCH
    installed = Version(metadata.version("torch"))
    assert installed.base_version == PINS["torch"]  # what the tests run on is the Space's version (CPU build)
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH := $(shell sed -n 's/^torch==" in makefile and "torch==$(TORCH)" in makefile
    assert not re.search(r"torch==\d", makefile)  # the version is written once, in requirements.txt


def test_front_matter_preloads_and_links_the_default_base():
    preload = [str(x).split() for x in META["preload_from_hub"]]
    assert preload[0][0] == BUNDLED_ID
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(preload[0][1].split(","))
    assert BUNDLED_ID in META["models"] and "hotpotqa/hotpot_qa" in META["datasets"]
    assert 0 < len(META["short_description"]) <= 60  # the Hub's limit
    assert all(isinstance(t, str) for t in META["tags"])


def _local_imports(path: Path, roots: set[str]) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in roots}


def test_the_file_set_holds_everything_the_app_imports_and_nothing_else():
    files = set(space_files(ROOT))
    assert {"app.py", "README.md", "requirements.txt", "data/adapters/default/adapter_model.safetensors",
            "data/adapters/default/adapter_config.json", "fireact_core/prompts/default.yaml",
            "train/recipes/smollm2-135m-world.yaml"} <= files
    assert any(f.startswith("data/world/questions/") for f in files)
    assert not [f for f in files if f.split("/")[0] in ("tests", "bench", "docs", ".ci", "runs") or
                "__pycache__" in f or f.endswith((".pyc", ".duckdb"))]
    roots = {"fireact_core", "space", "train", "worldgen", "app", "bench", "tests"}  # worldgen: not shipped
    missing = {}
    for f in sorted(x for x in files if x.endswith(".py")):
        for name in _local_imports(ROOT / f, roots):
            parts = name.split(".")
            candidates = {"/".join(parts) + ".py", "/".join(parts) + "/__init__.py",
                          "/".join(parts[:-1]) + ".py", "/".join(parts[:-1]) + "/__init__.py"}
            if not candidates & files:
                missing.setdefault(f, []).append(name)
    assert missing == {}


def test_the_default_base_as_safetensors_is_served_byte_for_byte(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    base = space_check.export_base()  # de-quantised from the bundled GGUF, cached
    served = space_check.hub_files(base)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(served)
    assert "fireact_base.json" not in served  # our marker is not on the Hub
    from huggingface_hub import HfApi

    with HubServer() as hub:
        space_check.serve_defaults(hub, base)
        api = HfApi(endpoint=hub.url, token=False)
        for name in ("config.json", "adapter_config.json"):
            repo = BUNDLED_ID if name == "config.json" else space_check.ADAPTER_REPO
            local = api.hf_hub_download(repo, name, cache_dir=str(tmp_path))
            want = served[name] if repo == BUNDLED_ID else ROOT / "data/adapters/default" / name
            assert Path(local).read_bytes() == want.read_bytes()
        head = urllib.request.Request(f"{hub.url}/{BUNDLED_ID}/resolve/main/model.safetensors", method="HEAD")
        with urllib.request.urlopen(head, timeout=30) as r:
            size = int(r.headers["Content-Length"])
        assert size == served["model.safetensors"].stat().st_size > 100e6  # float weights, not Q4_1


def test_the_staged_app_starts_with_a_spaces_environment_against_the_stand_in_hub(tmp_path):
    app_dir, home = tmp_path / "app", tmp_path / "home"
    home.mkdir()
    with HubServer(lfs=True) as hub:
        staged = space_check.stage_via_deploy(hub, app_dir)  # what `fireact space deploy` delivered
        assert staged == space_files(ROOT)
        assert sorted(p.relative_to(app_dir).as_posix() for p in app_dir.rglob("*") if p.is_file()) == staged
        # the staged copy finds its own data/ (the adapters, the world) beside app.py, with no pyproject.toml there
        probe = subprocess.run([sys.executable, "-c", "from fireact_core import paths; print(paths.DATA)"],
                               cwd=app_dir, env={**os.environ, "PYTHONPATH": str(app_dir)}, capture_output=True,
                               text=True, timeout=60)
        assert probe.stdout.strip() == str((app_dir / "data").resolve()), probe.stderr
        hub.add_files(BUNDLED_ID, {"config.json": b"{}"})  # enough for the start-up probe (model_info)
        port = space_check.free_port()
        env = space_check.space_env(hub.url, port, home)
        assert "HF_HUB_OFFLINE" not in env and env["SYSTEM"] == "spaces" and env["SPACE_ID"]
        log = tmp_path / "app.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            try:
                space_check.wait_for_page(url, proc, timeout=240)
            except Exception:
                pytest.fail(f"no first page: {log.read_text(errors='replace')[-3000:]}")
            with urllib.request.urlopen(url + "config", timeout=30) as r:
                config = r.read().decode()
            assert "Sign in with Hugging Face" in config  # the login button (built only with a Space's OAuth)
            # a Space's login starts: the OAuth route sends the visitor to the provider's authorize page
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/login/huggingface")
            answer = conn.getresponse()
            assert answer.status in (302, 307)
            assert answer.getheader("Location", "").startswith(f"{hub.url}/oauth/authorize?")
            for _ in range(60):  # the start-up probe asked the stand-in (HF_ENDPOINT), not huggingface.co
                if f"/api/models/{BUNDLED_ID}" in hub.paths("GET"):
                    break
                time.sleep(0.5)
            assert f"/api/models/{BUNDLED_ID}" in hub.paths("GET"), log.read_text(errors="replace")[-3000:]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
