"""`fireact space deploy OWNER/NAME`: create or update the app's Hugging Face Space in one commit.

    fireact space deploy you/fireact-arena [--hardware zero-a10g] [--private] [--dataset you/fireact-ratings]
        [--default-adapter you/smollm2-fireact] [--secret OPENAI_API_KEY] [--variable FIREACT_K_RATERS=5]
    fireact space deploy you/fireact-arena --dry-run      # the files it would upload, nothing sent

Registered with `fireact` as an entry point of the `fireact.commands` group (pyproject.toml), like
the trainer's commands. Through `huggingface_hub` (`HF_ENDPOINT` and `HF_TOKEN` or `hf auth login`,
as it reads them): `create_repo(repo_type="space", space_sdk="gradio", exist_ok=True)`, the
variables and secrets (`add_space_variable`, `add_space_secret`), then ONE commit holding exactly
`space.manifest.space_files()` (and removing what an earlier deploy left that is no longer in the
list), then the hardware (`request_space_hardware`). Binary files travel the Hub's way: the Hub's
preupload answer sends them through Xet (or git-lfs where `hf_xet` is missing or
`HF_HUB_DISABLE_XET=1`), so this repository's history is never rewritten. It prints the Space's URL.

A secret's value is read from the environment only (`--secret KEY` reads `$KEY`), so it is never
typed on a command line, and never printed.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fireact_core.errors import InputError
from space.manifest import KEEP_REMOTE, ROOT, front_matter, requirement_pins, space_files

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class DeployPlan:
    """What a deploy sends: the Space, its files, settings, and the README it uploads."""

    repo_id: str
    root: Path = ROOT
    files: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # values never printed
    hardware: str | None = None
    private: bool = False
    dataset: str | None = None
    readme: bytes = b""

    def size(self) -> int:
        return sum((self.root / p).stat().st_size for p in self.files)


def space_readme(root: Path, *, adapter_repo: str | None = None, dataset: str | None = None) -> bytes:
    """README.md as uploaded: unchanged, or with the default adapter repo added to `preload_from_hub`
    and `models`, and the ratings dataset to `datasets` (the Hub links the Space to both)."""
    raw = (Path(root) / "README.md").read_bytes()
    if not adapter_repo and not dataset:
        return raw
    meta = front_matter(root)
    if adapter_repo:
        for key in ("preload_from_hub", "models"):
            items = list(meta.get(key) or [])
            if not any(str(i).split()[0] == adapter_repo for i in items):
                items.append(adapter_repo)
            meta[key] = items
    if dataset:
        meta["datasets"] = [*(d for d in (meta.get("datasets") or []) if d != dataset), dataset]
    text = raw.decode("utf-8")
    body = text[text.find("\n---", 4) + len("\n---"):]
    return ("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---" + body).encode("utf-8")


def _pairs(items: list[str], *, what: str, values_allowed: bool) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not KEY.fullmatch(key):
            raise InputError(f"--{what} {key!r}: a name is letters, digits and _ (not starting with a digit)")
        if sep and not values_allowed:
            raise InputError(f"--secret {key}: give only the name; the value is read from ${key} in the environment, "
                             "so it never lands in your shell history")
        if not sep:
            if key not in os.environ:
                raise InputError(f"--{what} {key}: ${key} is not set in the environment")
            value = os.environ[key]
        out[key] = value
    return out


def check_front_matter(root: Path) -> None:
    """Refuse a README whose front matter would not build (the builder installs `sdk_version`'s gradio)."""
    meta = front_matter(root)
    pin = requirement_pins(root).get("gradio")
    if meta.get("sdk") != "gradio" or meta.get("app_file") != "app.py":
        raise InputError("README.md's front matter must say `sdk: gradio` and `app_file: app.py`")
    if not meta.get("python_version") or str(meta.get("sdk_version")) != pin:
        raise InputError(f"README.md's front matter needs python_version and sdk_version equal to requirements.txt's "
                         f"gradio pin ({pin}); it says python_version={meta.get('python_version')!r}, "
                         f"sdk_version={meta.get('sdk_version')!r}")


def plan(args: argparse.Namespace, root: Path = ROOT) -> DeployPlan:
    """Check the arguments and the checkout, and gather everything a deploy sends (no network)."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repo_id):
        raise InputError(f"{args.repo_id!r} is not a Space id like OWNER/NAME")
    check_front_matter(root)
    variables = _pairs(args.variable or [], what="variable", values_allowed=True)
    secrets = _pairs(args.secret or [], what="secret", values_allowed=False)
    if args.dataset:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.dataset):
            raise InputError(f"--dataset {args.dataset!r} is not a dataset id like OWNER/NAME")
        variables["FIREACT_HUB_DATASET"] = args.dataset
    if args.default_adapter:
        variables["FIREACT_DEFAULT_ADAPTER"] = args.default_adapter
    both = set(variables) & set(secrets)
    if both:
        raise InputError(f"{', '.join(sorted(both))}: a name is either a variable or a secret, not both")
    return DeployPlan(args.repo_id, root, space_files(root), variables, secrets, args.hardware, args.private,
                      args.dataset, space_readme(root, adapter_repo=args.default_adapter, dataset=args.dataset))


def deploy(p: DeployPlan, *, message: str = "Deploy FireAct Arena", log=print) -> str:
    """Create or update the Space as planned; return its URL. Hub failures become one-line `HubError`s."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    from train.hub import HubError, _call, endpoint

    token = get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(endpoint=endpoint(), token=token)
    _call("checking the token", api.whoami)
    _call(f"creating the Space {p.repo_id}", api.create_repo, p.repo_id, repo_type="space", space_sdk="gradio",
          private=p.private or None, exist_ok=True)
    if p.dataset:  # where the app pushes its Parquet snapshots; private: ratings name their raters
        _call(f"creating the dataset {p.dataset}", api.create_repo, p.dataset, repo_type="dataset", private=True,
              exist_ok=True)
        if "HF_TOKEN" not in p.secrets:
            log(f"note: the Space pushes to {p.dataset} with its HF_TOKEN secret; pass --secret HF_TOKEN "
                "(a token that may write there) unless the Space has one")
    for key, value in p.variables.items():
        _call(f"setting the variable {key}", api.add_space_variable, p.repo_id, key, value)
        log(f"variable {key} = {value}")
    for key, value in p.secrets.items():
        _call(f"setting the secret {key}", api.add_space_secret, p.repo_id, key, value)
        log(f"secret {key} set")
    remote = _call("listing the Space's files", api.list_repo_files, p.repo_id, repo_type="space")
    stale = sorted(set(remote) - set(p.files) - set(KEEP_REMOTE))
    ops: list = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=p.readme if f == "README.md" else
                                    str(p.root / f)) for f in p.files]
    ops += [CommitOperationDelete(path_in_repo=f) for f in stale]
    info = _call(f"uploading to {p.repo_id}", api.create_commit, p.repo_id, repo_type="space", operations=ops,
                 commit_message=message)
    log(f"committed {len(p.files)} files ({p.size() / 1e6:.1f} MB)"
        + (f", removed {len(stale)} no longer needed ({', '.join(stale[:5])}{'…' if len(stale) > 5 else ''})"
           if stale else "") + f": {getattr(info, 'commit_url', '')}")
    if p.hardware:
        _call(f"requesting {p.hardware}", api.request_space_hardware, p.repo_id, p.hardware)
        log(f"hardware {p.hardware} requested")
    subdomain = p.repo_id.replace("/", "-").replace("_", "-").replace(".", "-").lower()
    app_url = f"https://{subdomain}.hf.space"
    url = f"{endpoint()}/spaces/{p.repo_id}"
    log(f"Space: {url}  (the app, once built: {app_url})")
    return url


