"""`fireact world --seed S --out DIR`: generate the offline world (and, optionally, teacher trajectories).

A command this package adds to `fireact` (the `fireact.commands` entry point in pyproject.toml)."""

from __future__ import annotations

import argparse


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`fireact world`'s parser, added to `fireact`'s subcommands."""
    p = sub.add_parser("world", help="generate the offline world: encyclopedia, questions, teacher trajectories",
                       description="Generate the offline world deterministically: the same seed gives the same "
                                   "bytes. Writes corpus.jsonl, entities.jsonl, questions/{train,dev,test}.jsonl, "
                                   "manifest.json and README.md, and with --trajectories N a mixed, EM-filtered "
                                   "set of scripted-teacher trajectories in trajectories/train.jsonl.")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0, the shipped world)")
    p.add_argument("--out", default="data/world", help="output folder (default data/world)")
    p.add_argument("--size", type=float, default=1.0, help="scale every entity count (default 1.0; tests use less)")
    p.add_argument("--trajectories", type=int, default=0, metavar="N",
                   help="also write N scripted-teacher training trajectories (ReAct, CoT, Reflexion; some noisy; "
                        "the shipped world has 1350)")
    p.add_argument("--bridge3", type=float, default=None, metavar="SHARE",
                   help="share of 3-hop bridge trajectories among them (default 0.35; a 3-hop question gets up to "
                        "three trajectories, with different wordings)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from fireact_core.errors import ConfigError
    from worldgen.files import write_manifest, write_world

    # Every flag is checked before anything is written (training_set checks --bridge3 again, for its other callers).
    if args.size <= 0 or args.size > 10:
        raise ConfigError(f"--size must be in (0, 10], got {args.size}")
    if args.trajectories < 0:
        raise ConfigError("--trajectories must be at least 0")
    if args.bridge3 is not None and not 0.0 <= args.bridge3 <= 1.0:
        raise ConfigError(f"--bridge3 must be a share in [0, 1], got {args.bridge3}")
    out = Path(args.out)
    t0 = time.perf_counter()
    manifest = write_world(args.seed, out, args.size)
    print(f"world: {manifest['n_entities']:,} entities, questions "
          + ", ".join(f"{s} {n:,}" for s, n in manifest["n_questions"].items())
          + f" ({time.perf_counter() - t0:.1f} s)")
    if args.trajectories:
        from fireact_core.formats import write_trajectories
        from worldgen.teacher import BRIDGE3_SHARE, ScriptedTeacher

        t1 = time.perf_counter()
        teacher = ScriptedTeacher(out, seed=args.seed)
        bridge3 = BRIDGE3_SHARE if args.bridge3 is None else args.bridge3
        trajs, stats = teacher.training_set(n=args.trajectories, seed=args.seed, bridge3=bridge3)
        write_trajectories(trajs, out / "trajectories" / "train.jsonl", "trajectories")
        manifest = write_manifest(out, args.seed, args.size, {"trajectories": stats})
        print(f"trajectories: {stats['kept']:,} kept ({stats['dropped_by_em']} dropped by EM); by method "
              + ", ".join(f"{k} {v}" for k, v in stats["by_method"].items())
              + "; by hops " + ", ".join(f"{k} {v}" for k, v in stats["by_hops"].items())
              + f"; noisy {sum(v for k, v in stats['by_noise'].items() if k != 'off')} ({time.perf_counter() - t1:.1f} s)")
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {out}/ ({total / 1e6:.1f} MB)")
    return 0
