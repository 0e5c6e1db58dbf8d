"""The closed loop end to end, on a tiny recipe: ratings in DuckDB → adapter folder → the app lists it →
a battle with it streams.

The app runs on 127.0.0.1 with the real SmolLM2 on the local side (a scripted model on the prompted
side). The store holds battles between world trajectories, with blind votes, a thumbs up and a step
labelled wrong. The admin button's endpoint (`/train_adapter`) runs `train.loop.run_loop` in a
child process (the server answers requests meanwhile): it exports the rated set, trains LoRA for two steps on one CPU thread, compares the new
adapter with the bundled one on a held-out world question, writes the card and registers the
adapter; then a battle against the new adapter streams its tokens. `fireact loop` (the CLI) runs the
same function; its options are checked without training.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("gradio_client")

from test_app_e2e import _free_port, client

from fireact_core.formats import read_trajectories
from fireact_core.store import Store

ROOT = Path(__file__).resolve().parents[1]
WORLD_TRAJECTORIES = ROOT / "data" / "world" / "trajectories" / "train.jsonl"
BUNDLED = ROOT / "data" / "adapters" / "default"
TINY = {"max_length": 320, "learning_rate": 2e-3, "per_device_train_batch_size": 2, "logging_steps": 1,
        "warmup_steps": 0, "lr_scheduler_type": "constant", "save_steps": 1000, "seed": 0, "lora_r": 4,
        "lora_alpha": 8, "lora_dropout": 0.0, "cpu_threads": 1, "max_steps": 2, "val_size": 0,
        "load_in_4bit": False, "activation_checkpointing": False, "data": [], "datasets": []}


def _rated_store(path: Path) -> tuple[Store, list[str]]:
    """Four blind battles between world trajectories; A wins three, one is a tie; a thumbs up; a bad step."""
    store = Store.open(path)
    trajs = list(read_trajectories(WORLD_TRAJECTORIES))[:8]
    battles = []
    for i in range(4):
        a, b = trajs[2 * i], trajs[2 * i + 1]
        a.agent.role, b.agent.role = "finetuned", "prompted"
        battles.append(f"battle{i}")
        store.save_battle(battles[-1], run_a=a, run_b=b, blind=True, rater_id="r1")
        store.record_vote(battles[-1], "r1", "tie" if i == 3 else "a")
    store.rate(trajs[1].id, "r2", source="arena", score=1)  # a lost run rated up by someone else: rating 0
    store.rate(trajs[2].id, "r2", source="queue", step_idx=1, thought_ok=False)  # its second step is wrong
    return store, battles


@pytest.fixture(scope="module")
def looped(tmp_path_factory):
    from app import create_app
    from fireact_core import models
    from space.config import AppConfig
    from space.fakes import fake_loader, fake_tools
    from space.loading import CachedLoader

    try:
        models.resolve_base(None)
    except Exception as e:  # no bundled GGUF and no cached model: nothing to train
        pytest.skip(f"SmolLM2 is not available here: {e}")
    tmp = tmp_path_factory.mktemp("loop")
    recipe = tmp / "tiny.yaml"
    recipe.write_text("# a tiny recipe: two steps of LoRA on the rated set alone\n" + yaml.safe_dump(TINY))
    store, battles = _rated_store(tmp / "app.duckdb")
    local = CachedLoader()

    def loader(spec: str, adapter: str | None) -> object:
        return fake_loader(spec, adapter) if spec.startswith("fake") else local(spec, adapter)

    cfg = AppConfig(store=store, load_model=loader, make_tools=fake_tools, space=False, max_steps=1,
                    prompted_choices=lambda: [("Fake scripted model", "fake:scripted")],
                    finetuned_choices=lambda: [("Bundled", f"adapter:{BUNDLED}")], hub_choices=lambda: [],
                    more_questions=None, adapters_dir=tmp / "adapters",
                    loop_options={"recipe": str(recipe), "eval_questions": 1, "predecessor": str(BUNDLED),
                                  "eval_options": "--max-steps 1 --max-tokens 24 --tools corpus", "name": "loop-1",
                                  "work_dir": tmp / "work"})
    demo = create_app(cfg)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    c = client(f"http://127.0.0.1:{port}/")
    job = c.submit(str(recipe), "", api_name="/train_adapter")
    answered = _while_training(demo.fireact_runtime, f"http://127.0.0.1:{port}/config")
    final = job.result(timeout=600)
    try:
        yield {"client": c, "rt": demo.fireact_runtime, "progress": job.outputs(), "final": final, "answered": answered,
               "adapter": tmp / "adapters" / "loop-1", "battles": battles}
    finally:
        demo.close()


def _while_training(rt, url: str) -> list[tuple[int, int]]:
    """(training child's PID, HTTP status) of requests to the server made while the child runs."""
    import urllib.request

    answered = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (rt.loop_job is None or rt.loop_job.process is None):
        time.sleep(0.05)
    while rt.loop_job is not None and rt.loop_job.process is not None and rt.loop_job.process.poll() is None:
        with urllib.request.urlopen(url, timeout=30) as r:
            answered.append((rt.loop_job.pid, r.status))
        time.sleep(0.5)
    return answered


def test_the_training_runs_in_a_child_while_the_server_answers(looped):
    answered = looped["answered"]
    assert answered, "the training child ended before a request was made"
    assert all(pid != os.getpid() and status == 200 for pid, status in answered), answered
    assert looped["rt"].loop_job.process.returncode == 0


def test_the_loop_trains_an_adapter_from_the_ratings(looped):
    final, out = looped["final"], looped["adapter"]
    assert "The fine-tuned side offers it now." in final, final
    assert len(looped["progress"]) >= 3 and any("2/4 training" in p for p in looped["progress"])  # progress streamed
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "fireact.json"} <= {p.name for p in
                                                                                                out.iterdir()}
    loop = json.loads((out / "fireact.json").read_text())["loop"]
    # battle0-2: A won (kept), B lost (dropped: rated down), except run 1, lost and then rated up: its mean 0
    # is not "rated down", and it is EM-correct; battle3: a tie, both EM-correct. Run 2 is cut at its step 2.
    assert loop["rule"]["keep"] == "rated_or_em" and loop["battles"] == looped["battles"]
    assert loop["trajectories"] == 6 and loop["step_labels"] == 1 and loop["training"]["steps"] == 2
    c = loop["comparison"]
    assert c["questions"] == 1 and c["split"] == "test" and c["predecessor"]["adapter"] == str(BUNDLED)
    assert c["new"]["em"] in (0.0, 1.0) and c["predecessor"]["em"] in (0.0, 1.0)
    card = (out / "README.md").read_text()
    assert "## Learned from" in card and "`battle0`" in card and "| predecessor (`default`) |" in card
    assert card.index("## Learned from") < card.index("## Licence")