def hardware_choices() -> list[str]:
    try:
        from huggingface_hub import SpaceHardware
    except ImportError:  # pragma: no cover - huggingface_hub is a requirement
        return []
    return [h.value for h in SpaceHardware]


def make_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`fireact space`: the Hugging Face Space of the app (`deploy`)."""
    p = sub.add_parser("space", help="deploy the app as a Hugging Face Space",
                       description="The app as a Hugging Face Space. `deploy` creates or updates it in one commit "
                                   "with exactly the files the app needs (space/manifest.py).")
    actions = p.add_subparsers(dest="space_command", metavar="ACTION")
    d = actions.add_parser("deploy", help="create or update a Space with the app",
                           description=__doc__.split("\n\n")[0] + " Token and endpoint: HF_TOKEN / `hf auth login`, "
                                       "HF_ENDPOINT, as huggingface_hub reads them.")
    d.add_argument("repo_id", metavar="OWNER/NAME", help="the Space")
    d.add_argument("--hardware", choices=hardware_choices() or None, metavar="FLAVOR",
                   help="request hardware, e.g. cpu-basic, zero-a10g (ZeroGPU), t4-small")
    d.add_argument("--private", action="store_true", help="create the Space private (an existing one keeps its "
                                                          "visibility)")
    d.add_argument("--dataset", metavar="OWNER/NAME", help="the ratings dataset (FIREACT_HUB_DATASET), created "
                                                            "private if missing")
    d.add_argument("--default-adapter", metavar="REPO", help="the default adapter's Hub repo "
                                                              "(FIREACT_DEFAULT_ADAPTER), preloaded at build")
    d.add_argument("--secret", action="append", metavar="KEY", help="a Space secret, its value read from $KEY "
                                                                    "(repeatable; e.g. OPENAI_API_KEY, HF_TOKEN)")
    d.add_argument("--variable", action="append", metavar="KEY[=VALUE]",
                   help="a Space variable (repeatable; without =VALUE, from $KEY)")
    d.add_argument("--message", default="Deploy FireAct Arena", help="the commit message")
    d.add_argument("--dry-run", action="store_true", help="list the files and settings; send nothing")
    d.set_defaults(func=run_deploy)
    p.set_defaults(func=lambda _args: p.print_help() or 2)
    return p


def run_deploy(args: argparse.Namespace) -> int:
    p = plan(args)
    if args.dry_run:
        for f in p.files:
            print(f"{(p.root / f).stat().st_size:>12,}  {f}")
        print(f"{len(p.files)} files, {p.size() / 1e6:.1f} MB; variables: {', '.join(p.variables) or 'none'}; "
              f"secrets: {', '.join(p.secrets) or 'none'}; hardware: {p.hardware or 'unchanged'}")
        return 0
    deploy(p, message=args.message)
    return 0
