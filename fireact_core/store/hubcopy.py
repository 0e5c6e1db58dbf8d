"""Hub dataset snapshots: every push a new folder of Parquet tables, never a file an earlier push wrote.

    snapshots/20261207T034012123456Z-1f2e3d4c/manifest.json    when it was taken, its row counts, schema version
    snapshots/20261207T034012123456Z-1f2e3d4c/<table>.parquet  every table (`TABLES`; the `steps` view too)

Folder names sort by time, so the newest is the last in a listing; a restore reads manifests from
the newest back until one holds rows, then rebuilds a database from that folder's tables with
the schema version they were written under (later migrations then run as on any older file).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

from fireact_core.store.durable import CopyInfo
from fireact_core.store.schema import MIGRATIONS, TABLES

FOLDER = "snapshots"


class HubSnapshots:
    """The snapshots in the Hub dataset `repo_id` (`huggingface_hub`; `HF_ENDPOINT` may name a stand-in)."""

    def __init__(self, repo_id: str, *, token: str | None = None, endpoint: str | None = None) -> None:
        from huggingface_hub import HfApi, constants

        self.repo_id, self.token = repo_id, token
        # read now, not at import, so a mirror or a test server can stand in for the Hub
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.label = f"the Hub dataset {repo_id} snapshot"
        self._created = False

    def _download(self, filename: str, folder: Path) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(self.repo_id, filename, repo_type="dataset", endpoint=self.endpoint,
                                    token=self.token, local_dir=folder))

    def folders(self) -> list[str]:
        """The snapshot folders, oldest first ([] when the dataset or its folder does not exist yet).

        One try per page, no retries (`list_repo_tree` backs off for half a minute on a 5xx): at start a
        Hub that does not answer is reported at once, and the pusher asks again on its next round."""
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url: str | None = f"{self.endpoint}/api/datasets/{self.repo_id}/tree/main/{FOLDER}"
        out: list[str] = []
        while url:
            r = get_session().get(url, headers=build_hf_headers(token=self.token), timeout=15)
            if r.status_code == 404:
                return []
            hf_raise_for_status(r)
            out += [e["path"] for e in r.json() if e.get("type") == "directory"]
            url = r.links.get("next", {}).get("url")
        return sorted(out)

    def latest(self, tries: int = 20) -> CopyInfo | None:
        """The newest snapshot that holds rows (manifests read from the newest back, at most `tries`)."""
        with tempfile.TemporaryDirectory(prefix="fireact-hub-") as tmp:
            for folder in reversed(self.folders()[-tries:]):
                m = json.loads(self._download(f"{folder}/manifest.json", Path(tmp)).read_text())
                info = CopyInfo("hub", folder, datetime.fromisoformat(m["taken_at"]), m["counts"], self.label,
                                m.get("schema_version", 0))
                if not info.empty:
                    return info
        return None

    def push(self, copy: Path, info: CopyInfo) -> str:
        """Upload the database file `copy` (taken as `info` says) as a new snapshot folder; returns the folder."""
        import duckdb
        from huggingface_hub import CommitOperationAdd

        folder = f"{FOLDER}/{info.taken_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory(prefix="fireact-push-") as tmp:
            con = duckdb.connect(str(copy), read_only=True)
            try:
                for table in TABLES:
                    con.execute(f"COPY (SELECT * FROM {table}) TO '{_sql(Path(tmp) / f'{table}.parquet')}' "
                                "(FORMAT parquet)")
            finally:
                con.close()
            manifest = {"taken_at": info.taken_at.isoformat(), "counts": info.counts,
                        "schema_version": info.schema_version, "tables": list(TABLES)}
            (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=1))
            if not self._created:
                self.api.create_repo(self.repo_id, repo_type="dataset", private=True, exist_ok=True)
                self._created = True
            ops = [CommitOperationAdd(f"{folder}/{p.name}", str(p)) for p in sorted(Path(tmp).iterdir())]
            self.api.create_commit(self.repo_id, repo_type="dataset", operations=ops,
                                   commit_message=f"FireAct snapshot: {info.counts.get('runs', 0)} runs, "
                                                  f"{info.counts.get('votes', 0)} votes")
        return folder

    def fetch(self, info: CopyInfo, dest: Path) -> None:
        """Rebuild the database of snapshot `info` as a new file `dest`."""
        with tempfile.TemporaryDirectory(prefix="fireact-hub-") as tmp:
            tables = {t: self._download(f"{info.where}/{t}.parquet", Path(tmp)) for t in TABLES}
            build_from_parquet(dest, tables, info.schema_version)


def build_from_parquet(dest: Path, tables: dict[str, Path], version: int) -> None:
    """A database file `dest` with the schema as of migration `version` and the rows of each table's Parquet.

    Columns are matched by name; `schema_version` keeps the snapshot's rows, so the store runs the
    migrations after `version` when it opens the file, exactly as on a file it had kept itself."""
    import duckdb

    con = duckdb.connect(str(dest))
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE TABLE schema_version(version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
        for v, statements in sorted(MIGRATIONS):
            if v <= version:
                for sql in statements:
                    con.execute(sql)
        base = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_type = 'BASE TABLE'").fetchall()}
        for table, path in tables.items():
            if table in base:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet('{_sql(path)}')")
        if not con.execute("SELECT count(*) FROM schema_version").fetchone()[0]:
            con.execute("INSERT INTO schema_version SELECT v, now() FROM range(1, ?) t(v)", [version + 1])
        con.execute("COMMIT")
    finally:
        con.close()


def _sql(p: Path) -> str:
    return str(p).replace("'", "''")