def test_the_app_offers_the_new_adapter_and_a_battle_with_it_streams(looped):
    rt, out = looped["rt"], looped["adapter"]
    assert rt.finetuned_choices()[0] == ("Loop adapter: loop-1", f"adapter:{out}")
    c = looped["client"]
    job = c.submit("What is the capital of France?", "fake:scripted", "react", 2, f"adapter:{out}", "off", 0.5, 0,
                   False, api_name="/battle")
    _, _, b, _ = job.result(timeout=300)
    streamed = [o[2] for o in job.outputs() if o[2]]
    assert any('data-status="running"' in s for s in streamed), streamed[-1]
    assert 'data-status="error"' not in b, b
    assert re.search(r"[\d,]+ → [1-9][\d,]* tok", b)  # the new adapter's side generated tokens
    assert "loop-1" in b  # not blind: the side names its adapter
    (run,) = [r for r in rt.store.runs_table() if r["adapter"] == str(out)]
    assert run["agent_key"] == "smollm2 + loop-1 · fine-tuned"


def test_fireact_loop_options_and_a_store_with_nothing_rated(tmp_path, capsys):
    from fireact_core.cli import main

    store = Store.open(tmp_path / "empty.duckdb")
    store.close()
    assert main(["loop", "--db", str(tmp_path / "empty.duckdb"), "--recipe", "smollm2-135m-world",
                 "--adapters-dir", str(tmp_path / "adapters"), "--name", "x"]) == 2
    assert "rate some battles first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["loop", "--db", str(tmp_path / "empty.duckdb"), "--recipe", "smollm2-135m-world", "--keep", "best"])
