"""Publishing and OpenAI fine-tuning against local servers speaking the real wire formats.

Hub: one-line errors for no token, a rejected token, offline mode, a refused connection and
invalid card metadata (the local folder stays); discovery lists `fireact`-tagged models.
OpenAI: `fireact train-openai` uploads the converted chat JSONL, starts a job and follows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import TOKEN, HubServer
from openai_ft_server import KEY, FineTuneServer

from fireact_core.cli import main as cli
from train.hub import HubError, discover, push


@pytest.fixture
def adapter_dir(tmp_path):
    """A minimal adapter folder (no weights needed to test the publishing errors)."""
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                                       "peft_type": "LORA", "r": 8}))
    (d / "README.md").write_text("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlibrary_name: peft\n"
                                 "tags: [fireact, agent]\n---\n# tiny\n\nA tiny FireAct agent.\n")
    (d / "fireact.json").write_text('{"format_version": 1}\n')
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "state.bin").write_bytes(b"\0" * 10)
    return d


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield server


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_push_creates_a_private_repo_and_skips_checkpoints(hub, adapter_dir):
    url = push(adapter_dir, "tester/tiny", private=True)
    assert url == f"{hub.url}/tester/tiny"
    repo = hub.repos["tester/tiny"]
    assert repo["private"] is True
    assert repo["files"] == {n: b for n, b in _snapshot(adapter_dir).items() if not n.startswith("checkpoints")}
    assert hub.paths()[0] == "/api/whoami-v2"


def test_no_token_is_a_one_line_error_and_the_folder_stays(hub, adapter_dir, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # no saved login either
    before = _snapshot(adapter_dir)
    with pytest.raises(HubError) as e:
        push(adapter_dir, "tester/tiny")
    assert "no Hugging Face token" in str(e.value) and "\n" not in str(e.value)
    assert _snapshot(adapter_dir) == before and hub.requests == []


@pytest.mark.parametrize("case", ["bad-token", "offline", "refused"])
def test_hub_failures_are_one_line(hub, adapter_dir, monkeypatch, case):
    from huggingface_hub import constants

    if case == "bad-token":
        monkeypatch.setenv("HF_TOKEN", "hf_wrong")
        want = "rejected the token (401)"
    elif case == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        want = "offline mode is on"
    else:
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        want = "cannot reach the Hub at http://127.0.0.1:9"
    with pytest.raises(HubError) as e:
        push(adapter_dir, "tester/tiny")
    assert want in str(e.value) and "\n" not in str(e.value)
    assert "tester/tiny" not in hub.repos


def test_invalid_card_metadata_is_reported_by_validate_yaml(hub, adapter_dir):
    (adapter_dir / "README.md").write_text("---\nlicense: [1, 2]\n---\n# x\n")
    with pytest.raises(HubError, match='license" must be a string'):
        push(adapter_dir, "tester/tiny")
    assert hub.repos["tester/tiny"]["files"] == {}  # nothing was committed


def test_discovery_lists_fireact_models_by_downloads(hub):
    card = "---\nbase_model: {base}\nlibrary_name: peft\ntags: [fireact, agent, react]\n---\n# {name}\n\n{line}\n"
    hub.add_model("a/small", card.format(base="HuggingFaceTB/SmolLM2-135M-Instruct", name="small",
                                         line="A small agent."), downloads=10)
    hub.add_model("b/big", card.format(base="meta-llama/Llama-2-7b-chat-hf", name="big", line="A big agent."),
                  downloads=500)
    hub.add_model("c/other", "---\ntags: [text-generation]\n---\n# other\n", downloads=9999)
    found = discover()
    assert [(a.repo_id, a.base_model, a.downloads, a.summary) for a in found] == [
        ("b/big", "meta-llama/Llama-2-7b-chat-hf", 500, "A big agent."),
        ("a/small", "HuggingFaceTB/SmolLM2-135M-Instruct", 10, "A small agent.")]
    assert found[0].format() == "b/big  (base meta-llama/Llama-2-7b-chat-hf, 500 downloads)  A big agent."


def test_cli_hub_listing(hub, capsys):
    hub.add_model("a/small", "---\nbase_model: x/y\ntags: [fireact]\n---\n# s\n\nHello.\n", downloads=3)
    assert cli(["train", "--hub"]) == 0
    assert "a/small  (base x/y, 3 downloads)  Hello." in capsys.readouterr().out


# --- OpenAI fine-tuning -------------------------------------------------------------------------
@pytest.fixture
def ft(monkeypatch):
    with FineTuneServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        yield server


def _chat_file(shared: Path, n: int, out: Path) -> Path:
    lines = (shared / "finetune/gpt_format/hotpotqa.jsonl").read_text().splitlines(keepends=True)[:n]
    out.write_text("".join(lines), encoding="utf-8")
    return out


def test_train_openai_uploads_starts_and_follows_a_job(ft, shared_data, tmp_path, capsys):
    from fireact_core.formats import read_trajectories
    from fireact_core.training_rule import training_messages

    data = _chat_file(shared_data, 5, tmp_path / "chat.jsonl")
    rc = cli(["train-openai", "--data", str(data), "--model", "gpt-3.5-turbo-0613", "--epochs", "3", "--poll", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert list(ft.files) == ["file-0001"]
    sent = [json.loads(x) for x in ft.files["file-0001"]["bytes"].decode().splitlines()]
    want = [{"messages": training_messages(t)} for t in read_trajectories(data)]
    assert sorted(sent, key=json.dumps) == sorted(want, key=json.dumps) and len(sent) == 5
    assert all(m["messages"][-1]["role"] == "assistant" for m in sent)
    job = ft.jobs["ftjob-0001"]
    assert job["model"] == "gpt-3.5-turbo-0613" and job["training_file"] == "file-0001"
    assert job["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}
    for status in ("validating_files", "queued", "running", "succeeded"):
        assert f"job ftjob-0001: {status}" in out
    assert "Step 1/2: training loss=1.23" in out
    assert "fine-tuned model: ft:gpt-3.5-turbo-0613:org-test:fireact:0001" in out


def test_train_openai_validation_split_and_failed_job(monkeypatch, shared_data, tmp_path, capsys):
    with FineTuneServer(fail=True) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        data = _chat_file(shared_data, 10, tmp_path / "chat.jsonl")
        rc = cli(["train-openai", "--data", str(data), "--val-size", "2", "--base-url", server.url, "--poll", "0"])
        out = capsys.readouterr().out
    assert rc == 1 and "job ftjob-0001: failed" in out and "The job failed (scripted)." in out
    assert len(server.files) == 2 and server.jobs["ftjob-0001"]["validation_file"] == "file-0002"
    assert len(server.files["file-0002"]["bytes"].decode().splitlines()) == 2


def test_train_openai_bad_key_and_bad_data(ft, shared_data, tmp_path, monkeypatch, capsys):
    data = _chat_file(shared_data, 2, tmp_path / "chat.jsonl")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    assert cli(["train-openai", "--data", str(data), "--poll", "0"]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "Incorrect API key" in err and "Traceback" not in err
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(data.read_text().splitlines()[0] + "\n{\"messages\": []}\n")
    n = len(ft.requests)
    assert cli(["train-openai", "--data", str(bad)]) == 2
    assert f"{bad}:2:" in capsys.readouterr().err
    assert len(ft.requests) == n  # nothing was uploaded
    monkeypatch.delenv("OPENAI_API_KEY")
    assert cli(["train-openai", "--data", str(data)]) == 2
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err


def test_train_openai_unreachable_server(monkeypatch, shared_data, tmp_path, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    data = _chat_file(shared_data, 2, tmp_path / "chat.jsonl")
    assert cli(["train-openai", "--data", str(data), "--base-url", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the OpenAI API" in err and len(err.strip().splitlines()) == 1
