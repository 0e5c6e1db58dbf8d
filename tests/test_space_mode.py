"""What changes on a Hugging Face Space and what guards the app: raters, rate limits, admin, the database's place."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import gradio as gr
import pytest

from fireact_core.errors import ConfigError, InputError
from space.config import AppConfig
from space.fakes import fake_config
from space.raters import RaterLimit, rater_of

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _profile(username: str, orgs: list[str] = ()) -> gr.OAuthProfile:
    """What Gradio injects for a logged-in visitor (the Hub's OpenID userinfo)."""
    return gr.OAuthProfile({"name": username.title(), "preferred_username": username,
                            "profile": f"https://huggingface.co/{username}", "picture": "",
                            "orgs": [{"preferred_username": o, "name": o} for o in orgs]})


def _has_login(demo: gr.Blocks) -> bool:
    return any(isinstance(b, gr.LoginButton) for b in demo.blocks.values())


# --- raters and limits ------------------------------------------------------------------------
def test_a_hub_login_is_the_rater_and_everyone_else_is_an_anonymous_session():
    assert rater_of(_profile("alice"), "s1").id == "hf:alice"
    assert rater_of(_profile("alice"), "s2").id == "hf:alice"  # the same person in another session
    anon = rater_of(None, "session-1")
    assert anon.kind == "anon" and anon.id.startswith("anon:") and "session-1" not in anon.id
    assert rater_of(None, "session-1").id == anon.id != rater_of(None, "session-2").id


def test_limits_and_the_queue_s_k_come_from_the_environment(monkeypatch):
    from fireact_core.errors import ConfigError

    monkeypatch.setenv("FIREACT_K_RATERS", "5")
    monkeypatch.setenv("FIREACT_RATINGS_PER_MINUTE", "7")
    cfg = AppConfig()
    assert (cfg.k_raters, cfg.rate_per_minute) == (5, 7)
    monkeypatch.setenv("FIREACT_K_RATERS", "five")
    with pytest.raises(ConfigError, match="FIREACT_K_RATERS must be an integer"):
        AppConfig()


def test_the_rate_limit_counts_each_rater_in_a_sliding_minute(monkeypatch):
    import space.raters as raters

    now = [1000.0]
    monkeypatch.setattr(raters.time, "monotonic", lambda: now[0])
    limit = RaterLimit(2)
    limit.check("a")
    limit.check("a")
    limit.check("b")  # others are not held back
    with pytest.raises(InputError, match=r"limit 2\); try again in 60 s"):
        limit.check("a")
    now[0] += 61
    limit.check("a")
    RaterLimit(0).check("a")  # 0: no limit


# --- admin ------------------------------------------------------------------------------------
def test_admin_is_the_token_holder_or_the_space_owner_and_loopback_only_without_a_token(tmp_path):
    local = fake_config(tmp_path / "a.duckdb", admin_token=None)
    assert local.is_admin(None, None) and not local.admin_needs_token  # a laptop: its user
    exposed = fake_config(tmp_path / "b.duckdb", admin_token=None, loopback=False)
    assert not exposed.is_admin(None, None) and exposed.admin_needs_token
    assert "FIREACT_ADMIN_TOKEN" in exposed.admin_refusal("export")
    tokened = fake_config(tmp_path / "c.duckdb", admin_token="s3cret-admin-token")
    assert tokened.is_admin(None, " s3cret-admin-token ") and not tokened.is_admin(None, "wrong")
    assert not tokened.is_admin(None, None)
    space = fake_config(tmp_path / "d.duckdb", space=True, admin_token=None, space_owner="alice")
    assert space.is_admin(_profile("alice"), None)
    assert not space.is_admin(_profile("mallory"), None) and not space.is_admin(None, None)
    org = fake_config(tmp_path / "e.duckdb", space=True, admin_token=None, space_owner="fireact-org")
    assert org.is_admin(_profile("bob", ["fireact-org"]), None)  # an organisation's Space: its members
    assert not org.is_admin(_profile("eve", ["other-org"]), None)


def test_an_export_is_refused_without_the_token_and_given_with_it(tmp_path):
    from gradio_client import Client

    from app import create_app

    demo = create_app(fake_config(tmp_path / "app.duckdb", admin_token="s3cret-admin-token",
                                  export_dir=str(tmp_path / "exports")))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, ssl_verify=False)
        refused = c.predict("jsonl", "wrong-token", api_name="/export_tables")
        assert "Only the Space owner or someone with the admin token" in str(refused)
        assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").rglob("*.jsonl"))
        given = c.predict("jsonl", "s3cret-admin-token", api_name="/export_tables")
        assert "s3cret" not in str(given)
        assert any((tmp_path / "exports").rglob("*.jsonl"))
    finally:
        demo.close()


