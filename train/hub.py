"""Publish adapters to the Hugging Face Hub and find the ones others published (tag `fireact`).

`HF_ENDPOINT` is read when a function runs (not when huggingface_hub was imported), so a
test or a mirror can point it elsewhere. The token comes from `HF_TOKEN` or `hf auth login`.
Every failure to reach or use the Hub becomes a one-line `HubError`; the local folder is never
touched. Connection errors are caught by class: huggingface_hub raises `OfflineModeIsEnabled`
when `HF_HUB_OFFLINE` is set, and its HTTP client's errors (httpx / httpx2) are not `OSError`s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact_core.errors import FireActError

TAG = "fireact"
IGNORE = ["checkpoints/*", "merged/*", "*.pt", "training_args.bin"]


class HubError(FireActError):
    """The Hub could not be reached or refused the request."""


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = []
    for mod in ("httpx2", "httpx"):  # huggingface_hub 2.x uses httpx2, 1.x httpx
        try:
            errors.append(__import__(mod).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a Hub call; turn every Hub/connection failure into a one-line `HubError`."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        return fn(*args, **kwargs)
    except OfflineModeIsEnabled:
        raise HubError(f"{what}: offline mode is on (HF_HUB_OFFLINE is set); unset it to reach the Hub") from None
    except _connection_errors() as e:
        raise HubError(f"{what}: cannot reach the Hub at {endpoint()} ({type(e).__name__}: {_one_line(e)})") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 401:
            raise HubError(f"{what}: the Hub rejected the token (401); set HF_TOKEN to a valid token "
                           "or run `hf auth login`") from None
        if status == 403:
            raise HubError(f"{what}: the token may not write there (403): {_one_line(e)}") from None
        raise HubError(f"{what}: the Hub answered {status}: {_one_line(e)}") from None
    except ValueError as e:  # e.g. invalid README metadata reported by validate-yaml
        raise HubError(f"{what}: {' '.join(str(e).split())}") from None


def push(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
         commit_message: str = "Upload FireAct adapter") -> str:
    """Create `repo_id` (if needed) and upload the adapter folder; return the repo URL."""
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise HubError(f"{folder} is not an adapter folder (no adapter_config.json)")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(endpoint=endpoint(), token=token)
    _call("checking the token", api.whoami)
    _call(f"creating {repo_id}", api.create_repo, repo_id, private=private, exist_ok=True, repo_type="model")
    _call(f"uploading to {repo_id}", api.upload_folder, folder_path=str(folder), repo_id=repo_id,
          repo_type="model", commit_message=commit_message, ignore_patterns=IGNORE)
    return f"{endpoint()}/{repo_id}"


@dataclass
class HubAdapter:
    """One published FireAct model as a listing shows it."""

    repo_id: str
    base_model: str | None = None
    downloads: int = 0
    likes: int = 0
    summary: str = ""
    tags: list[str] = field(default_factory=list)

    def format(self) -> str:
        return f"{self.repo_id}  (base {self.base_model or '?'}, {self.downloads:,} downloads)  {self.summary}"


def _readme(repo_id: str, token: str | None) -> str:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, "README.md", endpoint=endpoint())
    resp = get_session().get(url, headers=build_hf_headers(token=token), follow_redirects=True)
    if resp.status_code == 404:
        return ""
    hf_raise_for_status(resp)
    return resp.text


def discover(tag: str = TAG, *, limit: int = 50, search: str | None = None, token: str | None = None,
             with_summary: bool = True) -> list[HubAdapter]:
    """Models on the Hub tagged `tag`, most downloaded first: name, base, downloads, a line of the card."""
    from huggingface_hub import HfApi

    from train.card import first_line

    api = HfApi(endpoint=endpoint(), token=token)
    models = _call("listing models", lambda: list(api.list_models(filter=tag, search=search, sort="downloads",
                                                                  limit=limit, cardData=True)))
    found = []
    for m in models:
        data = m.card_data.to_dict() if m.card_data is not None else {}
        base = data.get("base_model")
        if isinstance(base, list):
            base = base[0] if base else None
        summary = _call(f"reading {m.id}'s card", _readme, m.id, token) if with_summary else ""
        found.append(HubAdapter(m.id, base, m.downloads or 0, m.likes or 0, first_line(summary)[:200],
                                list(m.tags or [])))
    return found
