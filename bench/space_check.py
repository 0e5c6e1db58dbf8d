"""The Space rehearsal (`make space-check`): the app as a Hugging Face Space would build and run it.

1. Deploy the checkout to a local Hub stand-in (`tests/hub_server.py`, answering as the Hub does)
   with `fireact space deploy`'s own code, and stage the Space's files as they arrived (exactly
   `space.manifest.space_files()`, the adapters through git-lfs) in a temporary folder.
2. Build a fresh virtual environment the way a Space's builder does: `pip install -r
   requirements.txt`, then `gradio[oauth]==<sdk_version>` and `spaces` (no Makefile step, no
   `--no-deps` package, so no bundled GGUF). On a machine without CUDA the CPU build of the same
   torch pin is installed first (a Space with a GPU gets the CUDA build of that version).
3. Serve the default base on the same stand-in: SmolLM2-135M-Instruct
   as safetensors, de-quantised from the bundled GGUF and `save_pretrained` (`fireact_core.models`),
   and the default adapter (`data/adapters/default/`) as a Hub repo named by
   `FIREACT_DEFAULT_ADAPTER`.
4. Start `python app.py` with the environment a Space sets (`space_env`), `HF_ENDPOINT` at the
   stand-in and `HF_HUB_OFFLINE` unset, wait for the first page, then run one full battle (both
   sides to their end) through `gradio_client` with every input at the page's default.

It prints the build time, the time to the first page, the time to the first finished battle and a
second battle's time once the models are loaded.
`--venv DIR` reuses a built environment (skips step 2); `--python` picks the interpreter for it.
docs/space.md keeps the figures and says where this differs from a real Space.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this script's folder first on sys.path would let bench/train.py shadow the `train` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
for p in (ROOT / "tests", ROOT):
    sys.path.insert(0, str(p))

from bench.app import free_port, stop  # noqa: E402  (the app benchmark's; free_port re-exported for the tests)
from fireact_core.models import BUNDLED_ID  # noqa: E402
from space.manifest import front_matter, requirement_pins, space_files  # noqa: E402

ADAPTER_REPO = "fireact/smollm2-135m-world"  # the stand-in's name for data/adapters/default
SPACE_ID = "fireact/arena-rehearsal"


def stage_via_deploy(hub: Any, dest: Path, root: Path = ROOT) -> list[str]:
    """Deploy the checkout to the Hub stand-in with `fireact space deploy`'s own code (git-lfs for the
    binaries: the stand-in does not speak Xet) and write the Space's files, as they arrived, to `dest`."""
    from hub_server import TOKEN
    from huggingface_hub import constants

    from space.deploy import deploy, plan
    from space.manifest import KEEP_REMOTE

    saved_env = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_TOKEN")}
    saved = constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET
    os.environ.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN)
    constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET = False, True
    try:
        args = argparse.Namespace(repo_id=SPACE_ID, hardware=None, private=False, dataset=None,
                                  default_adapter=ADAPTER_REPO, secret=None, variable=None)
        deploy(plan(args, root), log=lambda *_: None)
    finally:
        constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    arrived = {k: v for k, v in hub.space(SPACE_ID)["files"].items() if k not in KEEP_REMOTE}
    for name, data in arrived.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return sorted(arrived)


def export_base() -> Path:
    """The default base as a safetensors folder, de-quantised from the bundled GGUF (cached after the first time)."""
    from fireact_core.models import resolve_base

    return Path(resolve_base("smollm2"))


