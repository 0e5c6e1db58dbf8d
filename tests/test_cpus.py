"""The CPUs torch sizes its threads to: the affinity set, capped by a container's CPU quota (cgroup v2 and v1),
which `os.cpu_count()` does not see (a Space's 2 vCPUs on a large host)."""

from __future__ import annotations

import os

import pytest

from fireact_core.cpus import cgroup_cpu_quota, usable_cpus

AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _v2(tmp_path, cpu_max: str | None, path: str = "/"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc").write_text(f"0::{path}\n")
    folder = tmp_path / "cg" / path.strip("/")
    folder.mkdir(parents=True, exist_ok=True)
    if cpu_max is not None:
        (folder / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path / "cg", tmp_path / "proc"


def _v1(tmp_path, quota: str, period: str = "100000", controllers: str = "cpu,cpuacct", path: str = "/docker/abc"):
    (tmp_path / "proc").write_text(f"4:memory:{path}\n3:{controllers}:{path}\n0::/\n")
    folder = tmp_path / "cg" / controllers / path.strip("/")
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
    (folder / "cpu.cfs_period_us").write_text(period + "\n")
    return tmp_path / "cg", tmp_path / "proc"


@pytest.mark.parametrize(("cpu_max", "quota"), [("200000 100000", 2.0), ("150000 100000", 1.5), ("max 100000", None)])
def test_cgroup_v2_quota(tmp_path, cpu_max, quota):
    assert cgroup_cpu_quota(*_v2(tmp_path, cpu_max)) == quota


def test_cgroup_v2_in_the_process_own_cgroup_folder(tmp_path):
    assert cgroup_cpu_quota(*_v2(tmp_path, "100000 100000", "/kubepods/pod1/c1")) == 1.0


@pytest.mark.parametrize(("quota", "expected"), [("200000", 2.0), ("-1", None)])
def test_cgroup_v1_quota(tmp_path, quota, expected):
    assert cgroup_cpu_quota(*_v1(tmp_path, quota)) == expected


def test_no_cgroup_files_means_no_quota(tmp_path):
    (tmp_path / "proc").write_text("0::/\n")
    assert cgroup_cpu_quota(tmp_path / "nothing", tmp_path / "proc") is None
    assert usable_cpus(tmp_path / "nothing", tmp_path / "proc") == AFFINITY


def test_the_quota_caps_the_threads_rounded_down_and_never_below_one(tmp_path):
    assert usable_cpus(*_v2(tmp_path / "a", "100000 100000")) == 1
    assert usable_cpus(*_v2(tmp_path / "b", "50000 100000")) == 1  # half a CPU: one thread
    assert usable_cpus(*_v2(tmp_path / "c", "150000 100000")) == min(AFFINITY, 1)  # 1.5 CPUs: one thread
    assert usable_cpus(*_v2(tmp_path / "d", "6400000 100000")) == AFFINITY  # 64 CPUs of quota: the affinity caps it


def test_torch_gets_the_usable_cpus_not_the_hosts_unless_omp_num_threads_says(monkeypatch):
    torch = pytest.importorskip("torch")
    from fireact_core import models

    before = torch.get_num_threads()
    monkeypatch.setattr("fireact_core.cpus.usable_cpus", lambda *a, **k: 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a large host
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        models.use_all_cores()
        assert torch.get_num_threads() == 2  # the owner's setting stands
        monkeypatch.delenv("OMP_NUM_THREADS")
        models.use_all_cores()
        assert torch.get_num_threads() == 1  # the container's quota, not the host's 64
    finally:
        torch.set_num_threads(before)
