"""The store's schema: versioned migrations (applied in order, each in one transaction) and its tables."""

from __future__ import annotations

STEPS_VIEW = """SELECT r.id AS run_id, j.key::INTEGER AS idx, (j.value->>'trial')::INTEGER AS trial,
    j.value->>'thought' AS thought, j.value->>'action' AS action, j.value->>'argument' AS argument,
    j.value->>'observation' AS observation, j.value->>'noise' AS noise, (j.value->>'tokens_in')::INTEGER AS tokens_in,
    (j.value->>'tokens_out')::INTEGER AS tokens_out, (j.value->>'latency_s')::DOUBLE AS latency_s,
    j.value->>'error' AS error
    FROM runs r, json_each(r.trajectory, '$.steps') j"""

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE raters(
            id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, display_name VARCHAR,
            created_at TIMESTAMP NOT NULL, last_seen TIMESTAMP NOT NULL)""",
        """CREATE TABLE runs(
            id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, battle_id VARCHAR, agent_key VARCHAR NOT NULL,
            model VARCHAR, adapter VARCHAR, method VARCHAR, finetuned BOOLEAN,
            noise_mode VARCHAR, noise_p DOUBLE, noise_seed INTEGER,
            task VARCHAR, question VARCHAR NOT NULL, gold VARCHAR, answer VARCHAR, em DOUBLE, f1 DOUBLE,
            status VARCHAR, reason VARCHAR, num_steps INTEGER, time_s DOUBLE,
            tokens_in BIGINT, tokens_out BIGINT, cost_usd DOUBLE,
            trajectory VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)""",
        """CREATE TABLE steps(
            run_id VARCHAR NOT NULL, idx INTEGER NOT NULL, trial INTEGER, thought VARCHAR, action VARCHAR,
            argument VARCHAR, observation VARCHAR, noise VARCHAR, tokens_in INTEGER, tokens_out INTEGER,
            latency_s DOUBLE, error VARCHAR, PRIMARY KEY(run_id, idx))""",
        """CREATE TABLE battles(
            id VARCHAR PRIMARY KEY, question VARCHAR NOT NULL, task VARCHAR, gold VARCHAR,
            run_a VARCHAR NOT NULL, run_b VARCHAR NOT NULL, blind BOOLEAN NOT NULL,
            noise_mode VARCHAR, noise_p DOUBLE, noise_seed INTEGER, rater_id VARCHAR,
            created_at TIMESTAMP NOT NULL)""",
        # One vote per battle: the buttons close after it, and the store enforces it.
        """CREATE TABLE votes(
            id VARCHAR PRIMARY KEY, battle_id VARCHAR NOT NULL UNIQUE, rater_id VARCHAR NOT NULL,
            choice VARCHAR NOT NULL, blind BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL)""",
        # step_idx NULL: the whole trajectory (score +1/-1); else a step (thought_ok/action_ok).
        # Append-only; readers take each (run, rater, step) pair's latest row.
        """CREATE TABLE ratings(
            id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, rater_id VARCHAR NOT NULL, source VARCHAR NOT NULL,
            step_idx INTEGER, score INTEGER, thought_ok BOOLEAN, action_ok BOOLEAN, comment VARCHAR,
            created_at TIMESTAMP NOT NULL)""",
        # The annotation queue's memory: which rater was shown which run (never twice).
        """CREATE TABLE queue_seen(
            run_id VARCHAR NOT NULL, rater_id VARCHAR NOT NULL, outcome VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL, PRIMARY KEY(run_id, rater_id))""",
    ]),
    # What the agent chose to do (Trajectory.chosen_method: answer | react | cot | io), for EM by chosen method.
    (2, ["ALTER TABLE runs ADD COLUMN chosen_method VARCHAR"]),
    # Each trajectory is kept once, as its JSON in `runs`; `steps` becomes a view of it, same columns.
    (3, ["DROP TABLE steps", f"CREATE VIEW steps AS {STEPS_VIEW}"]),
    # A battle whose side failed is kept (its runs stay rateable after a restart) and never voted on.
    (4, ["ALTER TABLE battles ADD COLUMN failed BOOLEAN NOT NULL DEFAULT FALSE"]),
    # The search tool became the arena's choice (corpus, wikipedia, google) and part of the leaderboard
    # key when it is not the offline world (`AgentSpec.key`). An arena run stored before searched the
    # offline world, the arena's only tool then: its record says so now, and its key is unchanged, so the
    # world's entries do not split. A run that named another tool (an import of `fireact eval --tools
    # wikipedia`) gets it in its key, as it would now; a label stored in place of the computed key
    # (`save_run(agent_key=...)`: it neither starts with the model nor names the method) stays as it is.
    (5, [
        """UPDATE runs SET trajectory = json_merge_patch(trajectory, '{"agent": {"tools": "corpus"}}')::VARCHAR
           WHERE source = 'arena' AND trim(coalesce(trajectory->>'$.agent.tools', '')) = ''""",
        """UPDATE runs SET agent_key = agent_key || ' · ' || trim(trajectory->>'$.agent.tools')
           WHERE trim(coalesce(trajectory->>'$.agent.tools', '')) NOT IN ('', 'corpus')
             AND NOT ends_with(agent_key, ' · ' || trim(trajectory->>'$.agent.tools'))
             AND starts_with(agent_key, coalesce(trajectory->>'$.agent.model', ''))
             AND (ends_with(agent_key, ' · fine-tuned')
                  OR contains(agent_key, ' · ' || coalesce(trajectory->>'$.agent.method', '') || ' '))""",
    ]),
    # The prompt format is part of a fine-tuned agent (fireact_core.prompt_formats). Fine-tuned runs stored before
    # ran in chat whatever their record said (a scratchpad setting was ignored): their record says so now, so a
    # rebuilt key or a re-read spec puts them in the same leaderboard entry as new chat runs.
    (6, ["""UPDATE runs SET trajectory = json_merge_patch(trajectory, '{"agent": {"prompt_format": "chat"}}')
        WHERE finetuned AND coalesce(json_extract_string(trajectory, '$.agent.prompt_format'), '') <> 'chat'"""]),
]
TABLES = ("raters", "runs", "steps", "battles", "votes", "ratings", "queue_seen", "schema_version")
