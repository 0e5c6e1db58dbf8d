"""`fireact space deploy` against the local Hub stand-in answering as the real Hub does (`HubServer(lfs=True)`).

The Space gets exactly `space.manifest.space_files()` in one commit, byte for byte, the safetensors
adapters through the git-lfs batch protocol (upload, verify, `lfsFile` commit lines); no test,
benchmark or doc arrives; variables, secrets and hardware are set through the Space API, and a
secret's value is never printed. A second deploy removes what left the list and re-uploads no
LFS object the Hub already holds. huggingface_hub uploads through Xet whenever `hf_xet` is
installed; the stand-in speaks git-lfs, so these tests set `HF_HUB_DISABLE_XET` (docs/space.md).
"""

from __future__ import annotations

import argparse
import sys
import tomllib

import pytest
from hub_server import TOKEN, HubServer

from fireact_core.cli import main as cli
from fireact_core.cli import plugin_commands
from fireact_core.errors import InputError
from space.deploy import make_parser, space_readme
from space.manifest import ROOT, front_matter, space_files

CANARY = "sk-canary-5e3f1a9b7c"


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    with HubServer(lfs=True) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield server


def fireact(args: list[str]) -> int:
    """`fireact ARGS` on a bare parser with the command's own `make_parser`, so a refusal raises its error
    (the installed `fireact` prints it and exits 2: `test_without_a_token_the_error_is_one_line`)."""
    parser = argparse.ArgumentParser(prog="fireact")
    make_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(args)
    return ns.func(ns)


def test_the_command_is_registered_as_a_fireact_plugin():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["fireact.commands"]["space"] == "space.deploy:make_parser"
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    assert make_parser(sub).prog.endswith("space")


def test_deploy_uploads_exactly_the_file_set_binaries_through_lfs(hub, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    rc = fireact(["space", "deploy", "tester/arena", "--hardware", "zero-a10g", "--dataset", "tester/ratings",
                  "--default-adapter", "tester/smollm2-fireact", "--secret", "OPENAI_API_KEY",
                  "--variable", "FIREACT_K_RATERS=5"])
    out = capsys.readouterr()
    assert rc == 0
    space = hub.space("tester/arena")
    expected = space_files(ROOT)
    assert sorted(set(space["files"]) - {".gitattributes"}) == expected
    readme = space_readme(ROOT, adapter_repo="tester/smollm2-fireact", dataset="tester/ratings")
    for f in expected:
        want = readme if f == "README.md" else (ROOT / f).read_bytes()
        assert space["files"][f] == want, f
    # what must and must not travel
    for needed in ("app.py", "requirements.txt", "space/arena.py", "train/loop.py", "fireact_core/agent.py",
                   "data/world/corpus.jsonl", "data/adapters/default/adapter_model.safetensors"):
        assert needed in space["files"], needed
    assert not [f for f in space["files"] if f.split("/")[0] in ("tests", "bench", "docs", "runs", ".venv", ".ci")
                or "__pycache__" in f or f in ("Makefile", "pyproject.toml", "requirements-dev.txt")]
    # the binaries went the LFS way, text stayed regular (tokenizer.json is 3.5 MB of JSON)
    lfs = {path for key, path in hub.lfs_paths if key == "spaces/tester/arena"}
    assert {"data/adapters/default/adapter_model.safetensors", "data/adapters/gemma3/adapter_model.safetensors"} <= lfs
    assert "data/adapters/default/tokenizer.json" not in lfs and "app.py" not in lfs
    assert all(f.endswith(".safetensors") for f in lfs)
    assert any(p == "/spaces/tester/arena.git/info/lfs/objects/batch" for p in hub.paths("POST"))
    assert len([p for p in hub.paths("PUT") if p.startswith("/lfs-objects/")]) == len(lfs)
    assert len([p for p in hub.paths("POST") if p.endswith("/objects/verify")]) == len(lfs)
    assert len(space["commits"]) == 1 and hub.paths("POST").count("/api/spaces/tester/arena/commit/main") == 1
    # settings through the API; the secret's value reached the Hub and nothing printed
    assert space["sdk"] == "gradio" and space["hardware"] == "zero-a10g"
    assert space["variables"] == {"FIREACT_K_RATERS": "5", "FIREACT_HUB_DATASET": "tester/ratings",
                                  "FIREACT_DEFAULT_ADAPTER": "tester/smollm2-fireact"}
    assert space["secrets"] == {"OPENAI_API_KEY": CANARY}
    assert CANARY not in out.out + out.err and "secret OPENAI_API_KEY set" in out.out
    assert hub.repos["tester/ratings"]["private"] is True  # the ratings dataset
    assert f"{hub.url}/spaces/tester/arena" in out.out and "https://tester-arena.hf.space" in out.out
    # the uploaded front matter links and preloads the adapter, and links the dataset
    uploaded = front_matter_of(space["files"]["README.md"])
    assert "tester/smollm2-fireact" in uploaded["preload_from_hub"] and "tester/ratings" in uploaded["datasets"]
    assert uploaded["sdk_version"] == front_matter(ROOT)["sdk_version"]


def front_matter_of(readme: bytes) -> dict:
    import yaml

    text = readme.decode()
    return yaml.safe_load(text[4:text.find("\n---", 4)])


def test_a_second_deploy_removes_what_left_the_list_and_skips_stored_lfs_objects(hub, capsys):
    assert fireact(["space", "deploy", "tester/arena"]) == 0
    puts = len(hub.paths("PUT"))
    space = hub.space("tester/arena")
    space["files"]["old_module.py"] = b"print('left over')\n"  # as if an earlier deploy had it
    assert fireact(["space", "deploy", "tester/arena", "--message", "again"]) == 0
    assert "old_module.py" not in space["files"] and ".gitattributes" in space["files"]
    assert len(hub.paths("PUT")) == puts  # the Hub already had every LFS object: the batch asked for none
    assert [c["summary"] for c in space["commits"]] == ["Deploy FireAct Arena", "again"]
    assert "removed 1 no longer needed (old_module.py)" in capsys.readouterr().out


def test_bad_input_is_refused_before_anything_is_sent(hub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match=r"\$OPENAI_API_KEY is not set"):
        fireact(["space", "deploy", "tester/arena", "--secret", "OPENAI_API_KEY"])
    with pytest.raises(InputError, match="shell history"):
        fireact(["space", "deploy", "tester/arena", "--secret", f"OPENAI_API_KEY={CANARY}"])
    with pytest.raises(InputError, match="OWNER/NAME"):
        fireact(["space", "deploy", "arena"])
    with pytest.raises(SystemExit):
        fireact(["space", "deploy", "tester/arena", "--hardware", "a-big-gpu"])
    assert hub.requests == []


def test_dry_run_lists_the_files_and_sends_nothing(hub, capsys):
    assert fireact(["space", "deploy", "tester/arena", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{len(space_files(ROOT))} files" in out and "data/adapters/default/adapter_model.safetensors" in out
    assert "tests/" not in out and hub.requests == []


def test_without_a_token_the_error_is_one_line(hub, monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    from train.hub import HubError

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(HubError, match="no Hugging Face token"):
        fireact(["space", "deploy", "tester/arena"])
    assert "tester/arena" not in str(hub.repos)
    if "space" in plugin_commands():  # the installed `fireact` (after `make setup`): one line, exit 2
        assert cli(["space", "deploy", "tester/arena"]) == 2
        err = capsys.readouterr().err.strip()
        assert "no Hugging Face token" in err and len(err.splitlines()) == 1 and "Traceback" not in err


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