# --- on a Space -------------------------------------------------------------------------------
def test_on_a_space_the_login_button_and_blind_mode_come_on(tmp_path, monkeypatch):
    from gradio import oauth

    from app import create_app

    here = create_app(fake_config(tmp_path / "a.duckdb"))
    assert not _has_login(here)  # elsewhere it fails to build: not created at all
    assert not here.fireact_runtime.cfg.blind
    # What a Space with `hf_oauth: true` sets (gradio reads the OAuth variables at import)
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "tester/fireact-arena")
    for name, value in [("OAUTH_CLIENT_ID", "client-id"), ("OAUTH_CLIENT_SECRET", "client-secret-0000"),
                        ("OAUTH_SCOPES", "openid profile"), ("OPENID_PROVIDER_URL", "https://huggingface.co")]:
        monkeypatch.setattr(oauth, name, value)
    mount = tmp_path / "bucket"
    mount.mkdir()
    monkeypatch.delenv("FIREACT_DB", raising=False)
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    space = create_app(fake_config(None, space=True, bucket_mount=mount))
    assert _has_login(space)
    assert space.fireact_runtime.cfg.blind
    store = space.fireact_runtime.store
    assert not store.path.startswith(str(mount))  # the live file stays on local disk; its copies go to the bucket
    assert space.fireact_runtime.cfg.durable_targets().bucket_dir == mount / "fireact" / "backup"
    assert "fa-db-warning" not in [c.get("props", {}).get("elem_id") for c in space.config["components"]]
    store.close()


def test_the_database_stays_on_local_disk_with_copies_on_the_mounted_bucket_and_says_so_when_there_is_none(
        tmp_path, monkeypatch):
    monkeypatch.delenv("FIREACT_DB", raising=False)
    monkeypatch.delenv("FIREACT_HUB_DATASET", raising=False)
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    mount = tmp_path / "bucket"
    cfg = AppConfig(space=True, bucket_mount=mount)
    path, warning = cfg.db_location()
    assert path == tmp_path / "cache" / "app.duckdb" and "ephemeral" in warning and str(mount) in warning
    assert not cfg.durable_targets().any
    mount.mkdir()
    assert cfg.db_location() == (tmp_path / "cache" / "app.duckdb", None)
    targets = cfg.durable_targets()
    assert targets.bucket_dir == mount / "fireact" / "backup" and targets.interval_s == 30.0
    assert targets.legacy_db == mount / "fireact" / "app.duckdb"  # where an earlier version kept the live file
    monkeypatch.setenv("FIREACT_HUB_DATASET", "tester/ratings")  # a Hub dataset alone also keeps copies, online
    assert "ephemeral" in AppConfig(space=True, bucket_mount=tmp_path / "none").db_location()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert AppConfig(space=True, bucket_mount=tmp_path / "none").db_location()[1] is None
    monkeypatch.setenv("FIREACT_DB", str(tmp_path / "chosen.duckdb"))
    assert cfg.db_location() == (tmp_path / "chosen.duckdb", None)  # the environment decides first
    monkeypatch.setenv("FIREACT_DB", str(mount / "live.duckdb"))
    path, warning = cfg.db_location()
    assert path == mount / "live.duckdb" and "flushes asynchronously" in warning and "Leave FIREACT_DB unset" in warning
    assert AppConfig(space=False, bucket_mount=mount, db_path=None).db_location()[1] is None
    monkeypatch.setenv("FIREACT_BACKUP_INTERVAL_S", "soon")
    with pytest.raises(ConfigError, match="FIREACT_BACKUP_INTERVAL_S must be a number of seconds"):
        AppConfig()


# --- the question bank ------------------------------------------------------------------------
def test_the_question_bank_holds_the_world_and_the_paper_s_sets_on_disk(shared_data, monkeypatch):
    from space.questions import load_question_bank

    monkeypatch.setenv("FIREACT_DATA", str(shared_data))
    bank = load_question_bank(per_task=50)
    tasks = {q.task for q in bank.questions}
    assert tasks == {"world", "hotpotqa", "bamboogle", "strategyqa", "mmlu"}, bank.notes
    assert sum(q.task == "world" for q in bank.questions) == 50
    q = next(q for q in bank.questions if q.task == "bamboogle")
    assert bank.lookup("  " + q.question.upper() + " ") is q and q.answer  # gold found by the question's text
    assert {e.task for e in bank.examples(6)} >= {"world", "hotpotqa"}


def test_without_the_paper_s_data_the_bank_is_the_world_with_a_note_per_missing_set(tmp_path, monkeypatch):
    from fireact_core import tasks
    from space.questions import load_question_bank

    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tasks, "data_dirs", lambda data_dir=None: [ROOT / "data"])  # as if ../shared were not here
    bank = load_question_bank(tasks=(("world", "dev"), ("bamboogle", "test")), per_task=10)
    assert {q.task for q in bank.questions} == {"world"} and len(bank) == 10
    assert len(bank.notes) == 1 and bank.notes[0].startswith("bamboogle:") and "not found" in bank.notes[0]
