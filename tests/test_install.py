"""The project installed non-editable, away from its source tree, runs its own default.

`pip install --no-deps --target` builds the wheel from a copy of the tree (so the checkout gets no
build/ folder) and installs it into a temporary folder; the installed `fireact` then runs with only
that folder and the shared environment's site-packages on its path (`python -S`: no .pth files, so
the environment's editable install of the checkout stays out), from an empty working folder.
The default needs the bundled SmolLM2 GGUF (a dependency), and the default adapter and the world's
corpus, which must come from inside the installed package (`fireact_core.paths`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fireact_core import paths
from fireact_core.methods import load_prompts
from fireact_core.tasks import load_task

ROOT = paths.REPO
QUESTION = "In what year was the singer of the band Broken Giatan born?"  # world dev 0: a 2-hop bridge
# What a checkout holds that a build does not read (tests and benchmarks, and local outputs).
NOT_BUILT = (".*", "tests", "bench", "docs", "runs", "outputs", "build", "test-artifacts", "*.egg-info", "__pycache__",
             "*.duckdb*")


def _env(target: Path, **extra: str) -> dict[str, str]:
    """The environment of the installed command: the install first, then the shared dependencies."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FIREACT_HOME", "FIREACT_DATA")}
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env.update(PYTHONPATH=os.pathsep.join([str(target), *deps]), HF_HUB_OFFLINE="1", **extra)
    return env


def _fireact(target: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # -S: no site-packages .pth files (the environment's editable install of the checkout)
    return subprocess.run([sys.executable, "-S", str(target / "bin" / "fireact"), *args], cwd=cwd,
                          env=_env(target, **env), capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    src, target = tmp / "src", tmp / "target"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_BUILT))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(src)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def test_the_installed_package_finds_its_data_inside_itself(installed, tmp_path):
    probe = ("import fireact_core, fireact_core.paths as p; from fireact_core.tasks import load_task; "
             "from fireact_core.methods import load_prompts; "
             "print(fireact_core.__file__); print(p.HOME_SOURCE); print(p.DEFAULT_ADAPTER); print(p.WORLD); "
             "print(len(load_task('world', 'dev'))); print(len(load_prompts('nearest').examples['react']))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, env=_env(installed),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    module, source, adapter, world, dev, pool = out.stdout.splitlines()
    # its question bank, and the teacher trajectories that `--prompts nearest` draws exemplars from
    assert int(dev) == len(load_task("world", "dev")) and int(pool) == len(load_prompts("nearest").examples["react"]) > 0
    assert Path(module).is_relative_to(installed), module  # not the checkout's package
    assert source == "the installed package"
    assert Path(adapter) == installed / "fireact_core" / "data" / "adapters" / "default"
    assert (Path(adapter) / "adapter_config.json").is_file() and (Path(world) / "corpus.jsonl").is_file()


def test_fireact_run_on_the_default_from_another_folder(installed, tmp_path):
    done = _fireact(installed, tmp_path, "run", QUESTION, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    traj = json.loads(done.stdout)
    assert traj["agent"]["model"] == "smollm2" and traj["agent"]["adapter"] == "default"
    assert traj["status"] == "finished" and traj["answer"].strip(), (traj["status"], traj["reason"])
    searches = [s for s in traj["steps"] if s["action"] == "search"]
    assert searches, [s["action"] for s in traj["steps"]]
    assert "Broken Giatan" in searches[0]["observation"]  # the world's corpus answered, from the installed copy
    assert not list(tmp_path.iterdir()), "the run wrote into its working folder"


def test_a_home_without_data_is_a_clear_error(installed, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    done = _fireact(installed, tmp_path, "run", QUESTION, "--json", FIREACT_HOME=str(home))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "FIREACT_HOME" in done.stderr and str(home / "data") in done.stderr and "Traceback" not in done.stderr


def test_a_checkout_reads_its_own_data_folder():
    assert paths.IN_CHECKOUT and paths.HOME == ROOT and paths.HOME_SOURCE == "the source checkout"
    assert paths.DEFAULT_ADAPTER == ROOT / "data" / "adapters" / "default" and paths.WORLD == ROOT / "data" / "world"


def test_fireact_home_comes_first(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import fireact_core.paths as p; print(p.HOME_SOURCE); print(p.DATA)"],
                         env={**os.environ, "FIREACT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["$FIREACT_HOME", str(tmp_path.resolve() / "data")]
