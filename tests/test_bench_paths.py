"""A bench script run as `python bench/X.py` has bench/ first on sys.path, where bench/train.py would shadow the
`train` package (which the app's code imports, e.g. `train.hub`): each script puts the checkout first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = """
import runpy, sys
from pathlib import Path
bench = Path(sys.argv[1]).resolve().parent
base = [p for p in sys.path if p and Path(p).resolve() not in (bench, bench.parent)]
bad = []
for script in sys.argv[1:]:
    sys.path[:] = [str(bench), *base]  # as `python bench/X.py` starts, whatever the scripts before it added
    sys.modules.pop("train", None)
    runpy.run_path(script, run_name="bench_check")  # its top level only: main() runs under __main__
    import train
    if not hasattr(train, "__path__"):
        bad.append(Path(script).name)
print("shadowed:", ",".join(bad))
"""


def test_every_bench_script_finds_the_train_package_not_bench_train_py():
    scripts = sorted(str(p) for p in (ROOT / "bench").glob("*.py")  # the scripts, not bench/durable.py's library
                     if p.name != "train.py" and 'if __name__ == "__main__":' in p.read_text())
    assert len(scripts) > 10
    proc = subprocess.run([sys.executable, "-c", CHECK, *scripts], cwd=ROOT / "bench", capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "shadowed:", proc.stdout
