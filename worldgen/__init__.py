"""The offline world: a generated encyclopedia, HotpotQA-style questions about it, and a scripted teacher.

A development package beside the library (it imports `fireact_core`, never the other way): it made
`data/world/`, which the library and the app read as data; `fireact world` and `fireact generate
--teacher scripted` load it when asked.

- `generator.build_world(seed)`: entities (people, cities, countries, organisations, films, books,
  bands, albums, teams) whose relations form chains; `names` makes their invented names;
- `articles.corpus(world)`: one 2–4 sentence article per entity (`{"title", "text"}`);
- `questions.make_questions(world, seed)`: bridge (2 and 3 hops), comparison and self-contained
  questions with gold answers, supporting articles and held-out train/dev/test splits;
- `files.write_world(seed, out)`: all of it on disk (`fireact world --seed S --out DIR`);
- `teacher.load()` / `teacher.ScriptedTeacher`: a `Model` that knows the facts and writes
  ReAct, CoT and Reflexion trajectories through the real agent loop (`policy.py`).
"""
