"""End to end: the app on 127.0.0.1 with scripted fake models, driven through gradio_client.

A battle streams; a vote lands in DuckDB and the leaderboard counts it; thumbs, step labels
and annotation-queue ratings land; a raising backend leaves the other side working.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py lives at the repository root, outside the packages
    sys.path.insert(0, str(ROOT))

pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402

from fireact_core.formats import read_trajectories  # noqa: E402
from fireact_core.trajectory import Step, Trajectory  # noqa: E402


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app import create_app
    from space.fakes import fake_config

    db = tmp_path_factory.mktemp("app") / "app.duckdb"
    demo = create_app(fake_config(db, k_raters=2, export_dir=str(tmp_path_factory.mktemp("exports"))))
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", demo.fireact_runtime.store
    demo.close()


def client(url: str) -> Client:
    # plain HTTP on loopback: with ssl_verify on, gradio_client loads the CA bundle on every request
    return Client(url, verbose=False, download_files=False, ssl_verify=False)


def battle(c: Client, question: str, prompted: str = "fake:scripted", finetuned: str = "model:fake:tuned", *,
           blind: bool = False, noise: str = "off", p: float = 0.5, seed: int = 0, prompting: str | None = None):
    # without `prompting` the call sends the first nine inputs only, as older clients do: the default applies
    extra = () if prompting is None else (prompting,)
    job = c.submit(question, prompted, "react", 2, finetuned, noise, p, seed, blind, *extra, api_name="/battle")
    final = job.result(timeout=60)
    return job.outputs(), final


def steps_of(side_html: str) -> list[str]:
    return re.findall(r'<details class="fa-step[^"]*" data-step="(\d+)"', side_html)


def test_a_battle_streams_and_ends_with_both_result_rows(app):
    url, store = app
    c = client(url)
    outs, (status, a, b, reveal) = battle(c, "What is the capital of France?", prompted="fake:slow")
    assert len(outs) >= 4  # the slow side streamed several updates
    sides_seen = {o[1] for o in outs if o[1]}
    assert any('data-status="running"' in s for s in sides_seen)  # a partial state reached the client
    assert "Both agents finished" in status and reveal == ""
    for side in (a, b):
        assert 'data-status="done"' in side and 'data-em="1.0"' in side
        assert steps_of(side) == ["0", "1"] and "search[France]" in side and "finish[Paris]" in side
    assert "prompted: fake:slow · react 2-shot" in a and "finetuned: fake:tuned · fine-tuned" in b  # not blind
    # the default prompting setup: the best-effort prompted agent, named by it on the page and in the store
    assert "prompted: fake:slow · react 2-shot · nearest · scratchpad · constrained · extractive" in a
    keys = [r["agent_key"] for r in store.runs_table() if r["agent_key"].startswith("fake:slow")]
    assert keys and all("nearest · scratchpad · constrained · extractive" in k for k in keys)
    _, (status, a, _, _) = battle(c, "What is the capital of France?", prompting="chat")  # the tenth input
    assert "Both agents finished" in status and "prompted: fake:scripted · react 2-shot</span>" in a


def test_a_blind_vote_lands_in_duckdb_and_the_leaderboard_counts_it(app):
    url, store = app
    c = client(url)
    _, (_, a, b, _) = battle(c, "Which river flows through the capital of France?", blind=True)
    assert "fake:tuned" not in a + b and "fake:scripted" not in a + b  # names hidden before the vote
    votes_before = store.count("votes")
    reveal, a2, b2 = c.predict(api_name="/vote_b")
    assert "your vote (<b>B is better</b>) is saved" in reveal
    assert "fake:tuned" in a2 + b2 and "fake:scripted" in a2 + b2  # revealed after
    assert store.count("votes") == votes_before + 1
    row = store._rows("SELECT v.choice, v.blind, b.blind AS battle_blind FROM votes v JOIN battles b ON b.id = v.battle_id "
                      "ORDER BY v.created_at DESC LIMIT 1")[0]
    assert row == {"choice": "b", "blind": True, "battle_blind": True}
    again = c.predict(api_name="/vote_a")
    assert "already voted" in again[0]
    assert store.count("votes") == votes_before + 1
    agree, table, *_ = c.predict(api_name="/leaderboard")
    rows = {r[0]: r for r in table["data"]}
    assert rows["fake:scripted · react 2-shot · nearest · scratchpad · constrained · extractive"][1] >= 1  # blind battles, default prompting
    assert rows["fake:tuned · fine-tuned"][1] >= 1
    assert "blind votes" in agree and re.search(r"<b>(\d+)</b> blind votes", agree).group(1) == str(
        len(store.blind_comparisons()))


def test_a_non_blind_vote_is_stored_but_not_counted(app):
    url, store = app
    c = client(url)
    battle(c, "What is the capital of France?", blind=False)
    blind_before = len(store.blind_comparisons())
    c.predict(api_name="/vote_tie")
    assert len(store.blind_comparisons()) == blind_before
    assert store._scalar("SELECT count(*) FROM votes WHERE NOT blind") >= 1


def test_thumbs_and_a_step_label_land(app):
    url, store = app
    c = client(url)
    battle(c, "What is the capital of France?")
    assert "Saved" in c.predict(api_name="/thumb_a_up")
    assert "Saved" in c.predict(api_name="/thumb_b_down")
    msg = c.predict("A", 1, "wrong", "useful", "searched the country, not the city", api_name="/rate_step")
    assert "step 1" in msg
    bad = c.predict("B", 7, "right", "", "", api_name="/rate_step")
    assert "does not exist" in bad
    rows = store._rows("SELECT step_idx, score, thought_ok, action_ok, comment, source FROM ratings "
                       "ORDER BY created_at DESC LIMIT 3")
    assert rows[0] == {"step_idx": 0, "score": None, "thought_ok": False, "action_ok": True,
                       "comment": "searched the country, not the city", "source": "arena"}
    assert [r["score"] for r in rows[1:]] == [-1, 1]


def test_a_raising_backend_fails_its_side_only(app):
    url, store = app
    c = client(url)
    votes = store.count("votes")
    _, (status, a, b, _) = battle(c, "What is the capital of France?", prompted="fake:raise")
    assert 'data-status="error"' in a and "internal error (RuntimeError)" in a and "Traceback" not in a
    assert 'data-status="done"' in b and 'data-em="1.0"' in b
    assert "cannot be voted on" in status
    refused = c.predict(api_name="/vote_a")[0]
    assert "cannot be voted on" in refused and "There is no such battle" not in refused
    assert "Saved" in c.predict(api_name="/thumb_b_up")  # the side that finished can still be rated
    assert store.count("votes") == votes
    _, (_, a, b, _) = battle(c, "What is the capital of France?", finetuned="model:fake:down")
    assert 'data-status="done"' in a and 'data-status="error"' in b and "fake endpoint is down" in b


def test_a_typed_model_the_app_does_not_offer_is_refused_before_anything_loads(app, monkeypatch):
    """The dropdowns take custom values; a visitor must not make the server fetch any model it names."""
    url, store = app
    c = client(url)
    runs = store.count("runs")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for prompted, finetuned in [("local:someone/a-70b-model", "model:fake:tuned"),
                                ("fake:scripted", "model:local:someone/a-70b-model"),
                                ("openai:gpt-4o", "model:fake:tuned")]:
        _, (status, a, b, _) = battle(c, "What is the capital of France?", prompted=prompted, finetuned=finetuned)
        assert "is not a model this app offers" in status, (prompted, finetuned, status)
        assert not any(isinstance(x, str) and "data-status" in x for x in (a, b))
    assert "OPENAI_API_KEY" in status  # the OpenAI refusal says what would enable it
    assert store.count("runs") == runs


def test_the_random_question_comes_from_the_question_bank(app):
    from space.fakes import QUESTIONS

    url, _ = app
    c = client(url)
    asked = {c.predict(api_name="/random_question") for _ in range(12)}
    assert asked and asked <= {q.question for q in QUESTIONS}


def test_random_noise_replaces_observations_with_earlier_ones_on_both_sides(app):
    url, _ = app
    c = client(url)
    battle(c, "Which river flows through the capital of France?")  # stored observations: the noise pool
    _, (_, a, b, _) = battle(c, "What is the capital of France?", noise="random", p=1.0, seed=5)
    for side in (a, b):
        assert 'data-noise="random"' in side and "⚠ noise" in side
    assert re.findall(r'data-noise="(\w+)"', a) == re.findall(r'data-noise="(\w+)"', b)


def test_a_key_in_a_backend_error_never_reaches_the_page(tmp_path, monkeypatch):
    from app import create_app
    from space.fakes import fake_config

    secret = "sk-test-0123456789abcdef-not-real"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    demo = create_app(fake_config(tmp_path / "leak.duckdb", finetuned_choices=lambda: [("leaky", "model:fake:leaky")]))
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        outs, (_, a, b, _) = battle(client(f"http://127.0.0.1:{port}/"), "What is the capital of France?",
                                         finetuned="model:fake:leaky")
        assert 'data-status="error"' in b and "Incorrect API key provided: [redacted]" in b
        assert secret not in json.dumps([list(o) for o in outs]) and 'data-status="done"' in a
    finally:
        demo.close()


def test_a_question_over_the_limit_gets_a_message(app):
    url, _ = app
    c = client(url)
    _, (status, a, b, _) = battle(c, "why? " * 1000)
    assert "the limit is 4,000" in status
    assert not any(isinstance(x, str) and "data-status" in x for x in (a, b))  # the sides were not touched


def test_noise_is_applied_identically_to_both_sides(app):
    url, _ = app
    c = client(url)
    _, (_, a, b, _) = battle(c, "What is the capital of France?", noise="none", p=1.0, seed=3)
    for side in (a, b):
        assert 'data-noise="none"' in side and "⚠ noise" in side
    assert re.findall(r'data-noise="(\w+)"', a) == re.findall(r'data-noise="(\w+)"', b)


def test_the_annotation_queue_and_an_import(app, tmp_path):
    url, store = app
    path = tmp_path / "trajs.jsonl"
    trajs = [Trajectory(question=f"Imported question {i}?", id=f"imp{i}", gold="x", answer="x", em=1.0,
                        steps=[Step(thought="t", action="finish", argument="x")], agent={"model": "teacher"})
             for i in range(2)]
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajs))
    c1, c2 = client(url), client(url)
    assert "Imported 2 new trajectories" in c1.predict(handle_file(str(path)), "", api_name="/import_trajectories")
    shown = []
    progress, msg, item, *_ = c1.predict(api_name="/queue_next")
    assert c1.predict(api_name="/queue_next")[2] == item  # asking again resumes the same item
    while m := re.search(r'data-run="([^"]+)"', item):  # rate everything this rater is offered
        shown.append(m.group(1))
        before = store._scalar("SELECT count(*) FROM ratings WHERE source = 'queue'")
        progress, msg, item, *_ = c1.predict(api_name="/queue_up")
        assert "Saved" in msg
        assert store._scalar("SELECT count(*) FROM ratings WHERE source = 'queue'") == before + 1
        assert len(shown) < 40
    assert "Nothing left" in msg
    assert len(shown) == len(set(shown)) and {"imp0", "imp1"} <= set(shown)
    assert re.search(r'data-mine="(\d+)"', progress).group(1) == str(len(shown))
    # A second rater still gets the imported items (k = 2), then a skip sends the next one.
    _, _, item, *_ = c2.predict(api_name="/queue_next")
    first = re.search(r'data-run="([^"]+)"', item).group(1)
    label = c2.predict(1, "right", "useful", "", api_name="/queue_rate_step")
    assert "Saved your label for step 1" in label
    _, msg, item2, *_ = c2.predict(api_name="/queue_skip")
    assert "Skipped" in msg or "Nothing left" in msg
    assert first not in item2
    assert store._scalar("SELECT outcome FROM queue_seen WHERE run_id = ? AND rater_id LIKE 'anon:%' AND outcome = "
                         "'skipped'", [first]) == "skipped"


def test_admin_exports_a_training_set(app):
    url, store = app
    c = client(url)
    battle(c, "What is the capital of France?")  # two EM-correct runs at least
    files, msg = c.predict("em", "", api_name="/export_training_set")
    assert "trajectories in the training set" in msg
    n = int(re.search(r"(\d+) trajectories", msg).group(1))
    assert n == len(store.select_training("em")) and n >= 1
    path = files[0]["path"] if isinstance(files[0], dict) else files[0]  # the server's file (same machine)
    back = list(read_trajectories(path))
    assert len(back) == n and all(t.em == 1.0 and t.evidence is not None for t in back)


@pytest.mark.slow
def test_a_battle_with_the_real_smollm2(tmp_path):
    """The embedded default model on both sides (base prompted; base given the question alone)."""
    from app import create_app
    from fireact_core import models
    from space.config import AppConfig
    from space.fakes import fake_tools

    try:
        models.resolve_base(None)
    except Exception as e:  # no bundled GGUF and no cached model: nothing to run
        pytest.skip(f"SmolLM2 is not available here: {e}")
    cfg = AppConfig(db_path=str(tmp_path / "real.duckdb"), make_tools=fake_tools, max_steps=2)
    demo = create_app(cfg)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = client(f"http://127.0.0.1:{port}/")
        _, (status, a, b, _) = battle(c, "What is the capital of France?", prompted="smollm2", finetuned="model:smollm2")
        for side in (a, b):
            assert 'data-status="error"' not in side, side
            assert re.search(r"[\d,]+ → [1-9][\d,]* tok", side)  # a step generated tokens
        assert "Both agents finished" in status
        assert demo.fireact_runtime.store.count("runs") == 2 and demo.fireact_runtime.store.count("battles") == 1
    finally:
        demo.close()


def test_missing_pieces_degrade_into_clear_messages(tmp_path, monkeypatch):
    from fireact_core.errors import ConfigError, InputError
    from space import choices as config

    monkeypatch.setattr(config, "DEFAULT_ADAPTER", tmp_path / "adapters" / "default")
    monkeypatch.setattr(config, "ADAPTERS_DIR", tmp_path / "adapters")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    labels = [label for label, _ in config.default_finetuned_choices()]
    assert labels == ["Default adapter — not trained yet (data/adapters/default missing)"]
    local_bases = list(config.offered_bases().values())  # smollm2, and gemma3 where its files are here
    assert [v for _, v in config.default_prompted_choices()] == local_bases  # no key: no OpenAI entries
    with pytest.raises(ConfigError, match="not there yet"):
        config.parse_finetuned(f"adapter:{tmp_path / 'adapters' / 'default'}")
    (tmp_path / "adapters" / "mine").mkdir(parents=True)
    (tmp_path / "adapters" / "mine" / "adapter_config.json").write_text("{}")
    assert ("Local adapter: mine", f"adapter:{tmp_path / 'adapters' / 'mine'}") in config.default_finetuned_choices()
    assert config.parse_finetuned("ft:gpt-4o-mini:org::abc") == ("openai:ft:gpt-4o-mini:org::abc", None)
    config.check_model("smollm2", list)  # the bundled base is always on offer
    for typed in ("fake:scripted", "local:someone/any-model", "openai:gpt-4o"):
        with pytest.raises(InputError, match="not a model this app offers"):
            config.check_model(typed, lambda: ["smollm2"])
    assert config.parse_finetuned("someone/fireact-smollm2") == ("smollm2", "someone/fireact-smollm2")
    assert config.parse_finetuned(str(tmp_path / "adapters" / "mine")) == ("smollm2", str(tmp_path / "adapters" / "mine"))
    with pytest.raises(InputError, match="not an adapter folder"):
        config.parse_finetuned("no such thing")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-0000")
    assert "openai:gpt-4o-mini" in [v for _, v in config.default_prompted_choices()]
    config.check_model("openai:ft:gpt-4o-mini:org::abc", list)  # with an endpoint set, any OpenAI model
    # Leaderboard keys name a local adapter by its folder (the same on every machine), a Hub one by its id.
    from fireact_core.spec import AgentSpec

    assert AgentSpec(role="finetuned", model="smollm2", adapter=str(tmp_path / "adapters" / "mine"), finetuned=True).key == "smollm2 + mine · fine-tuned"
    assert AgentSpec(role="finetuned", model="smollm2", adapter="someone/x", finetuned=True).key == "smollm2 + someone/x · fine-tuned"
    assert AgentSpec(role="prompted", model="smollm2", method="cot", exemplars=2).key == "smollm2 · cot 2-shot"


def test_secrets_never_reach_the_logs(monkeypatch):
    import io
    import logging

    from app import RedactSecrets

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-0123456789")
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("fireact.test-redact")
    logger.addHandler(handler)
    try:
        raise RuntimeError("401: bad key sk-test-secret-0123456789")
    except RuntimeError:
        logger.exception("call failed with %s", "sk-test-secret-0123456789")
    finally:
        logger.removeHandler(handler)
    out = buf.getvalue()
    assert "sk-test-secret-0123456789" not in out and out.count("[redacted]") >= 2 and "RuntimeError" in out