def hub_files(folder: Path, *, skip: tuple[str, ...] = ("fireact_base.json",)) -> dict[str, Path]:
    """A folder's files as Hub repo files (served from disk), without our conversion marker."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}


def serve_defaults(hub: Any, base: Path, adapter: Path = ROOT / "data" / "adapters" / "default") -> None:
    """Put the default base and adapter on the Hub stand-in under the ids a Space loads."""
    hub.add_files(BUNDLED_ID, hub_files(base))
    hub.add_files(ADAPTER_REPO, hub_files(adapter))


def space_env(hub_url: str, port: int, home: Path) -> dict[str, str]:
    """The environment a Space gives its app (gradio/oauth.py and huggingface_hub/_oauth.py read these),
    with the Hub at `hub_url`. Nothing from this machine's environment but PATH and the locale."""
    owner, name = SPACE_ID.split("/")
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    return {**keep,
            "HOME": str(home), "PYTHONUNBUFFERED": "1", "SYSTEM": "spaces",
            "SPACE_ID": SPACE_ID, "SPACE_AUTHOR_NAME": owner, "SPACE_REPO_NAME": name, "SPACE_TITLE": "FireAct Arena",
            "SPACE_HOST": f"{owner}-{name}.hf.space", "SPACE_CREATOR_USER_ID": "0" * 24,
            "OAUTH_CLIENT_ID": "00000000-rehearsal", "OAUTH_CLIENT_SECRET": "rehearsal-oauth-secret",
            "OAUTH_SCOPES": "openid profile", "OPENID_PROVIDER_URL": hub_url,
            "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port),
            "HF_ENDPOINT": hub_url, "FIREACT_DEFAULT_ADAPTER": ADAPTER_REPO, "TOKENIZERS_PARALLELISM": "false",
            # a Space sets no OMP_NUM_THREADS (the app sizes torch to its CPU quota); passed on only when set here
            **({"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]} if os.environ.get("OMP_NUM_THREADS") else {})}


def build_venv(app_dir: Path, venv: Path, python: str = sys.executable) -> float:
    """A fresh venv with what a Space's builder installs; returns the seconds it took."""
    t0 = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    pins, sdk = requirement_pins(app_dir), str(front_matter(app_dir)["sdk_version"])
    if shutil.which("nvidia-smi") is None and "torch" in pins:  # this machine's stand-in for the Space's GPU build
        torch = [*pip, "--no-deps", f"torch=={pins['torch']}"]  # as the Makefile does; its deps come next
        if subprocess.run([*torch, "--index-url", "https://download.pytorch.org/whl/cpu"]).returncode:
            subprocess.run(torch, check=True)
    subprocess.run([*pip, "-r", str(app_dir / "requirements.txt")], check=True, cwd=app_dir)
    subprocess.run([*pip, f"gradio[oauth]=={sdk}", "spaces"], check=True, cwd=app_dir)
    return time.perf_counter() - t0


def wait_for_page(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until `url` answers 200 with the page; raises if the app exits or the time runs out."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode} before its first page")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200 and b"gradio" in r.read().lower():
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no page at {url} within {timeout:.0f} s")


def battle_inputs(client: Any, question: str) -> list[Any]:
    """The /battle endpoint's inputs at the page's defaults, with `question` as the first."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/battle"]["parameters"]
    values = [p.get("parameter_default") if p.get("parameter_has_default") else None for p in params]
    values[0] = question
    return values


def run_battle(url: str, question: str, timeout: float) -> tuple[float, str, list[str]]:
    """One battle through gradio_client: (seconds to its end, the status line, both sides' HTML)."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False, ssl_verify=False)
    t0 = time.perf_counter()
    job = client.submit(*battle_inputs(client, question), api_name="/battle")
    final = job.result(timeout=timeout)
    return time.perf_counter() - t0, str(final[0]), [str(x) for x in final[1:3]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, help="reuse this built venv (skip the build)")
    ap.add_argument("--python", default=os.environ.get("SPACE_CHECK_PYTHON", sys.executable),
                    help="the interpreter the venv is built from")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--question", default="Which country is the director of Tovarin Sels from?")
    ap.add_argument("--loaded-question", default="In what year was the singer of the band Broken Giatan born?",
                    help="the second battle's, timed once the models are loaded")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for the page and for the battle, each")
    args = ap.parse_args(argv)
    from hub_server import HubServer

    work = Path(tempfile.mkdtemp(prefix="fireact-space-check-"))
    app_dir, home = work / "app", work / "home"
    home.mkdir()
    with HubServer(lfs=True) as hub:
        files = stage_via_deploy(hub, app_dir)
        if files != space_files(ROOT):
            print("the Space's files differ from space/manifest.py's list", file=sys.stderr)
            shutil.rmtree(work, ignore_errors=True)
            return 1
        lfs = sorted(path for key, path in hub.lfs_paths if key == f"spaces/{SPACE_ID}")
        print(f"deployed {len(files)} files ({sum((app_dir / f).stat().st_size for f in files) / 1e6:.1f} MB; "
              f"through LFS: {', '.join(lfs)}) to the stand-in and staged them in {app_dir}")
        if args.venv:
            venv, build_s = args.venv, None
        else:
            venv = work / "venv"
            print("building a fresh venv as a Space builder would ...")
            build_s = build_venv(app_dir, venv, args.python)
            print(f"build: {build_s:.0f} s")
        serve_defaults(hub, export_base())
        port = free_port()
        env = space_env(hub.url, port, home)
        log = (work / "app.log").open("wb")
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(venv / "bin" / "python"), "app.py"], cwd=app_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            page_s = wait_for_page(url, proc, args.timeout)
            print(f"first page: {page_s:.1f} s after `python app.py`")
            battle_s, status, sides = run_battle(url, args.question, args.timeout)
            first_battle_s = time.perf_counter() - t0
            print(f"status: {status}")
            ok = all('data-status="done"' in s for s in sides)
            fetched = sorted({r["path"] for r in hub.requests if "/resolve/" in r["path"] and r["method"] == "GET"})
            print(f"files fetched from the Hub stand-in: {', '.join(f.split('/', 1)[1] for f in fetched)}")
            from_hub = all(any(f.startswith(f"/{repo}/resolve/") and f.endswith(".safetensors") for f in fetched)
                           for repo in (BUNDLED_ID, ADAPTER_REPO))
            print(f"first finished battle: {battle_s:.1f} s from the click, {first_battle_s:.1f} s after "
                  f"`python app.py`; both sides finished: {ok}; base and adapter from the Hub: {from_hub}")
            # issue 30's goal on the Space's own path (the Hub's safetensors base, the adapter from the Hub)
            loaded_s, _, again = run_battle(url, args.loaded_question, args.timeout)
            ok_again = all('data-status="done"' in s for s in again)
            print(f"a default battle once loaded ({args.loaded_question!r}): {loaded_s:.1f} s; "
                  f"both sides finished: {ok_again}")
            print(f"SUMMARY build={'reused' if build_s is None else f'{build_s:.0f}s'} first_page={page_s:.1f}s "
                  f"first_battle={battle_s:.1f}s (from start {first_battle_s:.1f}s) loaded_battle={loaded_s:.1f}s "
                  f"sides_done={ok and ok_again} hub_defaults={from_hub}")
            return 0 if ok and ok_again and from_hub else 1
        except Exception as e:
            print(f"space-check failed: {type(e).__name__}: {e}; the app's log:", file=sys.stderr)
            print((work / "app.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        finally:
            stop(proc)
            log.close()
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
