"""Ships the project's data in the wheel; all other metadata is in pyproject.toml.

The library finds its data through `fireact_core.paths`: in a checkout (or an editable install)
the repository's `data/`, and in an installed wheel `fireact_core/data/`, which this build step
fills with what the defaults need: the bundled bases' adapters and the offline world (~26 MB).
Adapters trained into `data/adapters/` later stay out. A build that lacks any of these fails,
rather than making a package that cannot run its own default.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

HERE = Path(__file__).resolve().parent
BUNDLED = ("adapters/default", "adapters/gemma3", "world")  # under data/; MANIFEST.in grafts the same


class BuildWithData(build_py):
    """`build_py`, then the bundled data copied into `fireact_core/data/` (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's data/ in place
            return
        for rel in BUNDLED:
            src = HERE / "data" / rel
            if not src.is_dir():
                raise SetupError(f"{src} is missing: the wheel would not find its default adapter and world")
            self.copy_tree(str(src), str(Path(self.build_lib, "fireact_core", "data", rel)))


setup(cmdclass={"build_py": BuildWithData})
